package sockdiag

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pofr/pofr/collector/sockowner"
	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/procfs"
)

// Source records TCP and UDP endpoints from sock_diag (see the package
// documentation of the socket source in sock.go). Create it with
// [New] and call Run once.
type Source struct {
	opts     Options
	log      *slog.Logger
	interval time.Duration
	now      func() time.Time
	refresh  chan struct{}
	netns    event.Opt[uint64]
	fs       procfs.FS
	mode     string // set once by Run

	mu    sync.Mutex
	stats Stats

	// Queue between the destroy reader goroutine and the main loop.
	qmu     sync.Mutex
	queue   []sockDestroy
	spare   []sockDestroy
	qsignal chan struct{}

	// Owned by the main loop (Run).
	tracked    map[uint64]*sockEntry
	listeners  map[sockListenKey][]*sockEntry
	scanner    *sockFDScanner
	gen        uint64
	dumpBuf    []inetDiag
	lastDumpOK int64
	lastCensus time.Time
	want       map[uint32]*sockEntry
	fresh      []*sockEntry
	// lastOwnerSync is when ConnOwners was last synced (gap rows).
	lastOwnerSync int64

	// AllNetns: one child source per other network namespace, keyed by its
	// nsfs inode; retired sums the counters of children that stopped.
	runCtx   context.Context
	childMu  sync.Mutex
	children map[uint64]*sockChild
	retired  Stats
	failed   map[uint64]bool // namespaces whose sockets could not be opened
	// censusEvery is the census cadence (tests shorten it).
	censusEvery time.Duration
}

// sockChild is the source of one other network namespace.
type sockChild struct {
	src  *Source
	stop context.CancelFunc
	done chan struct{}
}

// sockDestroy is one item of the reader → main loop queue: a decoded destroy
// message, or an overrun marker.
type sockDestroy struct {
	ts      int64
	msg     inetDiag
	overrun bool  // ENOBUFS: msg is empty, since is the previous receive time
	since   int64 // overrun only
	dropped int64 // overrun only: messages dropped by a full queue
}

// sockEntry is one live socket in the table, keyed by cookie (netlink mode) or
// inode (procnet mode).
type sockEntry struct {
	m          inetDiag // last sighting
	firstTS    int64
	dir        string
	pid        int32
	start      int64
	owner      bool // pid/start known
	self       bool
	ownerTried bool   // an fd scan looked for the inode and did not find it
	gen        uint64 // last dump that saw it
	tpPID      int32  // owner pid from ConnOwners whose process was gone (no proc_start)
	missing    int64  // when it was first missing from a dump; 0 if present
}

// sockListenKey indexes listeners by protocol and local port.
type sockListenKey struct {
	proto uint8
	port  uint16
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
	if opts.ProcRoot == "" {
		opts.ProcRoot = procfs.DefaultRoot
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Source{
		opts:      opts,
		log:       log.With("source", "sock"),
		interval:  opts.DumpInterval,
		now:       opts.Now,
		refresh:   make(chan struct{}, 1),
		qsignal:   make(chan struct{}, 1),
		tracked:   make(map[uint64]*sockEntry),
		listeners: make(map[sockListenKey][]*sockEntry),
		want:      make(map[uint32]*sockEntry),
		scanner:   newSockFDScanner(procfs.New(opts.ProcRoot)),
		fs:        procfs.New(opts.ProcRoot),
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
	st := s.stats
	s.mu.Unlock()
	s.childMu.Lock()
	defer s.childMu.Unlock()
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
	st.Unbound += o.Unbound
	st.Untracked += o.Untracked
	st.Tracked += o.Tracked
	st.FDScans += o.FDScans
	st.FDScanProcs += o.FDScanProcs
}

// Refresh asks for a dump as soon as possible (for example on exec, so that
// the new process's sockets get an owner early), in every namespace
// recorded. It never blocks.
func (s *Source) Refresh() {
	select {
	case s.refresh <- struct{}{}:
	default:
	}
	s.childMu.Lock()
	for _, c := range s.children {
		c.src.Refresh()
	}
	s.childMu.Unlock()
}

// stat applies f to the counters under the lock.
func (s *Source) stat(f func(*Stats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

// Run records until ctx ends, then returns nil. It returns an error only if
// neither sock_diag nor /proc/net can be read at start.
func (s *Source) Run(ctx context.Context) error {
	dumpFD := -1
	mode := ModeProcNet
	t0 := time.Now()
	s.runCtx = ctx
	defer s.stopChildren()
	if !s.opts.ForceProcNet {
		fd, err := sockInNetns(s.opts.Netns, s.netns.V, sockOpenDumpSocket)
		if err == nil {
			s.dumpBuf, err = sockDump(fd, s.opts.UDP, 1, s.dumpBuf[:0])
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
	s.mode = mode
	s.stat(func(st *Stats) { st.Mode = mode })
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

	// The first dump was made above; diff it now.
	s.lastDumpOK = s.now().UnixNano()
	s.applyDump(s.lastDumpOK, s.dumpBuf, mode == ModeProcNet, t0)
	s.census()
	tick := time.NewTicker(s.interval)
	defer tick.Stop()
	// Destroy messages are drained in batches: the reader signals when the
	// queue stops being empty, and the drain runs sockDrainDelay later, so a
	// burst costs the main loop one wake-up per batch, not one per socket.
	var drainAt <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			s.drain()
			return nil
		case <-s.qsignal:
			if drainAt == nil {
				drainAt = time.After(sockDrainDelay)
			}
		case <-drainAt:
			drainAt = nil
			s.drain()
		case <-tick.C:
			s.dumpOnce(dumpFD, mode)
		case <-s.refresh:
			s.dumpOnce(dumpFD, mode)
		}
	}
}

// dumpOnce runs one dump (or /proc/net poll) and diffs it with the table.
func (s *Source) dumpOnce(fd int, mode string) {
	s.drain()
	t0 := time.Now()
	s.gen++
	var err error
	if mode == ModeNetlink {
		s.dumpBuf, err = sockDump(fd, s.opts.UDP, uint32(s.gen+1), s.dumpBuf[:0])
	} else {
		s.dumpBuf, err = s.procNetDump(s.dumpBuf[:0])
	}
	now := s.now().UnixNano()
	if err != nil {
		s.stat(func(st *Stats) { st.DumpErrors++ })
		s.log.Warn("socket dump", "mode", mode, "err", err)
		s.opts.Sink.AppendGap(&event.Gap{FromTS: s.lastDumpOK, ToTS: now, Source: event.SourceSock,
			Reason: "inet_diag dump: " + err.Error()})
		s.lastDumpOK = now
		return
	}
	s.lastDumpOK = now
	s.applyDump(now, s.dumpBuf, mode == ModeProcNet, t0)
	s.drain()
	if time.Since(s.lastCensus) >= s.censusEvery {
		s.census()
	}
}

// census counts the network namespaces not covered or, with AllNetns,
// starts and stops the child sources of the other namespaces.
func (s *Source) census() {
	s.lastCensus = time.Now()
	if s.opts.Netns != "" {
		return
	}
	if !s.opts.AllNetns {
		n := s.scanner.otherNetns(s.netns.V)
		s.stat(func(st *Stats) { st.NetnsUncovered = n })
		return
	}
	inUse := s.scanner.netnsPids(s.netns.V)
	if inUse == nil {
		return // /proc unreadable this time: change nothing
	}
	s.childMu.Lock()
	var gone []*sockChild
	for ino, c := range s.children {
		if _, ok := inUse[ino]; !ok {
			gone = append(gone, c)
			delete(s.children, ino)
		}
	}
	s.childMu.Unlock()
	for _, c := range gone {
		s.retire(c)
	}
	for ino := range s.failed {
		if _, ok := inUse[ino]; !ok {
			delete(s.failed, ino)
		}
	}
	for ino, pid := range inUse {
		s.childMu.Lock()
		_, have := s.children[ino]
		s.childMu.Unlock()
		if have || s.failed[ino] {
			continue
		}
		if err := s.startChild(ino, pid); err != nil {
			if s.failed == nil {
				s.failed = make(map[uint64]bool)
			}
			s.failed[ino] = true
			s.log.Warn("sockets of a network namespace are not recorded", "netns", ino, "pid", pid, "err", err)
		}
	}
	s.childMu.Lock()
	covered := len(s.children)
	s.childMu.Unlock()
	s.stat(func(st *Stats) { st.NetnsUncovered, st.NetnsCovered = len(s.failed), covered })
}

// startChild starts the source of network namespace ino, entered through
// pid's /proc/PID/ns/net. It returns once the child records or has failed.
func (s *Source) startChild(ino uint64, pid int32) error {
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
	ctx, cancel := context.WithCancel(s.runCtx)
	ch := &sockChild{src: c, stop: cancel, done: make(chan struct{})}
	errc := make(chan error, 1)
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
			return err
		case <-time.After(time.Millisecond):
		}
	}
	s.childMu.Lock()
	if s.children == nil {
		s.children = make(map[uint64]*sockChild)
	}
	s.children[ino] = ch
	s.childMu.Unlock()
	return nil
}

// retire stops a child (it drains what its namespace's sockets reported)
// and keeps its counters.
func (s *Source) retire(c *sockChild) {
	c.stop()
	<-c.done
	st := c.src.Stats()
	st.Tracked = 0
	s.childMu.Lock()
	s.retired.add(&st)
	s.childMu.Unlock()
}

// stopChildren stops every child source.
func (s *Source) stopChildren() {
	s.childMu.Lock()
	cs := s.children
	s.children = nil
	s.childMu.Unlock()
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

// applyDump diffs one dump with the table and writes listen, open and
// vanished close rows. t0 is when the dump began (zero: not timed).
func (s *Source) applyDump(now int64, dump []inetDiag, procnet bool, t0 time.Time) {
	clear(s.want)
	s.fresh = s.fresh[:0]
	s.syncOwners(now)
	var untracked, fromTP uint64
	for i := range dump {
		m := &dump[i]
		if m.SrcPort == 0 && m.DstPort == 0 {
			continue // never bound
		}
		key := m.Cookie
		if procnet {
			key = uint64(m.Inode)
		}
		e := s.tracked[key]
		if e == nil {
			if len(s.tracked) >= sockMaxTracked {
				untracked++
				continue
			}
			e = &sockEntry{m: *m, firstTS: now}
			s.tracked[key] = e
			s.fresh = append(s.fresh, e)
			if isListener(m) {
				k := sockListenKey{m.Protocol, m.SrcPort}
				s.listeners[k] = append(s.listeners[k], e)
			}
		} else {
			inode := e.m.Inode
			e.m = *m
			if e.m.Inode == 0 {
				e.m.Inode = inode
			}
			e.missing = 0
		}
		e.gen = s.gen
		if !e.owner && s.takeOwner(e) {
			fromTP++
		}
		if !e.owner && !e.ownerTried && m.Inode != 0 {
			s.want[m.Inode] = e
		}
	}
	if len(s.want) > 0 {
		procs := s.scanner.find(s.want, s.resolve)
		for _, e := range s.want {
			e.ownerTried = true // not found: the owner is gone or holds it outside /proc
		}
		s.stat(func(st *Stats) { st.FDScans++; st.FDScanProcs += uint64(procs) })
	}
	var listens, opens uint64
	for _, e := range s.fresh {
		r := s.row(e, now)
		if isListener(&e.m) {
			r.Event = event.SockListen
			listens++
		} else {
			r.Event = event.SockOpen
			opens++
		}
		s.opts.Sink.AppendSock(&r)
	}
	var vanished, known, unknown, fromListener uint64
	for key, e := range s.tracked {
		if e.gen == s.gen {
			continue
		}
		if !procnet {
			if e.missing == 0 {
				e.missing = now
			}
			if time.Duration(now-e.missing) < sockVanishGrace {
				continue
			}
		}
		r := s.row(e, now)
		r.Event = event.SockClose
		r.Flags |= event.SockFlagVanished
		if !e.owner && e.tpPID == 0 && s.byListener(&r, &e.m) {
			fromListener++
		}
		if r.PID.Valid {
			known++
		} else {
			unknown++
		}
		s.opts.Sink.AppendSock(&r)
		s.forget(key, e)
		vanished++
	}
	var took time.Duration
	if !t0.IsZero() {
		took = time.Since(t0)
	}
	s.stat(func(st *Stats) {
		st.Dumps++
		st.Listens += listens
		st.Opens += opens
		st.Closes += vanished
		st.Vanished += vanished
		st.OwnerKnown += known
		st.OwnerUnknown += unknown
		st.OwnerFromListener += fromListener
		st.Untracked += untracked
		st.OwnerFromTracepoint += fromTP
		st.Tracked = len(s.tracked)
		if took > 0 {
			st.LastDump = took
		}
	})
}

// syncOwners brings Options.ConnOwners up to date before a dump or a batch
// of destroy notifications is applied; a loss of tracepoint records becomes
// a gap row.
func (s *Source) syncOwners(now int64) {
	if s.opts.ConnOwners == nil {
		return
	}
	if lost := s.opts.ConnOwners.Sync(); lost > 0 {
		s.opts.Sink.AppendGap(&event.Gap{FromTS: s.lastOwnerSync, ToTS: now, Source: event.SourceSock,
			Lost: event.Some(int64(lost)), Reason: "connection owner tracepoint records lost (ring full)"})
		s.stat(func(st *Stats) { st.OwnerRecordsLost += lost })
	}
	s.lastOwnerSync = now
}

// connOwner takes the owner of socket m from Options.ConnOwners.
func (s *Source) connOwner(m *inetDiag) (sockowner.Owner, bool) {
	if s.opts.ConnOwners == nil || m.DstPort == 0 || m.SrcPort == 0 {
		return sockowner.Owner{}, false
	}
	n := m.addrLen()
	k, laddr := sockowner.KeyOf(m.Protocol, m.Src[:n], m.SrcPort, m.Dst[:n], m.DstPort)
	return s.opts.ConnOwners.Take(k, laddr)
}

// takeOwner gives a tracked socket its owner from Options.ConnOwners and
// reports whether it did. A pid whose process is already gone gives no
// owner here (its life cannot be named); the fd scan and the close row
// still try.
func (s *Source) takeOwner(e *sockEntry) bool {
	if isListener(&e.m) {
		return false
	}
	o, ok := s.connOwner(&e.m)
	if !ok {
		return false
	}
	start, self, ok := s.owner(o.PID)
	if !ok {
		e.tpPID = o.PID
		return false
	}
	e.pid, e.start, e.self, e.owner = o.PID, start, self, true
	return true
}

// ownerRow fills the owner of a close row for a socket no dump saw, from
// Options.ConnOwners, and reports whether it did. When the process is gone
// already the row gets the pid without proc_start.
func (s *Source) ownerRow(r *event.Sock, m *inetDiag) bool {
	o, ok := s.connOwner(m)
	if !ok {
		return false
	}
	r.PID = event.Some(o.PID)
	r.Flags &^= event.SockFlagOwnerUnknown
	if start, self, ok := s.owner(o.PID); ok {
		r.ProcStart = event.Some(start)
		if self {
			r.Flags |= event.SockFlagSelf
		}
	}
	return true
}

// resolve is called by the fd scanner for each wanted inode it finds.
func (s *Source) resolve(e *sockEntry, pid int32) {
	start, self, ok := s.owner(pid)
	if !ok {
		return
	}
	e.pid, e.start, e.self, e.owner = pid, start, self, true
}

// owner returns the proc_start and self flag of pid.
func (s *Source) owner(pid int32) (start int64, self, ok bool) {
	if s.opts.Procs != nil {
		if pi, ok := s.opts.Procs.Lookup(pid); ok {
			return pi.Start, pi.Self || pid == s.opts.SelfPID, true
		}
	}
	start, err := s.fs.Start(pid)
	if err != nil {
		return 0, false, false
	}
	return start, s.opts.SelfPID != 0 && pid == s.opts.SelfPID, true
}

// forget removes a socket from the table.
func (s *Source) forget(key uint64, e *sockEntry) {
	delete(s.tracked, key)
	if isListener(&e.m) {
		k := sockListenKey{e.m.Protocol, e.m.SrcPort}
		l := s.listeners[k]
		for i, x := range l {
			if x == e {
				l = append(l[:i], l[i+1:]...)
				break
			}
		}
		if len(l) == 0 {
			delete(s.listeners, k)
		} else {
			s.listeners[k] = l
		}
	}
}

// isListener reports whether m is a TCP listener or an unconnected UDP socket.
func isListener(m *inetDiag) bool {
	if m.Protocol == sdIPProtoUDP {
		return m.DstPort == 0
	}
	return m.State == sdTCPListen
}

// direction tells a socket's direction from the listener table.
func (s *Source) direction(m *inetDiag) string {
	if m.DstPort == 0 && (m.Protocol == sdIPProtoUDP || m.State == sdTCPListen || m.State == sdTCPClose) {
		return event.DirListen
	}
	if _, ok := s.listeners[sockListenKey{m.Protocol, m.SrcPort}]; ok {
		return event.DirIn
	}
	return event.DirOut
}

// listenerOf returns the listener that accepted m, if the table has one with
// an owner: same protocol and local port, preferring the same family and
// local address.
func (s *Source) listenerOf(m *inetDiag) *sockEntry {
	var best *sockEntry
	for _, l := range s.listeners[sockListenKey{m.Protocol, m.SrcPort}] {
		if !l.owner {
			continue
		}
		if l.m.Family == m.Family && (l.m.Src == m.Src || l.m.Src == [16]byte{}) {
			return l
		}
		if best == nil {
			best = l
		}
	}
	return best
}

// byListener attributes an incoming connection without a known owner to the
// owner of the listener it was accepted on, and reports whether it did. This
// covers accepted sockets that closed before a dump saw them, and those that
// a dump saw still in the accept queue (inode 0, no file yet).
func (s *Source) byListener(r *event.Sock, m *inetDiag) bool {
	if r.Direction != event.DirIn {
		return false
	}
	l := s.listenerOf(m)
	if l == nil {
		return false
	}
	r.PID, r.ProcStart = event.Some(l.pid), event.Some(l.start)
	r.Flags &^= event.SockFlagOwnerUnknown
	r.Flags |= event.SockFlagOwnerFromListener
	if l.self {
		r.Flags |= event.SockFlagSelf
	}
	return true
}

// row builds the common part of a row for a tracked socket.
func (s *Source) row(e *sockEntry, ts int64) event.Sock {
	if e.dir == "" {
		e.dir = s.direction(&e.m)
	}
	r := sockBaseRow(&e.m, ts)
	r.Direction = e.dir
	r.UID = e.m.UID
	r.Netns = s.netns
	if e.m.Inode != 0 {
		r.Inode = event.Some(uint64(e.m.Inode))
	}
	r.FirstTS = event.Some(e.firstTS)
	if e.owner {
		r.PID, r.ProcStart = event.Some(e.pid), event.Some(e.start)
		if e.self {
			r.Flags |= event.SockFlagSelf
		}
	} else if e.tpPID != 0 {
		r.PID = event.Some(e.tpPID) // from ConnOwners; the process was gone
	} else {
		r.Flags |= event.SockFlagOwnerUnknown
	}
	if s.mode == ModeProcNet {
		r.Flags |= event.SockFlagFallback
	}
	return r
}

// sockBaseRow fills the columns that come from the message alone.
func sockBaseRow(m *inetDiag, ts int64) event.Sock {
	n := m.addrLen()
	r := event.Sock{
		TS:         ts,
		Proto:      "tcp",
		Family:     4,
		State:      sockStateName(m.State),
		LocalAddr:  append([]byte(nil), m.Src[:n]...),
		LocalPort:  m.SrcPort,
		RemoteAddr: append([]byte(nil), m.Dst[:n]...),
		RemotePort: m.DstPort,
		Cookie:     m.Cookie,
		UID:        event.NoID,
	}
	if m.Family == sdAFInet6 {
		r.Family = 6
	}
	if m.Protocol == sdIPProtoUDP {
		r.Proto = "udp"
		if m.DstPort != 0 && m.State == sdTCPEstablished {
			r.State = "ESTABLISHED"
		}
	}
	if m.HasInfo && !(m.State == sdTCPListen || m.Protocol == sdIPProtoTCP && m.DstPort == 0) {
		// A socket that never connected has no meaningful counters.
		r.BytesRecv = event.Some(m.BytesReceived)
		if m.HasBytesSent {
			r.BytesSent = event.Some(m.BytesSent)
		}
	}
	return r
}

// drain processes the queued destroy messages.
func (s *Source) drain() {
	s.qmu.Lock()
	q := s.queue
	s.queue = s.spare[:0]
	s.qmu.Unlock()
	if len(q) == 0 {
		s.spare = q
		return
	}
	s.syncOwners(s.now().UnixNano())
	var destroys, known, unknown, fromListener, fromTP, unbound, overruns uint64
	for i := range q {
		d := &q[i]
		if d.overrun {
			overruns++
			reason := "ENOBUFS on sock_diag destroy socket"
			lost := event.Opt[int64]{}
			if d.dropped > 0 {
				reason = "sock_diag destroy queue full"
				lost = event.Some(d.dropped)
			}
			s.opts.Sink.AppendGap(&event.Gap{FromTS: d.since, ToTS: d.ts, Source: event.SourceSock, Lost: lost, Reason: reason})
			continue
		}
		destroys++
		m := &d.msg
		e := s.tracked[m.Cookie]
		if e == nil && m.SrcPort == 0 && m.DstPort == 0 {
			unbound++
			continue
		}
		var r event.Sock
		if e != nil {
			// Final state, counters and tuple from the destroy message; the
			// rest from the table.
			if !e.owner && s.takeOwner(e) {
				fromTP++
			}
			r = s.row(e, d.ts)
			fin := sockBaseRow(m, d.ts)
			r.State, r.BytesSent, r.BytesRecv = fin.State, fin.BytesSent, fin.BytesRecv
			if !r.BytesSent.Valid && e.m.HasBytesSent {
				r.BytesSent = event.Some(e.m.BytesSent)
			}
			if !r.BytesRecv.Valid && e.m.HasInfo {
				r.BytesRecv = event.Some(e.m.BytesReceived)
			}
			if !e.owner && e.tpPID == 0 && s.byListener(&r, &e.m) {
				fromListener++
			}
			s.forget(m.Cookie, e)
		} else {
			r = sockBaseRow(m, d.ts)
			r.Netns = s.netns
			r.Direction = s.direction(m)
			r.Flags |= event.SockFlagOwnerUnknown
			if s.ownerRow(&r, m) {
				fromTP++
			} else if s.byListener(&r, m) {
				fromListener++
			}
		}
		r.Event = event.SockClose
		r.Flags |= event.SockFlagFromDestroy
		if r.PID.Valid {
			known++
		} else {
			unknown++
		}
		s.opts.Sink.AppendSock(&r)
	}
	clear(q)
	s.spare = q[:0]
	s.stat(func(st *Stats) {
		st.Destroys += destroys
		st.Closes += known + unknown
		st.OwnerKnown += known
		st.OwnerUnknown += unknown
		st.OwnerFromListener += fromListener
		st.OwnerFromTracepoint += fromTP
		st.Unbound += unbound
		st.Tracked = len(s.tracked)
		_ = overruns // counted by the reader
	})
}

// openDestroySocket subscribes to the destroy groups.
func (s *Source) openDestroySocket() (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return -1, fmt.Errorf("open sock_diag destroy socket: %w", err)
	}
	rcvbuf := cmp.Or(s.opts.DestroyRcvBuf, sockDestroyRcvBuf)
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf); err != nil {
		// Without CAP_NET_ADMIN: capped by net.core.rmem_max.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf); err != nil {
			s.log.Warn("set destroy socket receive buffer", "err", err)
		}
	}
	groups := uint32(1<<(unix.SKNLGRP_INET_TCP_DESTROY-1) | 1<<(unix.SKNLGRP_INET6_TCP_DESTROY-1))
	if s.opts.UDP {
		groups |= 1<<(unix.SKNLGRP_INET_UDP_DESTROY-1) | 1<<(unix.SKNLGRP_INET6_UDP_DESTROY-1)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("join sock_diag destroy groups: %w", err)
	}
	tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("set destroy socket timeout: %w", err)
	}
	return fd, nil
}

// readDestroys is the reader goroutine: it receives destroy messages, decodes
// them and queues them for the main loop, never waiting for it. It owns fd.
func (s *Source) readDestroys(ctx context.Context, fd int) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer unix.Close(fd)
	buf := make([]byte, 64<<10)
	var msgs []sdNlMsg
	last := s.now().UnixNano()
	var dropped int64
	for ctx.Err() == nil {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		now := s.now().UnixNano()
		switch {
		case err == nil:
		case errors.Is(err, unix.ENOBUFS):
			s.stat(func(st *Stats) { st.Overruns++ })
			s.enqueue(sockDestroy{ts: now, overrun: true, since: last})
			last = now
			continue
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
			continue
		default:
			s.log.Error("receive sock_diag destroy message; stopping the destroy reader", "err", err)
			s.enqueue(sockDestroy{ts: now, overrun: true, since: last})
			return
		}
		last = now
		msgs, err = sdSplitNetlink(buf[:n], msgs[:0])
		if err != nil {
			s.log.Debug("split destroy datagram", "err", err)
		}
		for _, nm := range msgs {
			if nm.Type != sdSockDiagByFamily {
				continue
			}
			m, err := decodeInetDiag(nm.Payload)
			if err != nil {
				s.log.Debug("decode destroy message", "err", err)
				continue
			}
			if m.Protocol == 0 {
				m.Protocol = sdIPProtoTCP
				if !m.HasInfo {
					m.Protocol = sdIPProtoUDP
				}
			}
			if !s.enqueue(sockDestroy{ts: now, msg: m}) {
				dropped++
			}
		}
		if dropped > 0 && s.enqueue(sockDestroy{ts: now, overrun: true, since: now, dropped: dropped}) {
			s.stat(func(st *Stats) { st.Lost += uint64(dropped) })
			dropped = 0
		}
	}
}

// enqueue adds d to the queue unless it is full, and wakes the main loop.
func (s *Source) enqueue(d sockDestroy) bool {
	s.qmu.Lock()
	ok := len(s.queue) < sockMaxPending || (d.overrun && len(s.queue) < sockMaxPending+1024)
	if ok {
		s.queue = append(s.queue, d)
	}
	first := len(s.queue) == 1
	s.qmu.Unlock()
	if first {
		select {
		case s.qsignal <- struct{}{}:
		default:
		}
	}
	return ok
}

// sockOpenDumpSocket opens the socket used for inet_diag dumps.
func sockOpenDumpSocket() (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return -1, fmt.Errorf("open sock_diag socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind sock_diag socket: %w", err)
	}
	tv := unix.NsecToTimeval(int64(5 * time.Second))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("set sock_diag socket timeout: %w", err)
	}
	return fd, nil
}

// sockDumpBuf is the receive buffer of dumps (the kernel sends at most 32 KiB
// per datagram).
var sockDumpBuf = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// sockDump dumps TCP (and UDP) sockets of both families into out.
func sockDump(fd int, udp bool, seq uint32, out []inetDiag) ([]inetDiag, error) {
	reqs := [][2]uint8{{sdAFInet, sdIPProtoTCP}, {sdAFInet6, sdIPProtoTCP}}
	if udp {
		reqs = append(reqs, [2]uint8{sdAFInet, sdIPProtoUDP}, [2]uint8{sdAFInet6, sdIPProtoUDP})
	}
	bp := sockDumpBuf.Get().(*[]byte)
	defer sockDumpBuf.Put(bp)
	buf := *bp
	var msgs []sdNlMsg
	for i, r := range reqs {
		seq := seq<<3 | uint32(i)
		if err := unix.Sendto(fd, sdDumpRequest(r[0], r[1], seq), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return out, fmt.Errorf("send inet_diag request (family %d proto %d): %w", r[0], r[1], err)
		}
	recv:
		for {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				if errors.Is(err, unix.EINTR) {
					continue
				}
				return out, fmt.Errorf("receive inet_diag dump (family %d proto %d): %w", r[0], r[1], err)
			}
			msgs, err = sdSplitNetlink(buf[:n], msgs[:0])
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
					if errno != 0 {
						if r[0] == sdAFInet6 && errno == int32(unix.EAFNOSUPPORT) {
							break recv // IPv6 disabled
						}
						return out, fmt.Errorf("inet_diag dump (family %d proto %d): %w", r[0], r[1], syscall.Errno(errno))
					}
				case sdSockDiagByFamily:
					d, err := decodeInetDiag(m.Payload)
					if err != nil {
						return out, fmt.Errorf("inet_diag dump: %w", err)
					}
					d.Protocol = r[1]
					out = append(out, d)
				}
			}
		}
	}
	return out, nil
}
