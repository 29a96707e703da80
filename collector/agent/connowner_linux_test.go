package agent

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/procfs"
	"github.com/pofr/pofr/internal/testutil"
	"github.com/pofr/pofr/profiles"
	"github.com/pofr/pofr/spool"
)

// TestAgentConnHelperProcess is not a test: TestPrivRunConnOwners runs the
// test binary with POFR_AGENT_CONN=ADDR:N to make N TCP connections, each
// held 1 ms, after a line on stdin; it prints "done" and waits for stdin to
// close.
func TestAgentConnHelperProcess(t *testing.T) {
	spec := os.Getenv("POFR_AGENT_CONN")
	if spec == "" {
		return
	}
	i := strings.LastIndexByte(spec, ':')
	addr := spec[:i]
	n, _ := strconv.Atoi(spec[i+1:])
	in := bufio.NewReader(os.Stdin)
	if _, err := in.ReadString('\n'); err != nil {
		os.Exit(1)
	}
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		time.Sleep(time.Millisecond)
		c.Close()
	}
	fmt.Println("done")
	_, _ = io.Copy(io.Discard, in)
	os.Exit(0)
}

// TestPrivRunConnOwners runs the whole collector and checks that TCP
// connections living 1 ms, which no dump sees, have their owner's pid and
// proc_start in the sock rows of the sealed segments.
func TestPrivRunConnOwners(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	key, err := spool.GenerateKey(filepath.Join(dir, "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	prof, err := profiles.Get("default")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Profile: prof, StateDir: filepath.Join(dir, "state"), SpoolDir: filepath.Join(dir, "state", "spool"),
		ConfigDir: dir, HostID: "agent-test", Key: key, Standalone: true, NoFile: true, StatusInterval: time.Hour,
	}
	for _, d := range []string{cfg.StateDir, cfg.SpoolDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	const n = 50
	cmd := exec.Command(os.Args[0], "-test.run=^TestAgentConnHelperProcess$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("POFR_AGENT_CONN=%s:%d", ln.Addr(), n))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	pid := int32(cmd.Process.Pid)
	start, err := procfs.New("").Start(pid)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(testutil.Deadline(t, time.Minute))
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	// status.json (every 5 s) shows the owner source and a first dump: the
	// destroy reader listens by then.
	testutil.WaitFor(t, 20*time.Second, "the socket source's first dump in status.json", func() bool {
		var st Status
		var sock struct{ Dumps uint64 }
		b, err := os.ReadFile(filepath.Join(cfg.StateDir, "status.json"))
		return err == nil && json.Unmarshal(b, &st) == nil && st.Sources["sock_owner"] != nil &&
			json.Unmarshal(st.Sources[event.SourceSock], &sock) == nil && sock.Dumps > 0
	})
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	line := make(chan string, 1)
	go func() { s, _ := bufio.NewReader(stdout).ReadString('\n'); line <- s }()
	select {
	case s := <-line:
		if strings.TrimSpace(s) != "done" {
			t.Fatalf("helper said %q", s)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("helper did not finish its connections within 30 s")
	}
	time.Sleep(500 * time.Millisecond) // the last batch of destroy messages
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30 s of cancellation")
	}

	infos, err := spool.List(cfg.SpoolDir)
	if err != nil {
		t.Fatal(err)
	}
	clients := map[uint16]bool{} // local port → owner right
	for _, in := range infos {
		seg, err := spool.VerifyFile(in.Path, spool.VerifyOptions{PublicKey: key.Public().(ed25519.PublicKey)})
		if err != nil {
			t.Fatalf("segment %s: %v", in.Name, err)
		}
		rec, err := seg.Record(event.TableSock)
		if err != nil {
			t.Fatal(err)
		}
		col := func(name string) int { return rec.Schema().FieldIndices(name)[0] }
		lport := rec.Column(col("local_port")).(*array.Uint16)
		rport := rec.Column(col("remote_port")).(*array.Uint16)
		pids := rec.Column(col("pid")).(*array.Int32)
		starts := rec.Column(col("proc_start")).(*array.Int64)
		for i := 0; i < int(rec.NumRows()); i++ {
			if rport.Value(i) != port || lport.Value(i) == port {
				continue
			}
			ok := pids.IsValid(i) && pids.Value(i) == pid && starts.IsValid(i) && starts.Value(i) == start
			if !ok {
				t.Errorf("client socket %d: pid valid %v %d, proc_start %d, want %d %d", lport.Value(i),
					pids.IsValid(i), pids.Value(i), starts.Value(i), pid, start)
			}
			clients[lport.Value(i)] = clients[lport.Value(i)] || ok
		}
		seg.Release()
	}
	if len(clients) != n {
		t.Errorf("%d client sockets in the segments, want %d", len(clients), n)
	}
}
