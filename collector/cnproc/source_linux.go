package cnproc

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/pofr/pofr/collector"
	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/procfs"
)

// Source records every process that starts and ends on the host, from the
// netlink proc connector (cn_proc) or, with Options.Tracepoint, the
// sched/task tracepoints, enriched from /proc, into a Sink. A reader thread
// at raised priority takes the kernel events and, at each exec, reads from
// /proc what the process does not inherit from its parent; a second
// goroutine owns the live process table (Lookup) and writes the rows. Where
// cn_proc is silent it polls /proc instead (Mode).
//
// docs/design.md ("Process source") explains the threads, the /proc reads,
// process keys, rows, losses, tracepoint capture and poll mode, with the
// measurements and rejected alternatives behind them.
type Source struct {
	opts Options
	log  *slog.Logger
	st   procCounters
	tr   *procTable

	root int                // dirfd of ProcRoot
	mode atomicOf[Mode]     // set by Run once it has decided
	prio atomicOf[Priority] // set by the reader thread once raised
	busy atomic.Int64       // tracepoint capture: the busy drain period now (ns)

	selfForks chan int32 // pids forked by this process, seen by the reader (probe)
	// The reader's shadow hashes cgroups with shadowSeed; Run hands it the
	// snapshot's processes through shadowInit.
	shadowSeed maphash.Seed
	shadowInit atomic.Pointer[map[int32]procShadow]
	drainSync  atomic.Pointer[drainSync] // tracepoint capture: drains on demand for Lookup
	tpDirect   bool                      // tracepoint capture: the reader applies its drains to the table itself
	running    atomic.Bool
	drive      driveState // Drive: other sources' queues drained by the tracepoint reader
}

var (
	_ collector.Processes    = (*Source)(nil)
	_ collector.ExecObserver = (*Source)(nil)
	_ collector.QueueDriver  = (*Source)(nil)
)

// New checks the options and opens the procfs root. Nothing is
// recorded until Run.
func New(opts Options) (*Source, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	root, err := unix.Open(o.ProcRoot, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", o.ProcRoot, err)
	}
	s := &Source{opts: o, log: o.Log, root: root, selfForks: make(chan int32, 16), shadowSeed: maphash.MakeSeed()}
	switch {
	case o.SelfPID == 0:
		s.opts.SelfPID = int32(os.Getpid())
	case o.SelfPID < 0:
		s.opts.SelfPID = -1
	}
	t := newProcTable(o.Sink, o.Log, &s.st, o.Now)
	t.selfPID = s.opts.SelfPID
	t.grace, t.maxProcs, t.hold = o.Grace, o.MaxProcs, o.ExecHold
	t.ring = newProcRing(o.QueueLen, 4096)
	var boot int64
	t.wallOff, boot = procClockOffsets()
	t.bootOff.Store(boot)
	cold := newProcReader(root, o.ArgvMax)
	t.readStat, t.readFull = cold.readStat, cold.readFull
	t.listPIDs = procfs.New(o.ProcRoot).PIDs
	s.tr = t
	return s, nil
}

// Lookup implements collector.Processes: the life holding pid now, or, during the
// grace period after its exit, the last one. Safe for concurrent use.
//
// With the tracepoint capture, a pid the table does not know yet may be a
// process whose fork is still in a ring: Lookup then asks the reader for a
// drain and waits for it, up to lookupWait, so that file and socket rows of
// young processes keep their key. Concurrent misses share one drain.
func (s *Source) Lookup(pid int32) (collector.ProcInfo, bool) {
	p, ok := s.tr.lookup(pid)
	if ok || s.drive.inReader() {
		// The reader thread itself (a driven queue's drain) cannot wait
		// for its own drain; it has peeked at the forks still in the rings.
		return p, ok
	}
	if d := s.drainSync.Load(); d != nil && d.wait(lookupWait) {
		return s.tr.lookup(pid)
	}
	return p, ok
}

// ObserveExecOpen implements collector.ExecObserver. It never blocks: if the table
// goroutine is behind, the exec-open is dropped and counted (OpenDrops).
// path is copied.
func (s *Source) ObserveExecOpen(pid int32, ts int64, path []byte, exeKey uint64) {
	if !s.tr.ring.pushOpen(procExecOpen{pid: pid, ts: ts, path: path, exeKey: exeKey}) {
		s.st.openDrops.Add(1)
	}
}

// Stats returns the counters. Safe for concurrent use.
func (s *Source) Stats() Stats {
	st := s.st.stats()
	st.Mode = s.mode.Load()
	st.Capture = Capture(st.Mode)
	st.Priority = s.prio.Load()
	st.BusyPeriod = time.Duration(s.busy.Load())
	return st
}

// Mode returns ModeNetlink or ModePoll once Run has decided, else "".
func (s *Source) Mode() Mode { return s.mode.Load() }

// Run records until ctx is done, then returns nil (or the error that stopped
// the reader). It subscribes to cn_proc, probes that events arrive (falling
// back to poll mode), writes the snapshot rows, then the event rows. Run may
// be called once.
func (s *Source) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("collector: Source.Run called twice")
	}
	defer unix.Close(s.root)
	defer s.drive.end()
	if s.opts.ForcePoll {
		return s.runPoll(ctx, "ForcePoll set")
	}
	if s.opts.Tracepoint {
		tp, err := s.openTracepoints()
		if err == nil {
			err = s.runTracepoint(ctx, tp)
			if err == nil || ctx.Err() != nil {
				return nil
			}
		}
		s.log.Warn("process source: tracepoint capture unavailable, falling back to cn_proc (one wakeup and /proc read per event)",
			"reason", err)
	}
	s.drive.end() // other sources read their queues themselves
	fd, err := s.subscribe()
	if err != nil {
		return s.runPoll(ctx, err.Error())
	}
	rctx, stopReader := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var readErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		readErr = s.read(rctx, fd)
	}()
	stop := func() {
		stopReader()
		wg.Wait()
		unix.Write(fd, procSubscribeFrame(procCnMcastIgnore))
		unix.Close(fd)
	}
	if err := s.probe(ctx); err != nil {
		stop()
		if ctx.Err() != nil {
			return nil
		}
		return s.runPoll(ctx, err.Error())
	}
	s.mode.Store(ModeNetlink)
	s.log.Info("process source recording", "mode", ModeNetlink, "priority", s.prio.Load(),
		"rcvbuf", s.opts.RcvBuf, "argv_max", s.opts.ArgvMax, "enrich_rate", s.opts.EnrichRate)
	s.record(ctx, &wg, stop)
	if readErr != nil && ctx.Err() == nil {
		return readErr
	}
	return nil
}

// record writes the snapshot rows, hands the snapshot to the reader, and
// runs the table goroutine until ctx ends or the readers (wg) stop; then it
// stops the readers and, once the queue is drained (no event read is left
// unwritten), the table goroutine.
func (s *Source) record(ctx context.Context, readers *sync.WaitGroup, stopReaders func()) {
	if err := s.tr.reconcile(procReconcileSnapshot); err != nil {
		s.log.Warn("snapshot of /proc", "err", err)
	}
	s.seedShadow()
	if s.tpDirect {
		s.tr.ring.quiet.Store(true)
		s.tr.direct.Store(true)
	}
	tctx, stopTable := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.tr.run(tctx, 0, s.opts.ResyncInterval, procClockOffsets)
	}()
	select {
	case <-ctx.Done():
	case <-procWaitDone(readers):
	}
	stopReaders()
	stopTable()
	<-done
}

// procWaitDone returns a channel closed when wg is done.
func procWaitDone(wg *sync.WaitGroup) <-chan struct{} {
	c := make(chan struct{})
	go func() { wg.Wait(); close(c) }()
	return c
}

// subscribe opens the cn_proc socket with the configured buffer.
func (s *Source) subscribe() (int, error) {
	fd, capped, err := procDial(s.opts.RcvBuf, 0)
	if err != nil {
		return -1, err
	}
	if capped != nil {
		s.log.Warn("cn_proc receive buffer: SO_RCVBUFFORCE refused (no CAP_NET_ADMIN?), SO_RCVBUF is capped by net.core.rmem_max",
			"bytes", s.opts.RcvBuf, "err", capped)
	}
	return fd, nil
}

// procDial opens a NETLINK_CONNECTOR socket, joins the cn_proc group, sets
// the receive buffer (SO_RCVBUFFORCE, else SO_RCVBUF: then capped reports
// why) and a 200 ms receive timeout, and subscribes.
//
// events, if not 0, asks the kernel to send only those event kinds
// (procEvent* bits; struct proc_input, Linux ≥ 6.6); older kernels are
// subscribed to everything.
func procDial(rcvbuf int, events uint32) (fd int, capped, err error) {
	fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
	if err != nil {
		return -1, nil, fmt.Errorf("open cn_proc socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc}); err != nil {
		unix.Close(fd)
		return -1, nil, fmt.Errorf("bind cn_proc socket: %w", err)
	}
	if capped = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf); capped != nil {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf); err != nil {
			unix.Close(fd)
			return -1, nil, fmt.Errorf("set cn_proc receive buffer: %w", err)
		}
	}
	// The reader wakes up at least this often to notice that it must stop.
	tv := unix.Timeval{Usec: 200_000}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, nil, fmt.Errorf("set cn_proc socket timeout: %w", err)
	}
	frame := procSubscribeFrame(procCnMcastListen)
	if events != 0 && procFilterSupported() {
		frame = procSubscribeFilterFrame(procCnMcastListen, events)
	}
	if _, err := unix.Write(fd, frame); err != nil {
		unix.Close(fd)
		return -1, nil, fmt.Errorf("subscribe to cn_proc: %w", err)
	}
	return fd, capped, nil
}

// probe forks a child and waits for the reader to see its fork event.
func (s *Source) probe(ctx context.Context) error {
	var cmd *exec.Cmd
	var err error
	for _, p := range []string{"/bin/true", "/usr/bin/true", "/bin/sh"} {
		cmd = exec.Command(p)
		if p == "/bin/sh" {
			cmd.Args = []string{p, "-c", ":"}
		}
		if err = cmd.Start(); err == nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("probe cn_proc: start child: %w", err)
	}
	pid := int32(cmd.Process.Pid)
	defer cmd.Wait()
	timer := time.NewTimer(s.opts.ProbeTimeout)
	defer timer.Stop()
	for {
		select {
		case p := <-s.selfForks:
			if p == pid {
				return nil
			}
		case <-timer.C:
			return fmt.Errorf("probe cn_proc: no event for child %d within %v (not in the initial pid/user namespace, or no CAP_NET_ADMIN?)",
				pid, s.opts.ProbeTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// runPoll records by polling /proc.
func (s *Source) runPoll(ctx context.Context, why string) error {
	s.drive.end()
	s.mode.Store(ModePoll)
	s.log.Warn("PROCESS SOURCE IN POLL MODE: cn_proc unavailable, polling /proc; short-lived processes will be missed",
		"reason", why, "interval", s.opts.PollInterval)
	s.tr.poll = true
	if err := s.tr.reconcile(procReconcileSnapshot); err != nil {
		return fmt.Errorf("snapshot of %s: %w", s.opts.ProcRoot, err)
	}
	s.tr.run(ctx, s.opts.PollInterval, 0, procClockOffsets)
	return nil
}

// procRaisePriority sets the calling (locked) thread's priority as asked,
// falling back down fifo → nice → normal with a warning, and returns what it
// got.
func procRaisePriority(want Priority, log *slog.Logger) Priority {
	if want == PriorityFIFO {
		attr := &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: 10,
			Flags: unix.SCHED_FLAG_RESET_ON_FORK}
		err := unix.SchedSetAttr(0, attr, 0)
		if err == nil {
			return PriorityFIFO
		}
		log.Warn("cn_proc reader: SCHED_FIFO refused, trying nice -20; more short-lived processes will lose their argv", "err", err)
		want = PriorityNice
	}
	if want == PriorityNice {
		err := unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), -20)
		if err == nil {
			return PriorityNice
		}
		log.Warn("cn_proc reader: nice -20 refused, running at normal priority; many short-lived processes will lose their argv", "err", err)
	}
	return PriorityNormal
}

// procTokenBucket limits the hot-path /proc reads.
type procTokenBucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func (b *procTokenBucket) take(now time.Time) bool {
	if b.rate <= 0 {
		return true
	}
	b.tokens += now.Sub(b.last).Seconds() * b.rate
	b.last = now
	if b.tokens > b.burst {
		b.tokens = b.burst
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// seedShadow hands the reader what the snapshot knows of the running
// processes, so that the execs of their children can inherit namespaces
// and loginuid. Called before the table goroutine starts.
func (s *Source) seedShadow() {
	m := make(map[int32]procShadow, len(s.tr.procs))
	for pid, e := range s.tr.procs {
		if e.exited || e.cgroup == nil {
			continue
		}
		m[pid] = procShadow{valid: true, cg: cgroupHash(s.shadowSeed, e.cgroup),
			ns: e.ns[0].Valid, auid: e.auid != event.NoID}
	}
	s.shadowInit.Store(&m)
}

// hotPath is what a reader thread keeps to turn kernel events into queue
// items: the /proc reads at an exec, the lineage of live processes that
// decides them, the token bucket, and the losses not yet handed to the
// table. The cn_proc reader and the tracepoint reader share it; it belongs
// to one goroutine.
type hotPath struct {
	s        *Source
	ring     *procRing
	tr       *procTable
	hot      *procReader
	in, nsIn procInfo
	self     int32
	bucket   procTokenBucket
	lin      *lineage
	loss     lossCoalescer
	lastMono uint64 // kernel time of the last event decoded
}

func (s *Source) newHotPath() *hotPath {
	h := &hotPath{s: s, ring: s.tr.ring, tr: s.tr, hot: newProcReader(s.root, s.opts.ArgvMax),
		self: int32(os.Getpid()), lin: newLineage(s.opts.MaxProcs, s.shadowSeed),
		bucket: procTokenBucket{rate: float64(s.opts.EnrichRate), burst: max(float64(s.opts.EnrichRate)/4, 64)}}
	h.bucket.tokens, h.bucket.last = h.bucket.burst, time.Now()
	return h
}

// flushLoss writes the merged losses once their window is over.
func (h *hotPath) flushLoss() {
	h.loss.flush(time.Now(), h.s.opts.Now().UnixNano(), func(it *procItem) bool { return h.ring.push(it, nil) })
}

// flushLossFinal writes the merged losses now: the reader stops.
func (h *hotPath) flushLossFinal() {
	h.loss.flushFinal(h.s.opts.Now().UnixNano(), func(it *procItem) bool { return h.ring.push(it, nil) })
}

// overrun notes ENOBUFS on a cn_proc socket.
func (h *hotPath) overrun() {
	h.s.st.lost.Add(1)
	h.loss.overrun(time.Now(), h.lastMono)
	h.lin.reset() // what was missed may have changed anything
}

func (h *hotPath) push(it *procItem, in *procInfo) {
	if h.loss.pending() {
		h.flushLoss()
	}
	if !h.ring.push(it, in) {
		h.s.st.queueDrops.Add(1)
		h.loss.dropped(time.Now(), h.lastMono)
		if it.start != 0 {
			h.tr.pending.drop(it.msg.TGID, it.start)
		}
	}
}

// seedShadow takes the snapshot's processes once Run has handed them over.
func (h *hotPath) seedShadow() {
	if p := h.s.shadowInit.Load(); p != nil {
		h.lin.merge(*p) // the snapshot: lives the reader has not seen fork
		h.s.shadowInit.Store(nil)
	}
}

// execPre is what a tracepoint exec sample already says about the exec.
type execPre struct {
	argv     []byte // from the stack dump (cmdline form), nil if not there
	argvCut  bool   // argv was longer than ArgvMax
	filename []byte // the path given to execve
	noProc   bool   // /proc cannot describe this exec any more (a later exec or the exit follows)
}

// handle turns one event into a queue item, reading /proc at an exec.
func (h *hotPath) handle(m *procMsg, pre *execPre) {
	s := h.s
	h.lastMono = m.TS
	it := procItem{kind: procItemEvent, msg: *m}
	var info *procInfo
	switch m.What {
	case procEventExec:
		pid := m.TGID
		in := &h.in
		if pre != nil && (pre.noProc || !h.bucket.take(time.Now())) {
			if !pre.noProc {
				s.st.enrichSkipped.Add(1)
			}
			h.lin.forget(pid)
			*in = procInfo{}
			h.fromPre(in, pre)
			info = in
			break
		}
		if pre == nil && !h.bucket.take(time.Now()) {
			s.st.enrichSkipped.Add(1)
			h.lin.forget(pid)
			break
		}
		var skip uint32
		if pre != nil && pre.argv != nil {
			skip = procHaveArgv
		}
		alive := h.lin.exec(pid, s.opts.FullEnrich, skip, in, &h.nsIn, h.hot.readInto)
		info = in
		if pre != nil && alive && in.have&procHaveComm != 0 && !execComm(in.comm, pre.filename) {
			// The pid has exec'd again since this sample: its cmdline
			// and exe link describe the later program, not this one.
			in.have &^= procHaveArgv | procHaveExe
			in.argv, in.exe = nil, nil
			s.st.execSuperseded.Add(1)
		}
		if pre != nil {
			if alive {
				in.argvLate = in.have&procHaveArgv != 0
			}
			h.fromPre(in, pre)
		}
	case procEventFork:
		if m.PID != m.TGID {
			break
		}
		it.start = h.tr.deriveStart(m.TS)
		h.tr.pending.add(m.TGID, procPendingFork{start: it.start, ppid: m.ParentTGID})
		h.lin.fork(m.ParentTGID, m.TGID)
		if m.ParentTGID == h.self {
			select {
			case s.selfForks <- m.TGID:
			default:
			}
		}
	case procEventUID, procEventGID, procEventSID:
		h.lin.cred(m.TGID)
	case procEventExit:
		if m.PID == m.TGID {
			h.lin.forget(m.TGID)
		}
	}
	h.push(&it, info)
}

// fromPre fills what /proc did not give from the tracepoint's exec sample:
// argv from the stack dump, and exe from the filename when that is an
// absolute path (what was executed, as fanotify would name it).
func (h *hotPath) fromPre(in *procInfo, pre *execPre) {
	if in.have&procHaveArgv == 0 && pre.argv != nil {
		in.argv, in.argvTrunc, in.argvLate = pre.argv, pre.argvCut, false
		in.have |= procHaveArgv
	}
	if in.have&procHaveExe == 0 && len(pre.filename) > 0 && pre.filename[0] == '/' {
		in.exe, in.exeNamed = pre.filename, true
		in.have |= procHaveExe
	}
}

// read is the reader goroutine. It owns its OS thread for good.
func (s *Source) read(ctx context.Context, fd int) error {
	runtime.LockOSThread() // never unlocked: the raised thread must not run other goroutines
	s.prio.Store(procRaisePriority(s.opts.Priority, s.log))
	h := s.newHotPath()
	buf := make([]byte, 64<<10)
	msgs := make([]procMsg, 0, 16)
	// While events keep coming, read without telling the runtime (see
	// docs/design.md, "Process source, CPU"); after procRawIdle without one, read as usual.
	raw := runtime.GOMAXPROCS(0) >= 2 // else the held P would be the only one
	var lastEv time.Time
	for {
		if ctx.Err() != nil {
			h.flushLossFinal() // the table goroutine applies it as it stops
			return nil
		}
		var n int
		var err error
		if raw && time.Since(lastEv) < procRawIdle {
			n, err = procReadRaw(fd, buf)
		} else {
			n, err = unix.Read(fd, buf)
		}
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
			h.flushLoss()
			continue
		case err == unix.ENOBUFS:
			h.overrun()
			continue
		case err != nil:
			return fmt.Errorf("read cn_proc socket: %w", err)
		}
		h.seedShadow()
		lastEv = time.Now()
		msgs, err = decodeProcEvents(buf[:n], msgs[:0])
		if err != nil {
			s.st.frames.Add(1)
			s.log.Debug("cn_proc frame", "err", err)
		}
		for i := range msgs {
			h.handle(&msgs[i], nil)
		}
	}
}

// procRawIdle is how long after its last event the reader keeps reading
// with procReadRaw.
const procRawIdle = 20 * time.Millisecond

// procReadRaw is read(2) as a raw syscall: the goroutine stays running on
// its P instead of entering the runtime's syscall state, so sysmon has no P
// to retake (and does not wake every 20 µs to look) each time the reader
// blocks. While it blocks, the P is held: sysmon preempts it after 10 ms
// and a stop-the-world interrupts it, both by a signal, which makes the
// read fail with EINTR because the socket has SO_RCVTIMEO (signal(7)).
func procReadRaw(fd int, b []byte) (int, error) {
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// procClockOffsets measures wall-clock − CLOCK_MONOTONIC and CLOCK_BOOTTIME −
// CLOCK_MONOTONIC, in ns.
func procClockOffsets() (wallOff, bootOff int64) {
	var m1, m2, r, b unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &m1)
	unix.ClockGettime(unix.CLOCK_REALTIME, &r)
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &b)
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &m2)
	mid := (m1.Nano() + m2.Nano()) / 2
	return r.Nano() - mid, b.Nano() - mid
}
