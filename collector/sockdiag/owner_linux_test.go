package sockdiag

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pofr/pofr/collector/sockowner"
	"github.com/pofr/pofr/collector/tracepoint"
	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/procfs"
	"github.com/pofr/pofr/internal/testutil"
)

// TestOwnerHelperProcess is not a test: the connection-owner tests run the
// test binary with POFR_OWNER_HELPER=tcp|udp so that the connections, and
// the server they go to, live in another process than the collector.
//
//	POFR_OWNER_N connections, POFR_OWNER_PAR at a time, each held
//	POFR_OWNER_HOLD_US µs: TCP connect, write 16 bytes, close; or UDP
//	socket, connect, send 16 bytes, close (what a libc resolver does).
//	Prints "port P" (its server), waits for a line on stdin, runs, prints
//	"done", then waits for stdin to close.
func TestOwnerHelperProcess(t *testing.T) {
	proto := os.Getenv("POFR_OWNER_HELPER")
	if proto == "" {
		return
	}
	n, _ := strconv.Atoi(os.Getenv("POFR_OWNER_N"))
	par, _ := strconv.Atoi(os.Getenv("POFR_OWNER_PAR"))
	hold, _ := strconv.Atoi(os.Getenv("POFR_OWNER_HOLD_US"))
	if err := ownerHelper(proto, n, max(par, 1), time.Duration(hold)*time.Microsecond); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func ownerHelper(proto string, n, par int, hold time.Duration) error {
	var addr string
	switch proto {
	case "tcp":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		testutil.Accept(ln, testutil.Drain)
		addr = ln.Addr().String()
	case "udp":
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		go func() {
			b := make([]byte, 64)
			for {
				if _, _, err := pc.ReadFrom(b); err != nil {
					return
				}
			}
		}()
		addr = pc.LocalAddr().String()
	default:
		return fmt.Errorf("unknown proto %q", proto)
	}
	_, port, _ := net.SplitHostPort(addr)
	fmt.Printf("port %s\n", port)
	in := bufio.NewReader(os.Stdin)
	if _, err := in.ReadString('\n'); err != nil {
		return err
	}
	msg := make([]byte, 16)
	work := make(chan struct{})
	errc := make(chan error, par)
	var wg sync.WaitGroup
	for range par {
		wg.Go(func() {
			for range work {
				c, err := net.Dial(proto, addr)
				if err != nil {
					errc <- err
					return
				}
				_, _ = c.Write(msg)
				time.Sleep(hold)
				c.Close()
			}
		})
	}
	for range n {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
	}
	fmt.Println("done")
	_, _ = io.Copy(io.Discard, in)
	return nil
}

// ownerProc is a running owner helper and its server's port.
type ownerProc struct {
	*sockProc
	port uint16
}

// startOwnerHelper starts a helper and reads its port; cleanup ends it.
func startOwnerHelper(tb testing.TB, proto string, n, par int, hold time.Duration) *ownerProc {
	tb.Helper()
	return startOwnerHelperOn(tb, -1, proto, n, par, hold)
}

// startOwnerHelperOn is startOwnerHelper with every thread of the helper on
// CPU cpu (if ≥ 0): its samples, the loopback softirqs it runs included,
// all go to that CPU's ring.
func startOwnerHelperOn(tb testing.TB, cpu int, proto string, n, par int, hold time.Duration) *ownerProc {
	tb.Helper()
	cmd := helperCmd("TestOwnerHelperProcess", []string{"POFR_OWNER_HELPER=" + proto, "POFR_OWNER_N=" + strconv.Itoa(n),
		"POFR_OWNER_PAR=" + strconv.Itoa(par), "POFR_OWNER_HOLD_US=" + strconv.Itoa(int(hold/time.Microsecond))}, "-test.bench=^$")
	p := &ownerProc{sockProc: startHelper(tb, cmd, cpu)}
	if _, err := fmt.Sscanf(p.line(tb, 10*time.Second), "port %d", &p.port); err != nil {
		tb.Fatal(err)
	}
	return p
}

// run starts the connections and waits until the helper made them all.
func (p *ownerProc) run(tb testing.TB, d time.Duration) {
	tb.Helper()
	if _, err := io.WriteString(p.stdin, "go\n"); err != nil {
		tb.Fatal(err)
	}
	if s := p.line(tb, d); s != "done" {
		tb.Fatalf("helper %d said %q, want done", p.pid, s)
	}
}

// clientCloses returns the close rows of the helper's client sockets.
func (p *ownerProc) clientCloses(sink *event.MemSink, proto string) []event.Sock {
	return sockRows(sink, func(r *event.Sock) bool {
		return r.Event == event.SockClose && r.Proto == proto && r.RemotePort == p.port && r.LocalPort != p.port
	})
}

// openConnOwners opens the tracepoint source of connection owners.
func openConnOwners(tb testing.TB, udp bool) *sockowner.Source {
	tb.Helper()
	co, err := sockowner.Open(sockowner.Options{UDP: udp})
	if errors.Is(err, tracepoint.ErrPerm) {
		testutil.Skip(tb, testutil.TierPriv, "perf_event_open refused: "+err.Error())
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { co.Close() })
	testutil.Go(tb, "sockowner.Source.Run", co.Run)
	return co
}

// TestPrivConnOwnerTCP: connections living 1 ms, which no dump sees, get
// their owner's pid and proc_start from the tracepoints.
func TestPrivConnOwnerTCP(t *testing.T) {
	testutil.RequireRoot(t)
	co := openConnOwners(t, false)
	src, sink := startSock(t, Options{ConnOwners: co}) // dumps only at start
	const n = 200
	h := startOwnerHelper(t, "tcp", n, 1, time.Millisecond)
	h.run(t, 30*time.Second)
	testutil.WaitFor(t, 10*time.Second, "client close rows", func() bool { return len(h.clientCloses(sink, "tcp")) >= n })
	rows := h.clientCloses(sink, "tcp")
	if len(rows) != n {
		t.Fatalf("%d client close rows, want %d", len(rows), n)
	}
	for _, r := range rows {
		if r.PID != event.Some(h.pid) || r.ProcStart != event.Some(h.start) || r.Flags&event.SockFlagOwnerUnknown != 0 {
			t.Fatalf("row %d→%d: pid %v start %v flags %#x, want pid %d start %d", r.LocalPort, r.RemotePort,
				r.PID, r.ProcStart, r.Flags, h.pid, h.start)
		}
	}
	if st := src.Stats(); st.OwnerFromTracepoint < n || st.FDScans > 1 {
		t.Errorf("stats: %d owners from tracepoints (want ≥ %d), %d fd scans (want only the first dump's)",
			st.OwnerFromTracepoint, n, st.FDScans)
	}
	t.Logf("tracker: %+v", co.Stats())
}

// TestPrivConnOwnerUDP: connected UDP sockets living 1 ms get their owner
// from the route lookup of connect(2).
func TestPrivConnOwnerUDP(t *testing.T) {
	testutil.RequireRoot(t)
	co := openConnOwners(t, true)
	_, sink := startSock(t, Options{ConnOwners: co, UDP: true})
	const n = 200
	h := startOwnerHelper(t, "udp", n, 1, time.Millisecond)
	h.run(t, 30*time.Second)
	testutil.WaitFor(t, 10*time.Second, "client close rows", func() bool { return len(h.clientCloses(sink, "udp")) >= n })
	rows := h.clientCloses(sink, "udp")
	known := 0
	for _, r := range rows {
		if r.PID == event.Some(h.pid) && r.ProcStart == event.Some(h.start) {
			known++
		} else if r.PID.Valid {
			t.Errorf("row %d→%d: pid %v, want %d", r.LocalPort, r.RemotePort, r.PID, h.pid)
		}
	}
	t.Logf("connected UDP: %d of %d close rows with their owner; tracker %+v", known, len(rows), co.Stats())
	if len(rows) != n || known != n {
		t.Errorf("%d of %d rows (want %d) have their owner", known, len(rows), n)
	}
}

// BenchmarkPrivConnOwner measures the share of client close rows that name
// their owner and the collector's CPU per connection, for connections
// living 1 ms … 1 s, with and without the tracepoint source, dumps every
// second (the default profile). The connections and their server run in a
// helper process, so the test process's CPU is the collector's: cpu_µs/conn
// is all of it divided by the connections, net_µs/conn the same after
// subtracting the source's CPU rate measured for 2 s before the run (dumps,
// other processes' sockets on a shared host). Run:
//
//	go test ./collector/sockdiag/ -run '^$' -bench PrivConnOwner -benchtime=1x
func BenchmarkPrivConnOwner(b *testing.B) {
	testutil.RequireRoot(b)
	type load struct {
		hold   time.Duration
		n, par int
	}
	loads := []load{{time.Millisecond, 1000, 1}, {10 * time.Millisecond, 1000, 10},
		{100 * time.Millisecond, 1000, 50}, {time.Second, 400, 100}}
	for _, proto := range []string{"tcp", "udp"} {
		for _, tp := range []bool{false, true} {
			for _, l := range loads {
				name := fmt.Sprintf("%s/sockdiag/%v", proto, l.hold)
				if tp {
					name = fmt.Sprintf("%s/tracepoint/%v", proto, l.hold)
				}
				b.Run(name, func(b *testing.B) {
					for b.Loop() {
						ownerBenchRun(b, proto, tp, l.hold, l.n, l.par)
					}
				})
			}
		}
	}
}

func ownerBenchRun(b *testing.B, proto string, tp bool, hold time.Duration, n, par int) {
	opts := Options{Sink: &event.MemSink{}, UDP: proto == "udp", DumpInterval: time.Second}
	if tp {
		opts.ConnOwners = openConnOwners(b, proto == "udp")
	}
	sink := opts.Sink.(*event.MemSink)
	src, err := New(opts)
	if err != nil {
		b.Fatal(err)
	}
	h := startOwnerHelper(b, proto, n, par, hold)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	testutil.WaitFor(b, 10*time.Second, "first dump", func() bool { return src.Stats().Dumps >= 1 })
	// The background: dumps of the whole host's sockets every second and
	// other processes' sockets closing, measured for 2 s before the run and
	// subtracted from it in net_µs/conn.
	bg0, bt0 := testutil.ProcessCPU(), time.Now()
	time.Sleep(2 * time.Second)
	bgRate := float64(testutil.ProcessCPU()-bg0) / float64(time.Since(bt0))
	cpu0, t0 := testutil.ProcessCPU(), time.Now()
	h.run(b, 5*time.Minute)
	// Wait for the close rows: first on the counter (cheap), then on the
	// rows themselves (other processes' sockets count too).
	want := uint64(n)
	if proto == "tcp" {
		want = 2 * uint64(n) // client and accepted side
	}
	deadline := time.Now().Add(10 * time.Second)
	for src.Stats().Closes < want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for len(h.clientCloses(sink, proto)) < n && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	cpu, wall := testutil.ProcessCPU()-cpu0, time.Since(t0)
	cancel()
	<-done
	rows := h.clientCloses(sink, proto)
	known := 0
	for _, r := range rows {
		if r.PID == event.Some(h.pid) {
			known++
		}
	}
	b.ReportMetric(100*float64(known)/float64(n), "owner_%")
	b.ReportMetric(float64(len(rows)), "rows")
	b.ReportMetric(float64(cpu)/1e3/float64(n), "cpu_µs/conn")
	b.ReportMetric((float64(cpu)-bgRate*float64(wall))/1e3/float64(n), "net_µs/conn")
	b.ReportMetric(bgRate*100, "bg_cpu_%")
	st := src.Stats()
	b.ReportMetric(float64(st.Destroys), "destroys")
	b.ReportMetric(float64(st.FDScans), "fdscans")
}

// TestPrivConnOwnerLoss: records the ring could not hold become a gap row
// with their count, and owners are named again afterwards.
func TestPrivConnOwnerLoss(t *testing.T) {
	testutil.RequireRoot(t)
	co, err := sockowner.Open(sockowner.Options{RingBytes: 8 << 10}) // 2 pages: a few dozen records
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { co.Close() })
	// Fill the ring before anything drains it.
	const burst = 200
	// Both on CPU 0, so that the later samples go to the ring that lost some.
	h0 := startOwnerHelperOn(t, 0, "tcp", burst, 4, 0)
	h0.run(t, 30*time.Second)
	src, sink := startSock(t, Options{ConnOwners: co}) // its first dump read the ring
	testutil.Go(t, "sockowner.Source.Run", co.Run)
	// The kernel writes its loss record when the ring has room again, before
	// the next sample: one connection on CPU 0 brings it out, a dump reads it.
	lossOut := func() {
		startOwnerHelperOn(t, 0, "tcp", 1, 1, 0).run(t, 30*time.Second)
		sockDumpNow(t, src)
	}
	lossOut()
	ownerGaps := func() (gaps []event.Gap) {
		for _, g := range sink.Gaps() {
			if strings.Contains(g.Reason, "connection owner") {
				gaps = append(gaps, g)
			}
		}
		return gaps
	}
	if g := ownerGaps(); len(g) == 0 || !g[0].Lost.Valid || g[0].Lost.V < 1 {
		t.Fatalf("no gap row with a lost count for the overrun ring; gaps %+v", sink.Gaps())
	}
	// Recording continues: connections made after the loss are all
	// attributed. On a busy machine other processes' connections can fill
	// the small ring again; a batch during which the kernel dropped records
	// again is tried again, one with no new loss must be attributed.
	const n = 20
	for try := 1; ; try++ {
		lost := co.Stats().Lost
		h := startOwnerHelperOn(t, 0, "tcp", n, 1, time.Millisecond)
		h.run(t, 30*time.Second)
		testutil.WaitFor(t, 10*time.Second, "client close rows", func() bool { return len(h.clientCloses(sink, "tcp")) >= n })
		var wrong []string
		for _, r := range h.clientCloses(sink, "tcp") {
			if r.PID != event.Some(h.pid) {
				wrong = append(wrong, fmt.Sprintf("%d→%d pid %v", r.LocalPort, r.RemotePort, r.PID))
			}
		}
		if len(wrong) == 0 {
			break
		}
		lossOut()
		if again := co.Stats().Lost - lost; again == 0 || try == 3 {
			t.Errorf("after the loss (try %d, %d records lost again): rows without the helper's pid %d: %v", try, again, h.pid, wrong)
			break
		}
		t.Logf("try %d: the ring lost records again; %d rows not attributed", try, len(wrong))
	}
	// Every loss is a gap row with its count.
	var sum int64
	for _, g := range ownerGaps() {
		sum += g.Lost.V
	}
	if st := src.Stats(); st.OwnerRecordsLost != uint64(sum) {
		t.Errorf("stats count %d lost records, the gap rows %d", st.OwnerRecordsLost, sum)
	}
	t.Logf("gap: %d records lost (%d connections made); %+v", ownerGaps()[0].Lost.V, burst, co.Stats())
}

// sockInode returns the inode of a connection's or listener's socket.
func sockInode(t *testing.T, c syscall.Conn) uint32 {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &st) }); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	return uint32(st.Ino)
}

// sockAcceptedPair returns a loopback TCP listener, a connection to it and
// its accepted end, all closed when the test ends.
func sockAcceptedPair(t *testing.T) (ln net.Listener, c, accepted net.Conn) {
	t.Helper()
	ln = testutil.Listen(t, "tcp4", "127.0.0.1:0")
	ch := make(chan net.Conn, 1)
	testutil.Accept(ln, func(c net.Conn) { ch <- c })
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	accepted = <-ch
	t.Cleanup(func() { accepted.Close() })
	return ln, c, accepted
}

// TestPrivSockHeld: the exact request made before an fd scan says held
// for a live accepted socket, and not once it is closed (orphaned or in
// TIME_WAIT, without an inode, or gone), nor for a cookie that is not the
// socket's (another socket on the same tuple).
func TestPrivSockHeld(t *testing.T) {
	testutil.RequireRoot(t)
	ln, c, srv := sockAcceptedPair(t)
	fd, err := sockOpenDumpSocket()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	compat := true
	dump, err := sockDump(fd, true, false, &compat, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	lport, cport := uint16(ln.Addr().(*net.TCPAddr).Port), uint16(c.LocalAddr().(*net.TCPAddr).Port)
	i := slices.IndexFunc(dump, func(m inetDiag) bool { return m.SrcPort == lport && m.DstPort == cport })
	if i < 0 {
		t.Fatalf("accepted socket %d→%d not in the dump", lport, cport)
	}
	m := dump[i]
	s := &Source{}
	if !s.sockHeld(fd, &m) {
		t.Fatal("live accepted socket: not held")
	}
	other := m
	other.Cookie++
	if s.sockHeld(fd, &other) {
		t.Error("another cookie on the same tuple: held")
	}
	srv.Close() // FIN_WAIT, then TIME_WAIT once the client closes
	testutil.WaitFor(t, 5*time.Second, "the closed accepted socket to be not held", func() bool { return !s.sockHeld(fd, &m) })
	c.Close()
	if s.sockHeld(fd, &m) {
		t.Error("closed accepted socket held again after the client closed")
	}
}

// TestSockFDScanNear: an inode marked near is looked for in its hint (the
// listener's owner), new processes and recent holders only, so a socket that
// is gone costs no walk of every process; one not marked near is looked for
// everywhere.
func TestSockFDScanNear(t *testing.T) {
	testutil.RequireRoot(t) // other processes' fds
	ln, _, s := sockAcceptedPair(t)
	f := newSockFDScanner(procfs.New(""))
	me := int32(os.Getpid())
	var got []int32
	found := func(_ *sockEntry, pid int32) { got = append(got, pid) }
	// The listener, looked for everywhere: this process becomes a holder.
	f.find(map[uint32]*sockEntry{sockInode(t, ln.(*net.TCPListener)): {}}, found)
	if !slices.Equal(got, []int32{me}) {
		t.Fatalf("listener found in %v, want [%d]", got, me)
	}
	got = nil
	if f.find(map[uint32]*sockEntry{sockInode(t, s.(*net.TCPConn)): {near: true}}, found); !slices.Equal(got, []int32{me}) {
		t.Fatalf("accepted socket (near) found in %v, want [%d] (a recent holder)", got, me)
	}
	const gone = 1<<32 - 2 // no socket has this inode
	near := f.find(map[uint32]*sockEntry{gone: {near: true}}, found)
	far := f.find(map[uint32]*sockEntry{gone: {}}, found)
	t.Logf("a gone inode cost %d process visits marked near, %d not (%d processes)", near, far, len(f.pids))
	if far != len(f.pids) || near >= far {
		t.Errorf("gone inode: %d visits near, %d not, of %d processes: want every process only when not near", near, far, len(f.pids))
	}
	// A fresh scanner sees every process as new; a near socket with its
	// listener's owner as hint is found there first.
	got = nil
	fresh := newSockFDScanner(procfs.New(""))
	if n := fresh.find(map[uint32]*sockEntry{sockInode(t, s.(*net.TCPConn)): {near: true, hint: me}}, found); n != 1 || !slices.Equal(got, []int32{me}) {
		t.Errorf("hinted near socket found in %v after %d visits, want [%d] after 1", got, n, me)
	}
}
