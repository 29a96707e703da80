// Command demo-httpd is the tiny local web server that make demo downloads
// from, so the demo's workload has a real TCP connection to show. It serves
// one file of pseudo-random bytes on 127.0.0.1 and exits after -for.
package main

import (
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	size := flag.Int("size", 256<<10, "bytes served at /payload.bin")
	life := flag.Duration("for", 2*time.Minute, "exit after this long")
	portFile := flag.String("port-file", "", "write the chosen port here")
	flag.Parse()

	payload := make([]byte, *size)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range payload {
		payload[i] = byte(r.Uint32())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if *portFile != "" {
		if err := os.WriteFile(*portFile, []byte(fmt.Sprintln(port)), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	http.HandleFunc("/payload.bin", func(w http.ResponseWriter, _ *http.Request) { w.Write(payload) })
	time.AfterFunc(*life, func() { os.Exit(0) })
	log.Fatal(http.Serve(ln, nil))
}
