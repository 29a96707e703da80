package sockdiag

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/procfs"
	"github.com/pofr/pofr/internal/testutil"
)

// sockTCPInfoOffsets returns x/sys's offsets of the tcp_info fields we read.
func sockTCPInfoOffsets() [5]uintptr {
	var ti unix.TCPInfo
	return [...]uintptr{unsafe.Offsetof(ti.Bytes_acked), unsafe.Offsetof(ti.Bytes_received),
		unsafe.Offsetof(ti.Segs_out), unsafe.Offsetof(ti.Segs_in), unsafe.Offsetof(ti.Bytes_sent)}
}

// TestSockTCPInfoOffsets checks the tcp_info offsets against x/sys's struct
// (generated from the kernel headers).
func TestSockTCPInfoOffsets(t *testing.T) {
	got := [...]uintptr{sdTCPInfoBytesAcked, sdTCPInfoBytesRecv, sdTCPInfoSegsOut, sdTCPInfoSegsIn, sdTCPInfoBytesSent}
	if diff := cmp.Diff(sockTCPInfoOffsets(), got); diff != "" {
		t.Errorf("tcp_info offsets (-x/sys +ours):\n%s", diff)
	}
}

// --- helper processes ---

// TestSockHelperProcess is not a test: the socket tests run the test binary
// with POFR_SOCK_HELPER set so that sockets have owners other than the test
// process. Without the variable it returns at once.
func TestSockHelperProcess(t *testing.T) {
	mode := os.Getenv("POFR_SOCK_HELPER")
	if mode == "" {
		return
	}
	if err := sockHelper(mode, os.Getenv("POFR_SOCK_ADDR"), os.Getenv("POFR_SOCK_N")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// sockHelper runs one helper mode; the test talks to it over stdin/stdout.
//
//	serve ADDR      listen, print "port N", read each connection to EOF and close it; until stdin closes
//	churn ADDR N    N times: connect, write 1 KiB, close; print "done"
//	hold  ADDR N    open N connections, write 1 KiB on each, print "ready"; close them all when stdin closes
//	life  ADDR N    for N seconds, every 20 ms a connection living 1–3 s; print "done K" after all closed
//	self  -    N    bring lo up (a fresh network namespace has it down), listen on 127.0.0.1, print
//	                "port N", open N connections to itself, print "ready"; close them all when stdin closes
func sockHelper(mode, addr, ns string) error {
	n, _ := strconv.Atoi(ns)
	kib := make([]byte, 1024)
	waitStdin := func() { _, _ = io.Copy(io.Discard, os.Stdin) }
	dial := func() (net.Conn, error) { // a connection with 1 KiB written
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return nil, err
		}
		if _, err := c.Write(kib); err != nil {
			return nil, err
		}
		return c, nil
	}
	switch mode {
	case "serve":
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		fmt.Printf("port %d\n", ln.Addr().(*net.TCPAddr).Port)
		testutil.Accept(ln, testutil.Drain)
		waitStdin()
		return nil
	case "churn":
		for range n {
			c, err := dial()
			if err != nil {
				return err
			}
			c.Close()
		}
		fmt.Println("done")
		waitStdin()
		return nil
	case "self":
		if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
			return fmt.Errorf("ip link set lo up: %v %s", err, out)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		testutil.Accept(ln, testutil.Drain)
		fmt.Printf("port %d\n", ln.Addr().(*net.TCPAddr).Port)
		addr = ln.Addr().String()
		mode = "hold"
		defer func() { time.Sleep(200 * time.Millisecond); ln.Close() }() // the server ends read EOF and close
		fallthrough
	case "hold":
		conns := make([]net.Conn, 0, n)
		for range n {
			c, err := dial()
			if err != nil {
				return err
			}
			conns = append(conns, c)
		}
		fmt.Println("ready")
		waitStdin()
		for _, c := range conns {
			c.Close()
		}
		return nil
	case "life":
		var wg sync.WaitGroup
		end := time.Now().Add(time.Duration(n) * time.Second)
		k := 0
		for time.Now().Before(end) {
			k++
			wg.Go(func() {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				_, _ = c.Write(kib[:16])
				time.Sleep(time.Second + rand.N(2*time.Second))
				c.Close()
			})
			time.Sleep(20 * time.Millisecond)
		}
		wg.Wait()
		fmt.Printf("done %d\n", k)
		waitStdin()
		return nil
	}
	return fmt.Errorf("unknown helper mode %q", mode)
}

// sockReap ends a helper process: closing its stdin tells it to exit; it is
// killed if it has not 10 s later.
func sockReap(cmd *exec.Cmd, stdin io.Closer) {
	stdin.Close()
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// sockProc is a running helper process.
type sockProc struct {
	cmd   *exec.Cmd
	out   *bufio.Reader
	stdin io.WriteCloser
	pid   int32
	start int64
}

// helperCmd is the test binary run as the helper process test (e.g.
// TestSockHelperProcess), with env added to its environment and extra test
// flags.
func helperCmd(test string, env []string, extra ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^" + test + "$"}, extra...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	return cmd
}

// sockHelperCmd is the test binary run as the helper of mode (see
// TestSockHelperProcess), with extra test flags.
func sockHelperCmd(mode, addr string, n int, extra ...string) *exec.Cmd {
	return helperCmd("TestSockHelperProcess", []string{"POFR_SOCK_HELPER=" + mode, "POFR_SOCK_ADDR=" + addr, "POFR_SOCK_N=" + strconv.Itoa(n)}, extra...)
}

// startSockProc starts a helper command with its stdin and stdout piped,
// with cpu ≥ 0 on that CPU only (testutil.StartPinned).
func startSockProc(tb testing.TB, cmd *exec.Cmd, cpu int) *sockProc {
	tb.Helper()
	stdin, stdout := testutil.Pipes(tb, cmd)
	if err := testutil.StartPinned(cmd, cpu); err != nil {
		tb.Fatal(err)
	}
	return &sockProc{cmd: cmd, out: bufio.NewReader(stdout), stdin: stdin, pid: int32(cmd.Process.Pid)}
}

// startHelper is startSockProc for a test: it reads the helper's start time,
// and cleanup ends the helper.
func startHelper(tb testing.TB, cmd *exec.Cmd, cpu int) *sockProc {
	tb.Helper()
	p := startSockProc(tb, cmd, cpu)
	tb.Cleanup(func() { sockReap(cmd, p.stdin) })
	var err error
	if p.start, err = procfs.New("").Start(p.pid); err != nil {
		tb.Fatal(err)
	}
	return p
}

// startSockServer starts a helper serving on 127.0.0.1 and returns it and
// its port.
func startSockServer(t *testing.T) (*sockProc, uint16) {
	t.Helper()
	srv := startSockHelper(t, "serve", "127.0.0.1:0", 0)
	var port uint16
	if _, err := fmt.Sscanf(srv.line(t, 10*time.Second), "port %d", &port); err != nil {
		t.Fatal(err)
	}
	return srv, port
}

// startSockHelper starts a helper and registers its end.
func startSockHelper(t *testing.T, mode, addr string, n int) *sockProc {
	t.Helper()
	return startSockHelperAttr(t, mode, addr, n, nil)
}

// startSockHelperAttr is startSockHelper with the process attributes attr
// (for example a new network namespace).
func startSockHelperAttr(t *testing.T, mode, addr string, n int, attr *syscall.SysProcAttr) *sockProc {
	t.Helper()
	cmd := sockHelperCmd(mode, addr, n)
	cmd.SysProcAttr = attr
	return startHelper(t, cmd, -1)
}

// line reads the helper's next output line, with a deadline.
func (p *sockProc) line(t testing.TB, d time.Duration) string {
	t.Helper()
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() { s, err := p.out.ReadString('\n'); ch <- res{strings.TrimSpace(s), err} }()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("helper %d output: %v", p.pid, r.err)
		}
		return r.s
	case <-time.After(d):
		t.Fatalf("helper %d said nothing within %v", p.pid, d)
	}
	return ""
}

// stop closes the helper's stdin and waits for it to exit.
func (p *sockProc) stop(t *testing.T) {
	t.Helper()
	p.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	testutil.Await(t, done, 10*time.Second, fmt.Sprintf("helper %d exit", p.pid))
}

// --- source harness ---

// startSock runs a source on a MemSink. Unless opts sets an interval, dumps
// happen only at start and when the test calls sockDumpNow.
func startSock(t *testing.T, opts Options) (*Source, *event.MemSink) {
	t.Helper()
	sink := &event.MemSink{}
	opts.Sink = sink
	if opts.DumpInterval == 0 {
		opts.DumpInterval = time.Hour
	}
	src, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Go(t, "Source.Run", src.Run)
	testutil.WaitFor(t, 10*time.Second, "first dump", func() bool { return src.Stats().Dumps >= 1 })
	return src, sink
}

// sockDumpNow triggers a dump and waits until it is applied.
func sockDumpNow(t *testing.T, src *Source) {
	t.Helper()
	d := src.Stats().Dumps
	src.Refresh()
	testutil.WaitFor(t, 10*time.Second, "dump", func() bool { return src.Stats().Dumps > d })
}

// sockRows returns the rows that match f.
func sockRows(sink *event.MemSink, f func(*event.Sock) bool) []event.Sock {
	var out []event.Sock
	for _, r := range sink.Socks() {
		if f(&r) {
			out = append(out, r)
		}
	}
	return out
}

// sockOne waits for exactly one row matching f and returns it.
func sockOne(t *testing.T, sink *event.MemSink, what string, f func(*event.Sock) bool) event.Sock {
	t.Helper()
	var rows []event.Sock
	testutil.WaitFor(t, 10*time.Second, what, func() bool { rows = sockRows(sink, f); return len(rows) > 0 })
	time.Sleep(20 * time.Millisecond) // a duplicate would come right after
	if rows = sockRows(sink, f); len(rows) != 1 {
		t.Fatalf("%s: %d rows, want 1: %+v", what, len(rows), rows)
	}
	return rows[0]
}

func sockPortOf(a net.Addr) uint16 {
	switch a := a.(type) {
	case *net.TCPAddr:
		return uint16(a.Port)
	case *net.UDPAddr:
		return uint16(a.Port)
	}
	panic(fmt.Sprintf("address %v", a))
}

var (
	sockLo4  = []byte{127, 0, 0, 1}
	sockLo6  = net.IPv6loopback.To16()
	sockAny4 = []byte{0, 0, 0, 0}
	sockAny6 = make([]byte, 16)
)

// sockIgnore leaves out the columns checked separately.
var sockIgnore = cmpopts.IgnoreFields(event.Sock{}, "TS", "Cookie", "Inode", "UID", "FirstTS", "Netns")

func sockCheck(t *testing.T, what string, got, want event.Sock) {
	t.Helper()
	if diff := cmp.Diff(want, got, sockIgnore, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("%s (-want +got):\n%s", what, diff)
	}
	if got.Cookie == 0 && got.Flags&event.SockFlagFallback == 0 {
		t.Errorf("%s: cookie 0", what)
	}
	if !got.Netns.Valid {
		t.Errorf("%s: netns unknown", what)
	}
}

func (p sockTuple) match(r *event.Sock) bool {
	return r.Proto == p.proto && r.LocalPort == p.lport && r.RemotePort == p.rport && r.Event == p.event
}

type sockTuple struct {
	event, proto string
	lport, rport uint16
}

// TestPrivSockEndpoints: listener, a connection that lives through a dump, a
// connection that lives < 10 ms, a UDP exchange and IPv6 on ::1, as rows.
func TestPrivSockEndpoints(t *testing.T) {
	testutil.RequireRoot(t)
	pid, start := selfStart(t)
	src, sink := startSock(t, Options{UDP: true})
	if m := src.Stats().Mode; m != ModeNetlink {
		t.Fatalf("mode %q, want %q", m, ModeNetlink)
	}
	me := func(f uint32) event.Sock {
		return event.Sock{PID: event.Some(pid), ProcStart: event.Some(start), Flags: f}
	}
	row := func(base event.Sock, ev, proto string, fam uint8, state, dir string, la []byte, lp uint16, ra []byte, rp uint16) event.Sock {
		base.Event, base.Proto, base.Family, base.State, base.Direction = ev, proto, fam, state, dir
		base.LocalAddr, base.LocalPort, base.RemoteAddr, base.RemotePort = la, lp, ra, rp
		return base
	}

	ln := testutil.Listen(t, "tcp4", "127.0.0.1:0")
	lp := sockPortOf(ln.Addr())
	accepted := make(chan net.Conn, 4)
	testutil.Accept(ln, func(c net.Conn) { accepted <- c })
	sockDumpNow(t, src)
	lrow := sockOne(t, sink, "listen row", sockTuple{event.SockListen, "tcp", lp, 0}.match)
	sockCheck(t, "listen row", lrow, row(me(0), event.SockListen, "tcp", 4, "LISTEN", event.DirListen, sockLo4, lp, sockAny4, 0))
	if !lrow.Inode.Valid || lrow.UID != 0 || !lrow.FirstTS.Valid || lrow.FirstTS.V != lrow.TS {
		t.Errorf("listen row inode %v uid %d first_ts %v ts %d, want an inode, uid 0, first_ts = ts", lrow.Inode, lrow.UID, lrow.FirstTS, lrow.TS)
	}

	// A connection that lives through a dump.
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	cp := sockPortOf(c.LocalAddr())
	sockDumpNow(t, src)
	copen := sockOne(t, sink, "client open", sockTuple{event.SockOpen, "tcp", cp, lp}.match)
	sopen := sockOne(t, sink, "server open", sockTuple{event.SockOpen, "tcp", lp, cp}.match)
	zero := me(0)
	zero.BytesSent, zero.BytesRecv = event.Some[uint64](0), event.Some[uint64](0) // counters at the time of the dump
	sockCheck(t, "client open", copen, row(zero, event.SockOpen, "tcp", 4, "ESTABLISHED", event.DirOut, sockLo4, cp, sockLo4, lp))
	sockCheck(t, "server open", sopen, row(zero, event.SockOpen, "tcp", 4, "ESTABLISHED", event.DirIn, sockLo4, lp, sockLo4, cp))
	if _, err := c.Write(make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(s, make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := s.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("server read after client close: %v, want EOF", err)
	}
	s.Close()
	cclose := sockOne(t, sink, "client close", sockTuple{event.SockClose, "tcp", cp, lp}.match)
	sclose := sockOne(t, sink, "server close", sockTuple{event.SockClose, "tcp", lp, cp}.match)
	want := row(me(event.SockFlagFromDestroy), event.SockClose, "tcp", 4, "CLOSE", event.DirOut, sockLo4, cp, sockLo4, lp)
	want.BytesSent, want.BytesRecv = event.Some[uint64](1024), event.Some[uint64](1) // the FIN counts 1
	sockCheck(t, "client close", cclose, want)
	want = row(me(event.SockFlagFromDestroy), event.SockClose, "tcp", 4, "CLOSE", event.DirIn, sockLo4, lp, sockLo4, cp)
	want.BytesSent, want.BytesRecv = event.Some[uint64](0), event.Some[uint64](1025)
	sockCheck(t, "server close", sclose, want)
	for _, p := range [][2]event.Sock{{copen, cclose}, {sopen, sclose}} {
		if p[1].Cookie != p[0].Cookie || p[1].Inode != p[0].Inode || p[1].FirstTS != event.Some(p[0].TS) || p[1].UID != 0 {
			t.Errorf("close row cookie %d inode %v first_ts %v uid %d, want the open row's %d %v %d, uid 0",
				p[1].Cookie, p[1].Inode, p[1].FirstTS, p[1].UID, p[0].Cookie, p[0].Inode, p[0].TS)
		}
	}

	// A connection that lives less than 10 ms: never dumped.
	shortTCP := func(ln net.Listener, network string, la []byte, fam uint8) {
		t0 := time.Now()
		c, err := net.Dial(network, ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(make([]byte, 1024)); err != nil {
			t.Fatal(err)
		}
		c.Close()
		if d := time.Since(t0); d > 10*time.Millisecond {
			t.Logf("short connection lived %v (> 10 ms)", d)
		}
		s := <-accepted
		if n, err := io.Copy(io.Discard, s); n != 1024 || err != nil {
			t.Fatalf("server read %d bytes (%v), want 1024", n, err)
		}
		s.Close()
		cp, lp := sockPortOf(c.LocalAddr()), sockPortOf(ln.Addr())
		cclose := sockOne(t, sink, "short client close", sockTuple{event.SockClose, "tcp", cp, lp}.match)
		sclose := sockOne(t, sink, "short server close", sockTuple{event.SockClose, "tcp", lp, cp}.match)
		want := row(event.Sock{Flags: event.SockFlagFromDestroy | event.SockFlagOwnerUnknown}, event.SockClose, "tcp", fam, "CLOSE", event.DirOut, la, cp, la, lp)
		want.BytesSent, want.BytesRecv = event.Some[uint64](1024), event.Some[uint64](1)
		sockCheck(t, "short client close", cclose, want)
		// The accepted side is attributed through its listener.
		want = row(me(event.SockFlagFromDestroy|event.SockFlagOwnerFromListener), event.SockClose, "tcp", fam, "CLOSE", event.DirIn, la, lp, la, cp)
		want.BytesSent, want.BytesRecv = event.Some[uint64](0), event.Some[uint64](1025)
		sockCheck(t, "short server close", sclose, want)
		for _, r := range []event.Sock{cclose, sclose} {
			if r.Inode.Valid || r.FirstTS.Valid || r.UID != event.NoID {
				t.Errorf("never-dumped close row inode %v first_ts %v uid %d, want null", r.Inode, r.FirstTS, r.UID)
			}
		}
	}
	shortTCP(ln, "tcp4", sockLo4, 4)

	// IPv6 on ::1.
	ln6 := testutil.Listen(t, "tcp6", "[::1]:0")
	testutil.Accept(ln6, func(c net.Conn) { accepted <- c })
	sockDumpNow(t, src)
	lp6 := sockPortOf(ln6.Addr())
	l6 := sockOne(t, sink, "listen row v6", sockTuple{event.SockListen, "tcp", lp6, 0}.match)
	sockCheck(t, "listen row v6", l6, row(me(0), event.SockListen, "tcp", 6, "LISTEN", event.DirListen, sockLo6, lp6, sockAny6, 0))
	shortTCP(ln6, "tcp6", sockLo6, 6)

	// UDP: an unconnected server and a connected client, both dumped.
	us, uc := udpPair(t)
	usp, ucp := sockPortOf(us.LocalAddr()), sockPortOf(uc.LocalAddr())
	sockDumpNow(t, src)
	ul := sockOne(t, sink, "udp listen", sockTuple{event.SockListen, "udp", usp, 0}.match)
	sockCheck(t, "udp listen", ul, row(me(0), event.SockListen, "udp", 4, "CLOSE", event.DirListen, sockLo4, usp, sockAny4, 0))
	uo := sockOne(t, sink, "udp open", sockTuple{event.SockOpen, "udp", ucp, usp}.match)
	sockCheck(t, "udp open", uo, row(me(0), event.SockOpen, "udp", 4, "ESTABLISHED", event.DirOut, sockLo4, ucp, sockLo4, usp))
	if _, err := uc.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	_ = us.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := us.ReadFromUDP(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("udp server read %q, %v", buf[:n], err)
	}
	if _, err := us.WriteToUDP([]byte("pong"), from); err != nil {
		t.Fatal(err)
	}
	_ = uc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := uc.Read(buf); err != nil || string(buf[:n]) != "pong" {
		t.Fatalf("udp client read %q, %v", buf[:n], err)
	}
	uc.Close()
	us.Close()
	ucc := sockOne(t, sink, "udp client close", sockTuple{event.SockClose, "udp", ucp, usp}.match)
	sockCheck(t, "udp client close", ucc, row(me(event.SockFlagFromDestroy), event.SockClose, "udp", 4, "ESTABLISHED", event.DirOut, sockLo4, ucp, sockLo4, usp))
	usc := sockOne(t, sink, "udp server close", sockTuple{event.SockClose, "udp", usp, 0}.match)
	sockCheck(t, "udp server close", usc, row(me(event.SockFlagFromDestroy), event.SockClose, "udp", 4, "CLOSE", event.DirListen, sockLo4, usp, sockAny4, 0))

	st := src.Stats()
	if st.Overruns != 0 || st.Lost != 0 || st.DumpErrors != 0 {
		t.Errorf("stats %+v: want no overruns, losses or dump errors", st)
	}
	if g := sink.Gaps(); len(g) != 0 {
		t.Errorf("gap rows %+v, want none", g)
	}
}

// TestPrivSockChurn: 1,000 short connections from one process to a server in
// another: every client and server socket yields a close row; the accepted
// ones are attributed through the listener, and 20 connections held across a
// dump are attributed on both ends.
func TestPrivSockChurn(t *testing.T) {
	testutil.RequireRoot(t)
	const churn, held = 1000, 20
	srv, port := startSockServer(t)
	src, sink := startSock(t, Options{SelfPID: srv.pid}) // the server plays the collector: its sockets are self
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	hold := startSockHelper(t, "hold", addr, held)
	if s := hold.line(t, 10*time.Second); s != "ready" {
		t.Fatalf("hold helper said %q", s)
	}
	sockDumpNow(t, src)
	// The server may not have called accept yet at the first dump (the
	// socket has no inode then); a second dump finds the inodes.
	time.Sleep(200 * time.Millisecond)
	sockDumpNow(t, src)
	heldPorts := map[uint16]bool{}
	for _, r := range sockRows(sink, func(r *event.Sock) bool { return r.Event == event.SockOpen && r.RemotePort == port }) {
		heldPorts[r.LocalPort] = true
	}
	if len(heldPorts) != held {
		t.Fatalf("open rows of held clients: %d, want %d", len(heldPorts), held)
	}

	cpu0, t0 := testutil.ProcessCPU(), time.Now()
	ch := startSockHelper(t, "churn", addr, churn)
	if s := ch.line(t, 60*time.Second); s != "done" {
		t.Fatalf("churn helper said %q", s)
	}
	isClient := func(r *event.Sock) bool {
		return r.Event == event.SockClose && r.RemotePort == port && r.LocalPort != port && !heldPorts[r.LocalPort]
	}
	isServer := func(r *event.Sock) bool {
		return r.Event == event.SockClose && r.LocalPort == port && r.RemotePort != 0 && !heldPorts[r.RemotePort]
	}
	testutil.WaitFor(t, 30*time.Second, "1,000 client and 1,000 server close rows", func() bool {
		return len(sockRows(sink, isClient)) >= churn && len(sockRows(sink, isServer)) >= churn
	})
	wall, cpu := time.Since(t0), testutil.ProcessCPU()-cpu0
	time.Sleep(50 * time.Millisecond)

	clients, servers := sockRows(sink, isClient), sockRows(sink, isServer)
	cookies := map[uint64]bool{}
	serverKnown := 0
	for _, r := range append(clients, servers...) {
		cookies[r.Cookie] = true
		if r.Flags&event.SockFlagFromDestroy == 0 {
			t.Errorf("close row without from_destroy: %+v", r)
		}
	}
	for _, r := range servers {
		if r.PID == event.Some(srv.pid) && r.ProcStart == event.Some(srv.start) && r.Flags&event.SockFlagSelf != 0 && r.Direction == event.DirIn {
			serverKnown++
		}
	}
	if len(clients) != churn || len(servers) != churn || len(cookies) != 2*churn {
		t.Errorf("close rows: %d client, %d server, %d cookies; want %d, %d, %d", len(clients), len(servers), len(cookies), churn, churn, 2*churn)
	}
	if serverKnown != churn {
		t.Errorf("server close rows attributed to the server (pid %d) through the listener: %d, want %d", srv.pid, serverKnown, churn)
	}
	clientKnown := 0
	for _, r := range clients {
		if r.PID.Valid {
			clientKnown++
		}
	}
	t.Logf("1,000 short connections: %d/%d client and %d/%d server close rows recorded; owner known: client %d, server %d (listener); collector CPU %v (wall %v, incl. MemSink)",
		len(clients), churn, len(servers), churn, clientKnown, serverKnown, cpu, wall)

	// The held connections lived through a dump: both ends attributed.
	hold.stop(t)
	isHeld := func(r *event.Sock) bool {
		return r.Event == event.SockClose && (heldPorts[r.LocalPort] && r.RemotePort == port || r.LocalPort == port && heldPorts[r.RemotePort])
	}
	testutil.WaitFor(t, 10*time.Second, "held close rows", func() bool { return len(sockRows(sink, isHeld)) >= 2*held })
	for _, r := range sockRows(sink, isHeld) {
		want := hold
		if r.LocalPort == port {
			want = srv
		}
		if r.PID != event.Some(want.pid) || r.ProcStart != event.Some(want.start) || !r.FirstTS.Valid || !r.Inode.Valid || r.BytesSent.V+r.BytesRecv.V < 1024 {
			t.Errorf("held close row %d→%d: pid %v start %v first_ts %v inode %v bytes %v/%v; want pid %d start %d, first_ts, inode, ≥ 1 KiB",
				r.LocalPort, r.RemotePort, r.PID, r.ProcStart, r.FirstTS, r.Inode, r.BytesSent, r.BytesRecv, want.pid, want.start)
		}
	}
	if st := src.Stats(); st.Overruns != 0 || st.Lost != 0 {
		t.Errorf("stats %+v: want no overruns or losses", st)
	}
}

// TestPrivSockProcNet: the /proc/net fallback yields listen, open and vanished
// close rows flagged fallback, with owners.
func TestPrivSockProcNet(t *testing.T) {
	testutil.RequireRoot(t)
	pid, start := selfStart(t)
	src, sink := startSock(t, Options{ForceProcNet: true, UDP: true})
	if m := src.Stats().Mode; m != ModeProcNet {
		t.Fatalf("mode %q, want %q", m, ModeProcNet)
	}
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	lp := sockPortOf(ln.Addr())
	c, err := net.Dial("tcp6", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	cp := sockPortOf(c.LocalAddr())
	sockDumpNow(t, src)
	me := event.Sock{PID: event.Some(pid), ProcStart: event.Some(start), Cookie: 0, Flags: event.SockFlagFallback}
	mk := func(ev, state, dir string, lport uint16, ra []byte, rport uint16, extra uint32) event.Sock {
		r := me
		r.Event, r.Proto, r.Family, r.State, r.Direction = ev, "tcp", 6, state, dir
		r.LocalAddr, r.LocalPort, r.RemoteAddr, r.RemotePort = sockLo6, lport, ra, rport
		r.Flags |= extra
		return r
	}
	l := sockOne(t, sink, "fallback listen", sockTuple{event.SockListen, "tcp", lp, 0}.match)
	sockCheck(t, "fallback listen", l, mk(event.SockListen, "LISTEN", event.DirListen, lp, sockAny6, 0, 0))
	o := sockOne(t, sink, "fallback client open", sockTuple{event.SockOpen, "tcp", cp, lp}.match)
	sockCheck(t, "fallback client open", o, mk(event.SockOpen, "ESTABLISHED", event.DirOut, cp, sockLo6, lp, 0))
	so := sockOne(t, sink, "fallback server open", sockTuple{event.SockOpen, "tcp", lp, cp}.match)
	sockCheck(t, "fallback server open", so, mk(event.SockOpen, "ESTABLISHED", event.DirIn, lp, sockLo6, cp, 0))
	if !o.Inode.Valid || o.UID != 0 {
		t.Errorf("fallback open inode %v uid %d, want inode, uid 0", o.Inode, o.UID)
	}
	c.Close()
	s.Close()
	ln.Close()
	sockDumpNow(t, src)
	cc := sockOne(t, sink, "fallback client close", sockTuple{event.SockClose, "tcp", cp, lp}.match)
	sockCheck(t, "fallback client close", cc, mk(event.SockClose, "ESTABLISHED", event.DirOut, cp, sockLo6, lp, event.SockFlagVanished))
	lc := sockOne(t, sink, "fallback listener close", sockTuple{event.SockClose, "tcp", lp, 0}.match)
	sockCheck(t, "fallback listener close", lc, mk(event.SockClose, "LISTEN", event.DirListen, lp, sockAny6, 0, event.SockFlagVanished))
}

// TestPrivSock10k measures a dump of 10,000 sockets (5,000 connections
// between two helper processes) and checks that all of them are attributed.
func TestPrivSock10k(t *testing.T) {
	testutil.RequireRoot(t)
	const conns = 5000
	srv, port := startSockServer(t)
	hold := startSockHelper(t, "hold", fmt.Sprintf("127.0.0.1:%d", port), conns)
	if s := hold.line(t, 60*time.Second); s != "ready" {
		t.Fatalf("hold helper said %q", s)
	}

	// Raw dump: latency and CPU.
	fd, err := sockOpenDumpSocket()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var buf []inetDiag
	const rounds = 20
	for _, compat := range []bool{true, false} {
		cpu0, t0 := testutil.ProcessCPU(), time.Now()
		for i := range rounds {
			c := compat
			if buf, err = sockDump(fd, true, true, &c, uint32(i+1), buf[:0]); err != nil {
				t.Fatal(err)
			}
		}
		wall, cpu := time.Since(t0)/rounds, (testutil.ProcessCPU()-cpu0)/rounds
		ours := 0
		for _, m := range buf {
			if m.SrcPort == port || m.DstPort == port {
				ours++
			}
		}
		if ours < 2*conns {
			t.Fatalf("dump (TCP in one request: %v) saw %d sockets of the test, want ≥ %d", compat, ours, 2*conns)
		}
		t.Logf("inet_diag dump of %d sockets (%d of the test), TCP in one request: %v: %v wall, %v CPU (process rusage) per dump",
			len(buf), ours, compat, wall, cpu)
	}

	// The source: first dump with owner attribution of 10,001 new sockets,
	// then a steady-state dump, then the table's memory.
	var ms0, ms1 runtime.MemStats
	sockReadHeap(&ms0)
	src, sink := startSock(t, Options{})
	first := src.Stats()
	sockDumpNow(t, src)
	steady := src.Stats()
	sockReadHeap(&ms1)
	var srvN, holdN int
	for _, r := range sockRows(sink, func(r *event.Sock) bool {
		return r.Event == event.SockOpen && (r.LocalPort == port || r.RemotePort == port)
	}) {
		switch {
		case r.LocalPort == port && r.PID == event.Some(srv.pid):
			srvN++
		case r.RemotePort == port && r.PID == event.Some(hold.pid):
			holdN++
		}
	}
	if srvN != conns || holdN != conns {
		t.Errorf("open rows attributed: server %d, client %d; want %d each", srvN, holdN, conns)
	}
	t.Logf("source: first dump + fd scan of %d new sockets %v (%d fd scans, %d processes visited); steady dump %v; tracked %d; heap growth %d KiB incl. %d MemSink rows",
		first.Tracked, first.LastDump, first.FDScans, first.FDScanProcs, steady.LastDump, steady.Tracked,
		(int64(ms1.HeapAlloc)-int64(ms0.HeapAlloc))/1024, len(sink.Socks()))
}

// BenchmarkPrivSockCadence measures, for dump intervals of 250 ms, 1 s and
// 5 s, the share of connections living 1–3 s whose client side gets a known
// owner, and the collector's CPU. Run with -benchtime=1x:
//
//	go test ./collector/sockdiag/ -run '^$' -bench PrivSockCadence -benchtime=1x
func BenchmarkPrivSockCadence(b *testing.B) {
	testutil.RequireRoot(b)
	// "off" runs the workload without a source: the harness's own CPU, to
	// subtract from the others.
	for _, iv := range []time.Duration{0, 250 * time.Millisecond, time.Second, 5 * time.Second} {
		name := iv.String()
		if iv == 0 {
			name = "off"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				known, total, cpuPct := sockCadenceRun(b, iv, 12)
				b.ReportMetric(100*float64(known)/float64(max(total, 1)), "owner_known_%")
				b.ReportMetric(float64(total), "conns")
				b.ReportMetric(cpuPct, "cpu_%")
			}
		})
	}
}

// sockCadenceRun runs the "life" workload for secs seconds against a source
// dumping every iv and returns the client close rows with a known owner, all
// client close rows, and the test process's CPU in percent of one core.
func sockCadenceRun(b *testing.B, iv time.Duration, secs int) (known, total int, cpuPct float64) {
	srv := startSockProc(b, sockHelperCmd("serve", "127.0.0.1:0", 0, "-test.bench=^$"), -1)
	defer sockReap(srv.cmd, srv.stdin)
	var port uint16
	if _, err := fmt.Sscanf(srv.line(b, 10*time.Second), "port %d", &port); err != nil {
		b.Fatal(err)
	}
	sink := &event.MemSink{}
	src, err := New(Options{Sink: sink, DumpInterval: iv})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	if iv > 0 {
		go func() { done <- src.Run(ctx) }()
	} else {
		close(done)
	}
	var ru0, ru1 unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru0)
	t0 := time.Now()
	life := startSockProc(b, sockHelperCmd("life", fmt.Sprintf("127.0.0.1:%d", port), secs, "-test.bench=^$"), -1)
	defer sockReap(life.cmd, life.stdin)
	line := life.line(b, time.Duration(secs)*time.Second+time.Minute)
	var k int
	if _, err := fmt.Sscanf(line, "done %d", &k); err != nil {
		b.Fatalf("life helper said %q", line)
	}
	isClient := func(r *event.Sock) bool {
		return r.Event == event.SockClose && r.RemotePort == port && r.LocalPort != port
	}
	end := time.Now().Add(10 * time.Second)
	if iv == 0 {
		end = time.Now()
	}
	for len(sockRows(sink, isClient)) < k && time.Now().Before(end) {
		time.Sleep(10 * time.Millisecond)
	}
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru1)
	wall := time.Since(t0)
	cancel()
	<-done
	// The destroy groups see the whole host: on a shared machine the CPU
	// also pays for other processes' sockets.
	st := src.Stats()
	b.ReportMetric(float64(st.Destroys), "destroys")
	b.ReportMetric(float64(st.Dumps), "dumps")
	for _, r := range sockRows(sink, isClient) {
		total++
		if r.PID == event.Some(life.pid) {
			known++
		}
	}
	if total != k && iv > 0 {
		b.Errorf("client close rows %d, want %d", total, k)
	}
	cpu := unix.TimevalToNsec(ru1.Utime) + unix.TimevalToNsec(ru1.Stime) - unix.TimevalToNsec(ru0.Utime) - unix.TimevalToNsec(ru0.Stime)
	b.ReportMetric(float64(unix.TimevalToNsec(ru1.Stime)-unix.TimevalToNsec(ru0.Stime))/1e6, "sys_ms")
	b.ReportMetric(float64(unix.TimevalToNsec(ru1.Utime)-unix.TimevalToNsec(ru0.Utime))/1e6, "user_ms")
	return known, total, 100 * float64(cpu) / float64(wall)
}

// --- frame capture (-update-sock) ---

// captureSockFrames records the frames of sockFrames from the kernel.
func captureSockFrames(t *testing.T, dir string) {
	testutil.RequireRoot(t)
	dfd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dfd)
	_ = unix.SetsockoptInt(dfd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20)
	if err := unix.Bind(dfd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 0xf}); err != nil {
		t.Fatal(err)
	}
	tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
	_ = unix.SetsockoptTimeval(dfd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	frames := map[string][]byte{}
	// awaitDestroy reads destroy messages until match accepts one.
	awaitDestroy := func(name string, match func(m *inetDiag) bool) {
		buf := make([]byte, 64<<10)
		end := time.Now().Add(5 * time.Second)
		for time.Now().Before(end) {
			n, _, err := unix.Recvfrom(dfd, buf, 0)
			if err != nil {
				continue
			}
			msgs, _ := sdSplitNetlink(buf[:n], nil)
			for _, nm := range msgs {
				m, err := decodeInetDiag(nm.Payload)
				if err == nil && match(&m) {
					frames[name] = append([]byte(nil), nm.Payload...)
					return
				}
			}
		}
		t.Fatalf("no destroy message for %s", name)
	}
	tcp := func(network, laddr, client, server string) {
		ln, err := net.Listen(network, laddr)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		lp := sockPortOf(ln.Addr())
		if server == "" { // capture the listener from a dump
			fd, err := sockOpenDumpSocket()
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			if err := unix.Sendto(fd, sdDumpRequest(sdAFInet, sdIPProtoTCP, 9), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 64<<10)
		loop:
			for {
				n, _, err := unix.Recvfrom(fd, buf, 0)
				if err != nil {
					t.Fatal(err)
				}
				msgs, _ := sdSplitNetlink(buf[:n], nil)
				for _, nm := range msgs {
					if nm.Type == sdNlmsgDone {
						break loop
					}
					if m, err := decodeInetDiag(nm.Payload); err == nil && m.SrcPort == lp && m.State == sdTCPListen {
						frames["tcp4_listen_dump.bin"] = append([]byte(nil), nm.Payload...)
					}
				}
			}
		}
		c, err := net.Dial(network, ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		cp := sockPortOf(c.LocalAddr())
		_, _ = c.Write(make([]byte, 1024))
		c.Close()
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, s)
		s.Close()
		awaitDestroy(client, func(m *inetDiag) bool { return m.SrcPort == cp && m.DstPort == lp })
		if server != "" {
			awaitDestroy(server, func(m *inetDiag) bool { return m.SrcPort == lp && m.DstPort == cp })
		}
	}
	tcp("tcp4", "127.0.0.1:0", "tcp4_client_destroy.bin", "tcp4_server_destroy.bin")
	tcp("tcp4", "127.0.0.1:0", "tcp4_client_destroy.bin", "")
	tcp("tcp6", "[::1]:0", "tcp6_client_destroy.bin", "tcp6_server_destroy.bin")
	delete(frames, "tcp6_server_destroy.bin")

	us, uc := udpPair(t)
	_, _ = uc.Write([]byte("x"))
	ucp := sockPortOf(uc.LocalAddr())
	uc.Close()
	us.Close()
	awaitDestroy("udp4_connected_destroy.bin", func(m *inetDiag) bool { return m.SrcPort == ucp && m.DstPort != 0 })
	u6, err := net.ListenUDP("udp6", &net.UDPAddr{IP: sockLo6})
	if err != nil {
		t.Fatal(err)
	}
	u6p := sockPortOf(u6.LocalAddr())
	u6.Close()
	awaitDestroy("udp6_unconnected_destroy.bin", func(m *inetDiag) bool { return m.SrcPort == u6p && m.Family == sdAFInet6 })

	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name := range sockFrames {
		b, ok := frames[name]
		if !ok {
			t.Fatalf("frame %s not captured", name)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// sockReadHeap collects garbage and reads the heap statistics.

// TestPrivSockNetnsCensus: a process in a new network namespace is counted
// as not covered.
func TestPrivSockNetnsCensus(t *testing.T) {
	testutil.RequireRoot(t)
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	f := newSockFDScanner(procfs.New(""))
	before := f.otherNetns(st.Ino)
	cmd := exec.Command("unshare", "-n", "sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	ns := fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)
	testutil.WaitFor(t, 5*time.Second, "unshare -n", func() bool {
		var s unix.Stat_t
		return unix.Stat(ns, &s) == nil && s.Ino != st.Ino
	})
	if got := f.otherNetns(st.Ino); got != before+1 {
		t.Errorf("network namespaces not covered: %d, want %d", got, before+1)
	}
}

// TestPrivSockDestroyOverrun: with a tiny receive buffer on the destroy
// socket, a burst of closes overruns it; the loss becomes an ENOBUFS gap row
// (never silence), and the source goes on recording afterwards.
func TestPrivSockDestroyOverrun(t *testing.T) {
	testutil.RequireRoot(t)
	const held = 2000
	_, port := startSockServer(t)
	src, sink := startSock(t, Options{DestroyRcvBuf: 1}) // the kernel's minimum (about 2 KiB)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	hold := startSockHelper(t, "hold", addr, held)
	if s := hold.line(t, 30*time.Second); s != "ready" {
		t.Fatalf("hold helper said %q", s)
	}
	hold.stop(t) // 2,000 client closes in a loop, and as many server closes
	isGap := func(g event.Gap) bool {
		return g.Source == event.SourceSock && strings.Contains(g.Reason, "ENOBUFS")
	}
	testutil.WaitFor(t, 30*time.Second, "an ENOBUFS gap row", func() bool { return slices.ContainsFunc(sink.Gaps(), isGap) })
	if st := src.Stats(); st.Overruns == 0 {
		t.Errorf("gap row written but Overruns = 0: %+v", st)
	}
	for _, g := range sink.Gaps() {
		if isGap(g) && (g.FromTS <= 0 || g.ToTS < g.FromTS || g.Lost.Valid) {
			t.Errorf("ENOBUFS gap row %+v: want from ≤ to, both set, lost unknown", g)
		}
	}
	closes := len(sockRows(sink, func(r *event.Sock) bool { return r.Event == event.SockClose && r.RemotePort == port }))
	t.Logf("burst of %d connections closed: %d client close rows before the loss was noticed, %d overruns", held, closes, src.Stats().Overruns)

	// Afterwards: a short connection is recorded at its close. First the
	// burst ends: the server's closes trail the client's, and a socket
	// sends its destroy message when it is freed. Other processes' closes
	// can still overrun the tiny buffer on a busy machine: a connection
	// whose wait saw a new overrun is tried again; one whose wait saw none
	// must be recorded.
	testutil.WaitFor(t, 60*time.Second, "the burst's sockets to be freed", func() bool { return tcpSocketsOf(t, port) == 0 })
	for try := 1; ; try++ {
		over := src.Stats().Overruns
		t1 := time.Now().UnixNano()
		after := startSockHelper(t, "hold", addr, 1)
		if s := after.line(t, 10*time.Second); s != "ready" {
			t.Fatalf("hold helper said %q", s)
		}
		after.stop(t)
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if len(sockRows(sink, func(r *event.Sock) bool {
				return r.Event == event.SockClose && r.RemotePort == port && r.TS > t1
			})) > 0 {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		if n := src.Stats().Overruns - over; n == 0 || try == 5 {
			t.Fatalf("no close row of a connection made after the overrun within 10 s (try %d, %d new overruns)", try, n)
		}
		t.Logf("try %d: the buffer overran again while waiting; another connection", try)
	}
}

// tcpSocketsOf counts the IPv4 TCP sockets of this network namespace on
// port, local or remote, that are neither listening nor in TIME_WAIT (those
// have sent their destroy message), per /proc/net/tcp.
func tcpSocketsOf(t *testing.T, port uint16) int {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	hexPort := fmt.Sprintf(":%04X", port)
	n := 0
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line) // sl local_address rem_address st …
		if len(f) < 4 || f[3] == "0A" || f[3] == "06" {
			continue
		}
		if strings.HasSuffix(f[1], hexPort) || strings.HasSuffix(f[2], hexPort) {
			n++
		}
	}
	return n
}

// TestPrivSockOtherNetns: with AllNetns, the sockets of a process in another
// network namespace are recorded (listen, open with owner, close from the
// destroy message), with that namespace's inode, and the namespace's child
// source stops once no process uses it.
func TestPrivSockOtherNetns(t *testing.T) {
	testutil.RequireRoot(t)
	if _, err := exec.LookPath("ip"); err != nil {
		testutil.Skip(t, "priv", "ip (iproute2) is not installed")
	}
	sink := &event.MemSink{}
	src, err := New(Options{Sink: sink, AllNetns: true, DumpInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	src.censusEvery = 100 * time.Millisecond
	testutil.Go(t, "Source.Run", src.Run)

	const conns = 5
	h := startSockHelperAttr(t, "self", "", conns, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET})
	var port uint16
	if _, err := fmt.Sscanf(h.line(t, 10*time.Second), "port %d", &port); err != nil {
		t.Fatal(err)
	}
	if s := h.line(t, 10*time.Second); s != "ready" {
		t.Fatalf("helper said %q", s)
	}
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/net", h.pid), &st); err != nil {
		t.Fatal(err)
	}
	ns := event.Some(st.Ino)
	if ns == src.netns {
		t.Fatal("the helper shares the test's network namespace")
	}
	mine := func(r *event.Sock) bool { return r.Netns == ns && (r.LocalPort == port || r.RemotePort == port) }
	testutil.WaitFor(t, 15*time.Second, "listen and open rows from the other namespace, with owner", func() bool {
		n := 0
		for _, r := range sockRows(sink, mine) {
			if r.PID == event.Some(h.pid) && (r.Event == event.SockListen || r.Event == event.SockOpen) {
				n++
			}
		}
		return n >= 1+2*conns // the listener, both ends of each connection
	})
	if c := src.Stats().NetnsCovered; c < 1 {
		t.Errorf("NetnsCovered = %d, want ≥ 1", c)
	}
	h.stop(t)
	testutil.WaitFor(t, 15*time.Second, "close rows from the destroy messages of the other namespace", func() bool {
		n := 0
		for _, r := range sockRows(sink, mine) {
			if r.Event == event.SockClose && r.Flags&event.SockFlagFromDestroy != 0 {
				n++
			}
		}
		return n >= 1+2*conns
	})
	for _, r := range sockRows(sink, func(r *event.Sock) bool { return r.LocalPort == port || r.RemotePort == port }) {
		if r.Netns != ns {
			t.Errorf("row of the helper's port in netns %v, want %v: %+v", r.Netns, ns, r)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		src.mu.Lock()
		_, ok := src.children[st.Ino]
		src.mu.Unlock()
		if !ok {
			break
		}
		if time.Now().After(deadline) {
			var users []string
			ents, _ := os.ReadDir("/proc")
			for _, e := range ents {
				var s unix.Stat_t
				if unix.Stat("/proc/"+e.Name()+"/ns/net", &s) == nil && s.Ino == st.Ino {
					b, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
					users = append(users, e.Name()+" "+strings.ReplaceAll(string(b), "\x00", " "))
				}
			}
			t.Fatalf("the namespace's source did not stop within 15 s; processes in it: %q", users)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Entering the namespace to open the sockets left this process where
	// it was (/proc/PID/ns/net is the main thread's).
	var self unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &self); err != nil || self.Ino != src.netns.V {
		t.Errorf("this process's network namespace is %d (%v), want %d", self.Ino, err, src.netns.V)
	}
}

// udpPair returns an unconnected UDP socket on 127.0.0.1 and a client
// connected to it.
func udpPair(t *testing.T) (us, uc *net.UDPConn) {
	t.Helper()
	us, err := net.ListenUDP("udp4", &net.UDPAddr{IP: sockLo4})
	if err != nil {
		t.Fatal(err)
	}
	if uc, err = net.DialUDP("udp4", nil, us.LocalAddr().(*net.UDPAddr)); err != nil {
		t.Fatal(err)
	}
	return us, uc
}

// selfStart returns the test process's pid and start time.
func selfStart(t *testing.T) (int32, int64) {
	t.Helper()
	pid := int32(os.Getpid())
	start, err := procfs.New("").Start(pid)
	if err != nil {
		t.Fatal(err)
	}
	return pid, start
}
