package sockdiag

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pofr/pofr/internal/defaults"
	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/procfs"
)

// Source records TCP and UDP endpoints from sock_diag (see the package
// documentation). Create it with [New] and call Run once.
type Source struct {
	opts     Options
	log      *slog.Logger
	interval time.Duration
	now      func() time.Time
	refresh  chan struct{}
	netns    event.Opt[uint64]
	fs       procfs.FS

	// tmu guards the table: the main loop holds it while it uses the table
	// (dumps, census, queued batches), a destroy reader while it applies
	// its batch itself (see deliver).
	tmu sync.Mutex
	// Owned by the main loop (Run), under tmu.
	tbl        *table
	scanner    *sockFDScanner
	dumps      uint32 // dump requests sent (their netlink sequence numbers)
	exacts     uint32 // exact requests sent (sockHeld)
	exactMsgs  []sdNlMsg
	dumpBuf    []inetDiag
	compatTCP  bool // TCP dumps with one TCPDIAG_GETSOCK request (see sockDump)
	lastDumpOK int64
	lastCensus time.Time
	failed     map[uint64]bool // namespaces whose sockets could not be opened
	// censusEvery is the census cadence (tests shorten it).
	censusEvery time.Duration

	// Queue between the destroy reader goroutine and the main loop, for
	// the batches the reader could not apply itself; spare is the
	// queue's other buffer (under tmu).
	qmu     sync.Mutex
	queue   []sockDestroy
	spare   []sockDestroy
	qsignal chan struct{}

	// Counted by the destroy reader.
	overruns, lost atomic.Uint64

	// mu guards what Stats reads: the table's counters as the main loop
	// last published them and, with AllNetns, one child source per other
	// network namespace (keyed by its nsfs inode) and the summed counters of
	// children that stopped.
	mu       sync.Mutex
	shown    Stats
	children map[uint64]*sockChild
	retired  Stats
}

// sockChild is the source of one other network namespace.
type sockChild struct {
	src  *Source
	stop context.CancelFunc
	done chan struct{}
}

// New checks opts and returns a source ready to Run.
func New(opts Options) (*Source, error) {
	if opts.Sink == nil {
		return nil, errors.New("new sock source: no sink")
	}
	if opts.DumpInterval < 0 {
		return nil, fmt.Errorf("new sock source: negative dump interval %v", opts.DumpInterval)
	}
	if opts.DumpInterval == 0 {
		opts.DumpInterval = DefaultDumpInterval
	}
	defaults.Zero(&opts.ProcRoot, procfs.DefaultRoot)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fs := procfs.New(opts.ProcRoot)
	s := &Source{
		opts:      opts,
		log:       log.With("source", "sock"),
		interval:  opts.DumpInterval,
		now:       opts.Now,
		refresh:   make(chan struct{}, 1),
		qsignal:   make(chan struct{}, 1),
		scanner:   newSockFDScanner(fs),
		fs:        fs,
		compatTCP: true,
	}
	s.censusEvery = sockNetnsCensus
	if opts.AllNetns {
		s.censusEvery = sockNetnsCensusAll
	}
	nsPath := s.fs.Path("self/ns/net")
	if opts.Netns != "" {
		nsPath, opts.AllNetns, opts.ForceProcNet = opts.Netns, false, false
		s.opts = opts
	}
	var st unix.Stat_t
	if err := unix.Stat(nsPath, &st); err == nil {
		s.netns = event.Some(st.Ino)
	} else if opts.Netns != "" {
		return nil, fmt.Errorf("new sock source: network namespace %s: %w", opts.Netns, err)
	}
	t := newTable(opts.Sink)
	t.netns, t.selfPID, t.procs, t.conns = s.netns, opts.SelfPID, opts.Procs, opts.ConnOwners
	t.start, t.netnsOf = fs.Start, fs.NetNS
	t.findOwners = s.scanner.find
	s.tbl = t
	return s, nil
}

// sockInNetns runs open in the network namespace of the file path ("" is
// the caller's): sockets keep the namespace they were created in. The
// thread that entered the namespace is never unlocked, so it ends with its
// goroutine and no other goroutine runs in the namespace; it is never the
// main thread, which the runtime does not end.
// A non-zero want is the namespace's nsfs inode: a path that names another
// namespace by now (a /proc/PID whose pid was reused) is refused.
func sockInNetns(path string, want uint64, open func() (int, error)) (int, error) {
	if path == "" {
		return open()
	}
	nsfd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open network namespace: %w", err)
	}
	defer unix.Close(nsfd)
	var st unix.Stat_t
	if err := unix.Fstat(nsfd, &st); err != nil {
		return -1, fmt.Errorf("open network namespace: %w", err)
	}
	if want != 0 && st.Ino != want {
		return -1, fmt.Errorf("network namespace %s: inode %d, want %d (the process left it)", path, st.Ino, want)
	}
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result, 1)
	enter := func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
			ch <- result{-1, fmt.Errorf("enter network namespace %s: %w", path, err)}
			return
		}
		fd, err := open()
		ch <- result{fd, err}
	}
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() != unix.Getpid() {
			enter()
			return
		}
		// This is the main thread: it must not change namespace (it names
		// the process's namespaces in /proc/PID/ns, and the runtime never
		// ends it). While this goroutine holds it, the next one runs on
		// another thread.
		done := make(chan struct{})
		go func() { defer close(done); enter() }()
		<-done
		runtime.UnlockOSThread()
	}()
	r := <-ch
	return r.fd, r.err
}

// Stats returns a snapshot of the counters, those of the child sources of
// other network namespaces (AllNetns) included.
func (s *Source) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.shown
	st.Overruns, st.Lost = s.overruns.Load(), s.lost.Load()
	st.NetnsCovered = len(s.children)
	st.add(&s.retired)
	for _, c := range s.children {
		cs := c.src.Stats()
		st.add(&cs)
	}
	return st
}

// add adds the event counters and the live socket count of o to st.
func (st *Stats) add(o *Stats) {
	st.Dumps += o.Dumps
	st.TCPSkips += o.TCPSkips
	st.DumpErrors += o.DumpErrors
	st.Destroys += o.Destroys
	st.Overruns += o.Overruns
	st.Lost += o.Lost
	st.Listens += o.Listens
	st.Opens += o.Opens
	st.Closes += o.Closes
	st.Vanished += o.Vanished
	st.OwnerKnown += o.OwnerKnown
	st.OwnerUnknown += o.OwnerUnknown
	st.OwnerFromListener += o.OwnerFromListener
	st.OwnerFromTracepoint += o.OwnerFromTracepoint
	st.OwnerRecordsLost += o.OwnerRecordsLost
	st.OwnerOtherNetns += o.OwnerOtherNetns
	st.Unbound += o.Unbound
	st.Untracked += o.Untracked
	st.Tracked += o.Tracked
	st.FDScans += o.FDScans
	st.FDScanProcs += o.FDScanProcs
	st.FDScanGone += o.FDScanGone
}

// Refresh asks for a dump as soon as possible, in every namespace
// recorded. It never blocks. The collector does not call it: its dumps
// follow the profile's interval, and the owners of connections too short
// for a dump come from the sockowner tracepoints; tests call it to have a
// dump now rather than after the interval.
func (s *Source) Refresh() {
	select {
	case s.refresh <- struct{}{}:
	default:
	}
	s.mu.Lock()
	for _, c := range s.children {
		c.src.Refresh()
	}
	s.mu.Unlock()
}

// publish makes the table's counters what Stats returns. Called by the main
// loop after each change.
func (s *Source) publish() {
	s.mu.Lock()
	s.shown = s.tbl.stats
	s.mu.Unlock()
}

// drain applies the queued destroy messages, then batch (newer), to the
// table; s.tmu is held.
func (s *Source) drain(batch []sockDestroy) {
	s.qmu.Lock()
	q := s.queue
	s.queue = s.spare[:0]
	s.qmu.Unlock()
	if len(q) > 0 && len(batch) > 0 {
		q = append(q, batch...)
	} else if len(batch) > 0 {
		s.spare = q[:0]
		q = batch
	}
	if len(q) > 0 {
		s.tbl.applyDestroys(q, s.now().UnixNano())
		s.publish()
	}
	if len(batch) == 0 || len(q) > len(batch) {
		clear(q)
		s.spare = q[:0]
	}
}

// deliver hands a batch of destroy messages, read by the destroy reader, to
// the table: applied at once in the reader's thread when the main loop is
// not using the table, queued for the main loop (and a wake-up of it)
// otherwise, for example during a dump, whose rows must come first. A
// wake-up of the main loop per batch cost more than the batch's rows at
// ~20 closes per 50 ms batch (docs/design.md). A batch of more than
// sockDirectMax goes to the main loop too: the reader's thread is the
// process reader's, whose drains must not wait for hundreds of rows.
func (s *Source) deliver(batch []sockDestroy) {
	if len(batch) == 0 {
		return
	}
	if len(batch) <= sockDirectMax && s.tmu.TryLock() {
		s.drain(batch)
		s.tmu.Unlock()
		return
	}
	s.enqueue(batch)
}

// Run records until ctx ends, then returns nil. It returns an error only if
// neither sock_diag nor /proc/net can be read at start.
func (s *Source) Run(ctx context.Context) error {
	dumpFD := -1
	mode := ModeProcNet
	t0 := time.Now()
	// The main loop holds the table except while it waits (see deliver).
	s.tmu.Lock()
	defer s.tmu.Unlock()
	defer s.stopChildren()
	if !s.opts.ForceProcNet {
		fd, err := sockInNetns(s.opts.Netns, s.netns.V, sockOpenDumpSocket)
		if err == nil {
			s.dumps++
			s.tbl.planDump(s.now().UnixNano(), true)
			s.dumpBuf, err = sockDump(fd, true, s.opts.UDP, &s.compatTCP, s.dumps, s.dumpBuf[:0])
			if err != nil {
				unix.Close(fd)
			}
		}
		if err != nil && s.opts.Netns != "" {
			return fmt.Errorf("sock source for network namespace %s: %w", s.opts.Netns, err)
		}
		if err != nil {
			s.log.Warn("sock_diag unavailable, falling back to /proc/net polling: short-lived connections will be missed", "err", err)
		} else {
			dumpFD, mode = fd, ModeNetlink
		}
	}
	if mode == ModeProcNet {
		var err error
		if s.dumpBuf, err = s.procNetDump(s.dumpBuf[:0]); err != nil {
			return fmt.Errorf("sock source: %w", err)
		}
	}
	s.tbl.procnet = mode == ModeProcNet
	s.tbl.stats.Mode = mode
	s.publish()
	var wg sync.WaitGroup
	rctx, stopReader := context.WithCancel(context.Background())
	defer func() {
		stopReader()
		wg.Wait()
		if dumpFD >= 0 {
			unix.Close(dumpFD)
		}
	}()
	if mode == ModeNetlink {
		dfd, err := sockInNetns(s.opts.Netns, s.netns.V, s.openDestroySocket)
		if err != nil {
			// Dumps still work: record that closes between dumps are missed.
			s.log.Error("sock_diag destroy groups unavailable: only dumps, short-lived connections will be missed", "err", err)
			now := s.now().UnixNano()
			s.opts.Sink.AppendGap(&event.Gap{FromTS: now, ToTS: now, Source: event.SourceSock,
				Reason: "sock_diag destroy groups unavailable: " + err.Error()})
		} else {
			wg.Go(func() { s.readDestroys(rctx, dfd) })
		}
	}
	s.log.Info("sock source started", "mode", mode, "interval", s.interval, "udp", s.opts.UDP,
		"netns", s.netns.V)

	if mode == ModeNetlink && s.exactWorks(dumpFD) {
		s.tbl.held = func(m *inetDiag) bool { return s.sockHeld(dumpFD, m) }
	}
	// The first dump was made above; diff it now.
	s.lastDumpOK = s.now().UnixNano()
	s.tbl.applyDump(s.lastDumpOK, s.dumpBuf, t0, true)
	s.census(ctx)
	s.publish()
	wait := s.interval
	tick := time.NewTimer(wait)
	defer tick.Stop()
	// dump runs one; a dump asked for by Refresh is never quiet and
	// always asks for TCP.
	dump := func(timer bool) {
		wait = dumpWait(s.interval, wait, s.dumpOnce(ctx, dumpFD, mode, !timer) && timer)
		tick.Reset(wait)
	}
	// Destroy messages come in batches (see readDestroys), which the
	// reader applies itself while the loop waits: the loop is woken only
	// for a batch that came while it held the table.
	for {
		s.tmu.Unlock()
		select {
		case <-ctx.Done():
			s.tmu.Lock()
			// What the destroy reader still takes from the socket is
			// written too.
			stopReader()
			wg.Wait()
			s.drain(nil)
			return nil
		case <-s.qsignal:
			s.tmu.Lock()
			s.drain(nil)
		case <-tick.C:
			s.tmu.Lock()
			dump(true)
		case <-s.refresh:
			s.tmu.Lock()
			dump(false)
		}
	}
}

// dumpOnce runs one dump (or /proc/net poll) and diffs it with the table;
// it reports whether the dump changed nothing (see table.applyDump). The
// dump leaves TCP out when the table's plan allows it, unless force.
func (s *Source) dumpOnce(ctx context.Context, fd int, mode Mode, force bool) (quiet bool) {
	s.drain(nil)
	t0 := time.Now()
	var err error
	tcp := s.tbl.planDump(s.now().UnixNano(), force)
	if mode == ModeNetlink {
		s.dumpBuf = s.dumpBuf[:0]
		if tcp || s.opts.UDP {
			s.dumps++
			s.dumpBuf, err = sockDump(fd, tcp, s.opts.UDP, &s.compatTCP, s.dumps, s.dumpBuf)
		}
	} else {
		s.dumpBuf, err = s.procNetDump(s.dumpBuf[:0])
	}
	now := s.now().UnixNano()
	if err != nil {
		s.tbl.stats.DumpErrors++
		s.tbl.tcpAgain = true
		s.publish()
		s.log.Warn("socket dump", "mode", mode, "err", err)
		s.opts.Sink.AppendGap(&event.Gap{FromTS: s.lastDumpOK, ToTS: now, Source: event.SourceSock,
			Reason: "inet_diag dump: " + err.Error()})
		s.lastDumpOK = now
		return false
	}
	s.lastDumpOK = now
	quiet = s.tbl.applyDump(now, s.dumpBuf, t0, tcp)
	s.publish()
	s.drain(nil)
	if time.Since(s.lastCensus) >= s.censusEvery {
		s.census(ctx)
		s.publish()
	}
	return quiet
}

// census counts the network namespaces not covered or, with AllNetns,
// starts and stops the child sources of the other namespaces (children of
// ctx).
func (s *Source) census(ctx context.Context) {
	s.lastCensus = time.Now()
	if s.opts.Netns != "" {
		return
	}
	if !s.opts.AllNetns {
		n := s.scanner.otherNetns(s.netns.V)
		s.tbl.stats.NetnsUncovered = n
		return
	}
	inUse := s.scanner.netnsPids(s.netns.V)
	if inUse == nil {
		return // /proc unreadable this time: change nothing
	}
	s.mu.Lock()
	var gone []*sockChild
	for ino, c := range s.children {
		if _, ok := inUse[ino]; !ok {
			gone = append(gone, c)
			delete(s.children, ino)
		}
	}
	s.mu.Unlock()
	for _, c := range gone {
		s.retire(c)
	}
	for ino := range s.failed {
		if _, ok := inUse[ino]; !ok {
			delete(s.failed, ino)
		}
	}
	for ino, pid := range inUse {
		s.mu.Lock()
		_, have := s.children[ino]
		s.mu.Unlock()
		if have || s.failed[ino] {
			continue
		}
		if err := s.startChild(ctx, ino, pid); err != nil {
			if s.failed == nil {
				s.failed = make(map[uint64]bool)
			}
			s.failed[ino] = true
			s.log.Warn("sockets of a network namespace are not recorded", "netns", ino, "pid", pid, "err", err)
		}
	}
	s.tbl.stats.NetnsUncovered = len(s.failed)
}

// startChild starts the source of network namespace ino, entered through
// pid's /proc/PID/ns/net, as a child of ctx. It returns once the child
// records or has failed.
func (s *Source) startChild(ctx context.Context, ino uint64, pid int32) error {
	o := s.opts
	o.Netns = s.fs.PIDPath(pid, "ns/net")
	o.AllNetns = false
	o.Log = s.opts.Log
	c, err := New(o)
	if err != nil {
		return err
	}
	if c.netns.V != ino {
		return fmt.Errorf("pid %d left the namespace", pid) // the next census tries again
	}
	ctx, cancel := context.WithCancel(ctx)
	ch := &sockChild{src: c, stop: cancel, done: make(chan struct{})}
	errc := make(chan error, 1)
	// Registered before it starts, so that Stats counts it from its first
	// row on.
	s.mu.Lock()
	if s.children == nil {
		s.children = make(map[uint64]*sockChild)
	}
	s.children[ino] = ch
	s.mu.Unlock()
	go func() {
		defer close(ch.done)
		errc <- c.Run(ctx)
	}()
	// Run returns at once if it cannot open its sockets; otherwise it
	// records until stopped.
	for c.Stats().Mode == "" {
		select {
		case err := <-errc:
			cancel()
			s.mu.Lock()
			delete(s.children, ino)
			s.mu.Unlock()
			return err
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

// retire stops a child (it drains what its namespace's sockets reported)
// and keeps its counters.
func (s *Source) retire(c *sockChild) {
	c.stop()
	<-c.done
	st := c.src.Stats()
	st.Tracked = 0
	s.mu.Lock()
	s.retired.add(&st)
	s.mu.Unlock()
}

// stopChildren stops every child source.
func (s *Source) stopChildren() {
	s.mu.Lock()
	cs := s.children
	s.children = nil
	s.mu.Unlock()
	for _, c := range cs {
		s.retire(c)
	}
}

// procNetDump reads /proc/net/{tcp,tcp6,udp,udp6} into out.
func (s *Source) procNetDump(out []inetDiag) ([]inetDiag, error) {
	type file struct {
		name          string
		family, proto uint8
	}
	files := []file{{"tcp", sdAFInet, sdIPProtoTCP}, {"tcp6", sdAFInet6, sdIPProtoTCP}}
	if s.opts.UDP {
		files = append(files, file{"udp", sdAFInet, sdIPProtoUDP}, file{"udp6", sdAFInet6, sdIPProtoUDP})
	}
	for _, f := range files {
		p := s.fs.Path("net/" + f.name)
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) && f.family == sdAFInet6 {
			continue // IPv6 disabled
		}
		if err != nil {
			return out, fmt.Errorf("read %s: %w", p, err)
		}
		if out, err = sockParseProcNet(b, f.family, f.proto, out); err != nil {
			return out, fmt.Errorf("parse %s: %w", p, err)
		}
	}
	return out, nil
}

// sockDirectMax is the largest destroy batch a reader applies itself (see
// deliver): at 2,000 closes per second a 50 ms batch is 100 messages.
const sockDirectMax = 128

// sockHeld reports whether socket m still exists with an inode, so that a
// process may hold it in an fd: one exact sock_diag request on the dump
// socket fd, a hash lookup in the kernel. A socket that is gone, or
// orphaned (closed by its last holder, in FIN_WAIT or LAST_ACK: inode 0),
// is in no /proc/PID/fd, and a scan for it visits every process it may be
// in for nothing: the accepted end of a connection of a few ms, seen by a
// dump and closed before the scan, cost 3–5 ms of scan per dump on a busy
// host (docs/design.md). An error or an unclear answer is taken as held.
//
// TCP only: the kernel's UDP lookup takes the request's addresses swapped,
// and a wanted UDP socket is rare (connected ones get their owner from
// tracepoints).
func (s *Source) sockHeld(fd int, m *inetDiag) bool {
	if m.Protocol != sdIPProtoTCP {
		return true
	}
	s.exacts++
	seq := 1<<31 | s.exacts // apart from the dumps' sequence numbers
	if err := unix.Sendto(fd, sdExactRequest(m, seq), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return true
	}
	bp := sockDumpBuf.Get().(*[]byte)
	defer sockDumpBuf.Put(bp)
	for range 8 { // late replies to abandoned requests first, if any
		n, _, err := unix.Recvfrom(fd, *bp, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return true
		}
		if s.exactMsgs, err = sdSplitNetlink((*bp)[:n], s.exactMsgs[:0]); err != nil {
			return true
		}
		for _, nm := range s.exactMsgs {
			if nm.Seq != seq {
				continue
			}
			switch nm.Type {
			case sdNlmsgError:
				errno, err := sdNlError(nm.Payload)
				return err != nil || errno != int32(unix.ENOENT) && errno != int32(unix.ESTALE)
			case sdSockDiagByFamily:
				d, err := decodeInetDiag(nm.Payload)
				return err != nil || d.Cookie != m.Cookie || d.Inode != 0
			}
			return true
		}
	}
	return true
}

// exactWorks checks sockHeld against the sockets of the first dump that
// have an inode, a few of which still exist a moment later: a kernel that
// does not answer exact requests as expected must not make fd scans skip
// sockets that are there.
func (s *Source) exactWorks(fd int) bool {
	tried := 0
	for i := range s.dumpBuf {
		m := &s.dumpBuf[i]
		if m.Inode == 0 || m.Cookie == 0 || m.Protocol != sdIPProtoTCP {
			continue
		}
		if s.sockHeld(fd, m) {
			return true
		}
		if tried++; tried == 8 {
			break
		}
	}
	s.log.Debug("sock_diag exact requests not used before fd scans", "tried", tried)
	return false
}

// sockOpenDumpSocket opens the socket used for inet_diag dumps.
func sockOpenDumpSocket() (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return -1, fmt.Errorf("open sock_diag socket: %w", err)
	}
	return sockBind(fd, 0, 5*time.Second, "sock_diag socket")
}

// sockBind binds the netlink socket fd to the multicast groups and sets its
// receive timeout; on an error it closes fd. what names the socket in
// errors.
func sockBind(fd int, groups uint32, timeout time.Duration, what string) (int, error) {
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind %s: %w", what, err)
	}
	tv := unix.NsecToTimeval(int64(timeout))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("set %s timeout: %w", what, err)
	}
	return fd, nil
}

// sockDumpBuf is the receive buffer of dumps (the kernel sends at most 32 KiB
// per datagram).
var sockDumpBuf = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// sockDumpReq is one request of a dump: a protocol and family, or with
// compat the TCP sockets of both families (sdCompatTCPDumpRequest).
type sockDumpReq struct {
	family, proto uint8
	compat        bool
}

// sockDump dumps the TCP sockets (if tcp) and the UDP sockets (if udp) of
// both families into out. With *compat, TCP is asked for with one
// TCPDIAG_GETSOCK request; a kernel that refuses it clears *compat and is
// asked per family, in this dump and the next ones.
func sockDump(fd int, tcp, udp bool, compat *bool, seq uint32, out []inetDiag) ([]inetDiag, error) {
	var buf [4]sockDumpReq
	reqs := buf[:0]
	switch {
	case tcp && *compat:
		reqs = append(reqs, sockDumpReq{sdAFInet, sdIPProtoTCP, true})
	case tcp:
		reqs = append(reqs, sockDumpReq{sdAFInet, sdIPProtoTCP, false}, sockDumpReq{sdAFInet6, sdIPProtoTCP, false})
	}
	if udp {
		reqs = append(reqs, sockDumpReq{sdAFInet, sdIPProtoUDP, false}, sockDumpReq{sdAFInet6, sdIPProtoUDP, false})
	}
	bp := sockDumpBuf.Get().(*[]byte)
	defer sockDumpBuf.Put(bp)
	buf2 := *bp
	var msgs []sdNlMsg
	for i := 0; i < len(reqs); i++ {
		r := reqs[i]
		seq := seq<<3 | uint32(i)
		req := sdDumpRequest(r.family, r.proto, seq)
		if r.compat {
			req = sdCompatTCPDumpRequest(seq)
		}
		if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return out, fmt.Errorf("send inet_diag request (family %d proto %d): %w", r.family, r.proto, err)
		}
		n0 := len(out)
	recv:
		for {
			n, _, err := unix.Recvfrom(fd, buf2, 0)
			if err != nil {
				if errors.Is(err, unix.EINTR) {
					continue
				}
				return out, fmt.Errorf("receive inet_diag dump (family %d proto %d): %w", r.family, r.proto, err)
			}
			msgs, err = sdSplitNetlink(buf2[:n], msgs[:0])
			if err != nil {
				return out, fmt.Errorf("inet_diag dump: %w", err)
			}
			for _, m := range msgs {
				if m.Seq != seq {
					continue // a late reply to an abandoned request
				}
				switch m.Type {
				case sdNlmsgDone:
					break recv
				case sdNlmsgError:
					errno, err := sdNlError(m.Payload)
					if err != nil {
						return out, err
					}
					if errno == 0 {
						continue
					}
					if r.compat {
						// Not offered by this kernel: per family from now on.
						*compat = false
						out = out[:n0]
						reqs = append(reqs, sockDumpReq{sdAFInet, sdIPProtoTCP, false}, sockDumpReq{sdAFInet6, sdIPProtoTCP, false})
						break recv
					}
					if r.family == sdAFInet6 && errno == int32(unix.EAFNOSUPPORT) {
						break recv // IPv6 disabled
					}
					return out, fmt.Errorf("inet_diag dump (family %d proto %d): %w", r.family, r.proto, syscall.Errno(errno))
				case sdSockDiagByFamily, sdTCPDiagGetSock:
					d, err := decodeInetDiag(m.Payload)
					if err != nil {
						return out, fmt.Errorf("inet_diag dump: %w", err)
					}
					d.Protocol = r.proto
					out = append(out, d)
				}
			}
		}
	}
	return out, nil
}
