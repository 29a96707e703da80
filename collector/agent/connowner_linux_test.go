package agent

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/procfs"
	"github.com/pofr/pofr/internal/testutil"
	"github.com/pofr/pofr/spool"
)

// TestAgentConnHelperProcess is not a test: TestPrivRunConnOwners runs the
// test binary with POFR_AGENT_CONN=ADDR:N:M; after a line on stdin it makes
// N TCP connections, each held 1 ms, then starts M processes that make one
// each (POFR_AGENT_ONE=ADDR: connect, hold 1 ms, close, print "conn PID
// START LPORT", exit) and relays their lines; it prints "done" and waits
// for stdin to close.
func TestAgentConnHelperProcess(t *testing.T) {
	if addr := os.Getenv("POFR_AGENT_ONE"); addr != "" {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		time.Sleep(time.Millisecond)
		lport := c.LocalAddr().(*net.TCPAddr).Port
		c.Close()
		start, err := procfs.New("").Start(int32(os.Getpid()))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("conn %d %d %d\n", os.Getpid(), start, lport)
		os.Exit(0)
	}
	spec := os.Getenv("POFR_AGENT_CONN")
	if spec == "" {
		return
	}
	f := strings.Split(spec, ":")
	addr := strings.Join(f[:len(f)-2], ":")
	n, _ := strconv.Atoi(f[len(f)-2])
	m, _ := strconv.Atoi(f[len(f)-1])
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
	for range m {
		cmd := exec.Command(os.Args[0], "-test.run=^TestAgentConnHelperProcess$")
		cmd.Env = append(os.Environ(), "POFR_AGENT_ONE="+addr)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Stdout.Write(out)
	}
	fmt.Println("done")
	_, _ = io.Copy(io.Discard, in)
	os.Exit(0)
}

// TestPrivRunConnOwners runs the whole collector and checks that TCP
// connections living 1 ms, which no dump sees, have their owner's pid and
// proc_start in the sock rows of the sealed segments: from a process that
// lives on, and from processes that exit right after their connection
// (their proc_start comes from the process table).
func TestPrivRunConnOwners(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	cfg := standaloneConfig(t, dir, dir)
	cfg.NoFile = true
	ln := testutil.Listen(t, "tcp4", "127.0.0.1:0")
	testutil.Accept(ln, testutil.Drain)
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	const n, m = 50, 10
	cmd := exec.Command(os.Args[0], "-test.run=^TestAgentConnHelperProcess$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("POFR_AGENT_CONN=%s:%d:%d", ln.Addr(), n, m))
	stdin, stdout := testutil.Pipes(t, cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	pid := int32(cmd.Process.Pid)
	start, err := procfs.New("").Start(pid)
	if err != nil {
		t.Fatal(err)
	}

	stop := startRun(t, cfg)
	// status.json (every 5 s) shows the owner source and a first dump: the
	// destroy reader listens by then.
	testutil.WaitFor(t, 20*time.Second, "the socket source's first dump in status.json", func() bool {
		var sock struct{ Dumps uint64 }
		return sourceStatus(t, cfg, "sock_owner", &struct{}{}) && sourceStatus(t, cfg, event.SourceSock, &sock) && sock.Dumps > 0
	})
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	// The children's connections: local port → owner.
	type owner struct {
		pid   int32
		start int64
	}
	children := map[uint16]owner{}
	lines := make(chan string)
	go func() {
		r := bufio.NewReader(stdout)
		for {
			s, err := r.ReadString('\n')
			if err != nil {
				close(lines)
				return
			}
			lines <- strings.TrimSpace(s)
		}
	}()
	deadline := time.After(60 * time.Second)
wait:
	for {
		select {
		case s, ok := <-lines:
			var o owner
			var lport uint16
			switch {
			case !ok:
				t.Fatal("helper ended before done")
			case s == "done":
				break wait
			default:
				if _, err := fmt.Sscanf(s, "conn %d %d %d", &o.pid, &o.start, &lport); err != nil {
					t.Fatalf("helper said %q", s)
				}
				children[lport] = o
			}
		case <-deadline:
			t.Fatal("helper did not finish its connections within 60 s")
		}
	}
	if len(children) != m {
		t.Fatalf("%d child connections reported, want %d", len(children), m)
	}
	time.Sleep(500 * time.Millisecond) // the last batch of destroy messages
	stop()

	clients := map[uint16]bool{} // local port → owner right
	eachSegment(t, cfg, func(name string, seg *spool.Segment) {
		if got := seg.Manifest.Modes["sock_owner"]; got != "tracepoint" {
			t.Errorf("segment %s: modes sock_owner %q, want tracepoint", name, got)
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
			want, late := owner{pid, start}, int64(0)
			if c, ok := children[lport.Value(i)]; ok {
				// A child's key comes from its fork event's time, which can
				// be one tick later than its /proc starttime
				// (docs/design.md, "Process keys").
				want, late = c, procfs.TickNS
			}
			ok := pids.IsValid(i) && pids.Value(i) == want.pid && starts.IsValid(i) &&
				starts.Value(i) >= want.start && starts.Value(i) <= want.start+late
			if !ok {
				t.Errorf("client socket %d: pid valid %v %d, proc_start valid %v %d, want %d %d", lport.Value(i),
					pids.IsValid(i), pids.Value(i), starts.IsValid(i), starts.Value(i), want.pid, want.start)
			}
			clients[lport.Value(i)] = clients[lport.Value(i)] || ok
		}
	})
	if len(clients) != n+m {
		t.Errorf("%d client sockets in the segments, want %d", len(clients), n+m)
	}
}
