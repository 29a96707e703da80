package spool_test

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/spool"
)

// A collector writes rows; the uplink lists sealed segments; the server
// verifies each against the host's key and the previous digest.
func Example() {
	dir, err := os.MkdirTemp("", "spool-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	key, err := spool.GenerateKey(filepath.Join(dir, "signing.key"))
	if err != nil {
		log.Fatal(err)
	}

	w, err := spool.Open(filepath.Join(dir, "spool"), spool.Options{
		HostID: "h-0001", BootID: "6d0f1c3e-0000-4000-8000-000000000001", Key: key,
		MaxSegmentAge: time.Minute,
	})
	if err != nil {
		log.Fatal(err)
	}
	w.AppendProc(&event.Proc{TS: time.Now().UnixNano(), Event: event.ProcExec, PID: 4242,
		Exe: []byte("/usr/bin/ls"), Argv: []byte("ls\x00-l\x00")})
	if err := w.Seal(); err != nil {
		log.Fatal(err)
	}
	w.AppendProc(&event.Proc{TS: time.Now().UnixNano(), Event: event.ProcExit, PID: 4242, ExitCode: event.Some[int32](0)})
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}

	infos, err := spool.List(filepath.Join(dir, "spool"))
	if err != nil {
		log.Fatal(err)
	}
	prev := "" // the server keeps the last digest it accepted per host
	for _, in := range infos {
		f, err := os.Open(in.Path)
		if err != nil {
			log.Fatal(err)
		}
		seg, err := spool.Verify(f, in.Size, spool.VerifyOptions{
			PublicKey: key.Public().(ed25519.PublicKey), HostID: "h-0001", PrevDigest: &prev})
		f.Close()
		switch {
		case errors.Is(err, spool.ErrChainBroken):
			fmt.Println("chain broken at", in.Seq) // intact: load it, mark the hole
		case err != nil:
			fmt.Println("quarantine:", err)
			continue
		}
		procs, _ := seg.Procs()
		fmt.Printf("seq %d: %d rows, first %s %s\n", seg.Manifest.Seq, len(procs), procs[0].Event, procs[0].Exe)
		prev = seg.Digest
		seg.Release()
	}
	// Output:
	// seq 1: 1 rows, first exec /usr/bin/ls
	// seq 2: 1 rows, first exit
}
