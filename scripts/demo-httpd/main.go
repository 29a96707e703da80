// Command demo-httpd is the tiny local web server that make demo downloads
// from, so the demo's workload has a real TCP connection to show. It serves
// one file of pseudo-random bytes at /payload.bin on 127.0.0.1, spread over
// -pace so that the connection lives long enough for the collector's socket
// dumps to see who owns it, and exits after -for.
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

// chunks is how many pieces a download is written in, -pace/chunks apart.
const chunks = 10

func main() {
	size := flag.Int("size", 256<<10, "bytes served at /payload.bin")
	pace := flag.Duration("pace", 2*time.Second, "spread each download over this long")
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
		// Written to a temporary name and renamed, so that a reader polling
		// for the file never sees it half written.
		tmp := *portFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(fmt.Sprintln(port)), 0o644); err != nil {
			log.Fatal(err)
		}
		if err := os.Rename(tmp, *portFile); err != nil {
			log.Fatal(err)
		}
	}
	http.HandleFunc("/payload.bin", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(payload)))
		w.Header().Set("Content-Type", "application/octet-stream")
		step := (len(payload) + chunks - 1) / chunks
		for off := 0; off < len(payload); off += step {
			if off > 0 {
				time.Sleep(*pace / chunks)
			}
			if _, err := w.Write(payload[off:min(off+step, len(payload))]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	})
	time.AfterFunc(*life, func() { os.Exit(0) })
	log.Fatal(http.Serve(ln, nil))
}
