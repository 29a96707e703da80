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

// Source records every process that starts and ends on the host from the
// netlink proc connector (cn_proc), enriched from /proc, into a Sink.
//
// # Threads
//
// One reader goroutine is locked to its OS thread (never unlocked, so the
// thread dies with it) and raised to SCHED_FIFO priority 10, or nice −20, or
// left alone, as Options.Priority allows. It blocks in read(2) on the
// socket (a raw syscall while busy, see CPU), decodes, reads /proc at an
// exec at once (see Enrichment), and appends the event to a bounded ring
// without ever blocking: overflow is counted and becomes a gap row. The priority decides how many short-lived
// processes keep their argv (research/kernel-probes.md §3). A token bucket
// (EnrichRate) caps those reads. A second goroutine (the one calling Run)
// owns the process table and writes rows to the Sink.
//
// The ring is double-buffered (items, the exec reads' bytes in an arena,
// and ObserveExecOpen's exec-opens): the reader appends under a mutex held
// for a copy and rings a doorbell only when the ring goes from empty to not
// empty; the table goroutine then waits 5 ms, swaps the buffers, applies
// the batch, and keeps draining every 5 ms until a drain finds nothing. So
// a busy host costs one wakeup of the table goroutine per 5 ms instead of
// one futex wakeup per event, an idle one none, and the steady state
// allocates nothing per event on the reader's side. Rows reach the Sink up
// to ~5 ms later; Lookup still sees a life as soon as the reader has seen
// its fork (the reader registers pending forks for it). The table builds
// each row in one reused event.Proc (sinks copy what they keep, as the
// spool writer and event.MemSink do) and shares the exe, cwd, cgroup and
// comm bytes of its entries through a bounded interner.
//
// # CPU
//
// Measured on the 2-core 6.18 VM (BenchmarkPrivProcExec, 3 alternating
// runs; perf stat -p over 2 s at 1000 exec/s), most of the cost beyond the
// /proc reads was the Go runtime's sysmon: each time the reader blocked in
// read(2) holding its P, sysmon retook the P and kept polling every 20 µs
// (~2,700 wakeups/s). So while events keep coming (procRawIdle) the reader
// reads with a raw syscall (procReadRaw) and keeps its P: 140–149 → 96–112
// µs CPU per exec at 1000/s, 130–144 → 109–119 at max, 6.1–6.4 → 3.8–3.9
// context switches and 18 → 15.5 syscalls per exec, argv 99.9 % at 1000/s
// (99.2–99.6 % at max, was 99.9: sysmon now preempts the reader every
// 10 ms); GC stop-the-world latency rose from ≤ 0.65 ms to ≤ 1.3 ms, idle
// cost unchanged; not used when GOMAXPROCS is 1. Two cn_proc sockets were
// tried and not kept (2026): the kernel filter (proc_input, event_type a
// bit mask) gave the reader exec, uid, gid and sid only, and a second
// socket drained by recvmmsg every 5 ms carried fork, exit and the rest,
// merged by kernel time. The reader then woke once per exec instead of
// three times, but that saved only 4 % at 1000/s with the blocking read
// (13 % at max; 91 and 88 µs with the raw read); the batch socket must not
// sit in the netpoller (its epoll woke an idle thread at every datagram);
// and Lookup would see a new life only when its fork is drained, up to
// 5–10 ms late, so fanotify rows of young processes would lose their key.
//
// What no cn_proc reader can avoid (BenchmarkPrivProcFloor, make
// bench-floors: one /bin/true spawner, rounds of 2,000 execs with the
// conditions interleaved, medians of four runs; 2026): a reader thread that
// only receives the datagrams costs 52–70 µs of CPU per exec at the maximum
// rate and 75–81 µs at 1000/s (three events, fork, exec and exit, at one
// wakeup each when they come apart); as SCHED_FIFO, 59–83 and 79–81. Adding
// the two reads any argv recorder must make before the process is gone
// (cmdline, exe) gives 91–103 and 108–120 µs. Source, which also reads
// cwd, status and cgroup, keeps the table and writes the rows, used 105–124
// and 121–131 µs in the same runs: 1.1–1.26× that floor. Every one of these
// readers slowed the max-rate spawner by 4.5–14.5 % against no reader at all
// (the kernel builds and delivers the events in the spawner's context; the
// reader competes for the second core), Source no more than the others.
// Polling instead of waking per event (a normal thread draining the socket
// every 1 ms) did not help: 84–110 and 115–123 µs per exec, the same
// slowdown, and argv for only 32–35 % of the execs. So a bar of 30 µs per
// exec, or of a 3 % slowdown at the maximum rate, is below this VM's floor
// for any cn_proc reader.
//
// # Enrichment
//
// /proc is never read at a fork: the child starts as a copy of its parent's
// table entry. At an exec the reader reads, by "PID/name" paths relative to
// the pre-opened /proc dirfd built in a reused buffer, with one read(2) per
// file and into reused buffers: cmdline, exe, cwd, the head of status (comm
// from Name, ppid, real and effective uid and gid; the read stops after
// 512 bytes) and cgroup — 11 syscalls. Inherited from the parent instead:
// tty, loginuid, sessionid and namespaces, except that
//   - loginuid (and sessionid, when loginuid turns out set: the kernel sets
//     both together) is read when the process's inherited loginuid is
//     unset and a uid, gid or session change (cn_proc uid, gid or sid
//     event) was seen in the process, or in an ancestor after that
//     ancestor's last loginuid read, since its own last loginuid read; and
//     at the first exec of a process the reader knows nothing about. That
//     is where a login sets it: pam_loginuid writes it in the session
//     process, which (or whose child) then calls setsid and setuid/setgid
//     to the user before it execs the shell (sshd, login, cron for other
//     users). On a host where nobody is logged in, this saves three
//     syscalls at almost every exec;
//   - all namespace links are read when the cgroup read at the exec differs
//     from the one the process inherited (containers get a new cgroup), or
//     when its namespaces are not known.
//
// The reader keeps what it needs for these decisions per live pid (a hash
// of the cgroup, whether namespaces and a set loginuid are known, whether a
// uid/gid/sid change was seen since loginuid was read), copied at fork,
// dropped at exit, seeded from the start-up snapshot and cleared after
// ENOBUFS. Residual risks: a process that changes namespace (unshare(2),
// setns(2)) without changing cgroup, and then execs, keeps its parent's
// namespaces in pofr's rows until a resync or a FullEnrich read (exec rows
// then describe the namespaces the process was created in); and a process
// that writes its loginuid and then execs with no uid, gid or session
// change in between (a daemon setting its own loginuid; a root session
// whose setuid(0)/setgid(0) change nothing, so the kernel sends no event,
// and that does not call setsid) keeps loginuid unset in the rows of that
// lineage until such a change, a resync or a FullEnrich read
// (TestPrivProcLoginUID pins both sides). Options.FullEnrich reads
// everything (stat, loginuid, sessionid, all namespaces besides the above)
// at every exec, as the forensic profile wants.
//
// io_uring was measured for these reads and rejected (kernel 6.18, 2026):
// procfs files are not FMODE_NOWAIT, so every openat → read → close chain
// is punted to an io-wq worker thread (one punt per file seen with the
// io_uring_queue_async_work tracepoint; even with O_NONBLOCK and warm
// dentries, two of four), and the worker's wakeup costs more than the
// syscalls it saves: 55–62 µs of CPU per exec's set of reads against
// 29–31 µs with plain syscalls, and exec rows lost argv (94–98 % against
// 100 %) because the normal-priority worker waits behind the workload.
//
// Without a per-pid directory fd, the reads of one exec could in principle
// span a pid reuse; a pid is reused only after the kernel has gone round
// its whole pid space, while the reads take microseconds.
//
// # Process keys
//
// A life is (pid, proc_start), proc_start being ns since boot at clock-tick
// (10 ms) resolution, as procfs.StartFromTicks(/proc/PID/stat starttime). A life
// first seen by its fork event gets its key from the event time
// (CLOCK_MONOTONIC + the measured CLOCK_BOOTTIME offset, truncated to a
// tick), derived by the reader, and keeps it for ever in the table: every
// row pofr writes about it, and every Lookup, uses that key. Lives found by
// the snapshot or a resync take theirs from /proc/PID/stat. /proc reads
// that meet a derived key (resyncs, FullEnrich execs) match it within one
// tick. Residual risk: a derived key can be one tick later than the
// starttime /proc shows (the fork event is stamped a few µs after the
// task's start; ≈ latency/10 ms of those lives). So after a collector
// restart, the snapshot can key a process that the previous run keyed from
// its fork one tick differently, and a tool that reads /proc itself may
// disagree with pofr's rows in the same way. Two lives of one pid within the
// same tick cannot be told apart by key at all (the kernel's starttime
// cannot either).
//
// # Rows
//
// fork, exec, exit, uid, gid, sid, comm, ptrace, coredump rows, as the
// kernel reports them; snapshot rows for the processes running at start and
// for those found by a resync. Threads are folded into their process: thread
// creation and exit and per-thread uid/gid/comm changes write no row
// (Stats.Threads counts them); sid, ptrace and coredump events from a
// thread write a row flagged thread. Every row carries the parent's key
// (ppid, parent_start). An exit row's parent is the one the kernel names at
// exit (after reparenting); other rows notice a parent that has ended and
// re-read the ppid from /proc. Rows for SelfPID and for children it forks
// are flagged self.
//
// Events about a process whose start is unknown (it began before the
// snapshot or during a loss, and was gone when /proc was read) write no row,
// since a row needs its key; Stats.Unknown counts them, and the loss
// that caused them has its gap row.
//
// # Exe for every exec
//
// When /proc/PID/exe cannot be read, the exec row takes exe from fanotify's
// FAN_OPEN_EXEC (ObserveExecOpen, flag exe_from_fanotify). Exec-opens are
// kept per pid for ExecHold; an exec row without exe waits up to ExecHold for
// one (rows of the same pid queue behind it). The kernel opens, in order, the
// execve target, then for a #! script its interpreter, then the ELF
// interpreter (ld-linux…); all before the exec event. The row takes the first
// exec-open that is not an ELF interpreter, that is the execve target: the
// binary for ELF programs and the script file for scripts. (For a script,
// /proc/PID/exe would name the interpreter instead: rows from fanotify name
// what was executed, rows from /proc what runs.) When /proc gave exe, the
// exec-opens up to that path are dropped, so they cannot be claimed by a
// later exec of the same pid. Residual risk: a script's interpreter open
// stays queued after its exec took the script, and could name a second exec
// of the same pid within ExecHold whose /proc exe was also unreadable.
//
// # Losses
//
// ENOBUFS on the socket (counted in Lost) and queue overflow (QueueDrops)
// each write a gap row (source proc, from the last event before the loss to
// when it was noticed) and trigger a /proc resync: snapshot rows for lives
// the table does not know, exit rows flagged late_read for table lives that
// are gone or whose pid now has another start. A real exit event that was
// still queued may follow such an inferred exit row.
//
// # Tracepoint capture
//
// With Options.Tracepoint, forks and execs come from the kernel's static
// tracepoints task:task_newtask and sched:sched_process_exec, read through
// per-CPU perf rings (package tracepoint) instead of one cn_proc wakeup per
// event. The exec sample carries a dump of the new program's user stack, from
// which argv is parsed (the environment, also in the dump, is never read).
// The reader sleeps until a ring is half full or its timer fires (TraceBusy
// while events flow, TraceIdle otherwise; when idle, the first fork on any
// CPU also wakes it, through a doorbell event armed only then), then drains the rings and a cn_proc
// socket that the kernel filters to exit, uid, gid, sid, comm, ptrace and
// coredump events (Linux ≥ 6.6; older kernels send everything and fork and
// exec are dropped here), merges both by kernel time and applies the events
// through the same hot path: the /proc reads of an exec happen at the drain,
// up to TraceBusy after it. argv missing from the dump (a fifth of the execs
// on x86_64) is read from /proc/PID/cmdline then, flagged argv_from_proc; it
// stays null for a process gone by then, and exe falls back to the exec's
// filename when it is absolute. An exec followed in the same drain by another
// exec or the exit of its process is not read from /proc at all. A full ring
// drops samples, which the kernel counts: a gap row with that count and the
// interval, and a resync. When perf_event_open is refused or tracefs is
// missing, Run logs why and uses cn_proc. docs/design.md ("Tracepoint
// capture") has the measurements.
//
// # Poll mode
//
// At start a child (/bin/true) is forked and its event awaited for
// ProbeTimeout. If none comes (the kernel keeps cn_proc silent outside the
// initial pid/user namespace, and older kernels without CAP_NET_ADMIN), or
// the socket cannot be opened, or ForcePoll is set, the source polls /proc
// every PollInterval with a warning: new lives become exec rows and ended
// ones exit rows, all flagged poll, with sampling times.
type Source struct {
	opts Options
	log  *slog.Logger
	st   procCounters
	tr   *procTable

	root int // dirfd of ProcRoot
	mode atomic.Value
	prio atomic.Value

	selfForks chan int32 // pids forked by this process, seen by the reader (probe)
	// The reader's shadow hashes cgroups with shadowSeed; Run hands it the
	// snapshot's processes through shadowInit.
	shadowSeed maphash.Seed
	shadowInit atomic.Pointer[map[int32]procShadow]
	drainSync  atomic.Pointer[drainSync] // tracepoint capture: drains on demand for Lookup
	running    atomic.Bool
}

var (
	_ collector.Processes    = (*Source)(nil)
	_ collector.ExecObserver = (*Source)(nil)
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
	s.mode.Store("")
	s.prio.Store("")
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
	if ok {
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
func (s *Source) ObserveExecOpen(pid int32, ts int64, path []byte) {
	if !s.tr.ring.pushOpen(procExecOpen{pid: pid, ts: ts, path: append([]byte(nil), path...)}) {
		s.st.openDrops.Add(1)
	}
}

// Stats returns the counters. Safe for concurrent use.
func (s *Source) Stats() Stats {
	st := s.st.stats()
	st.Mode, _ = s.mode.Load().(string)
	st.Capture = Capture(st.Mode)
	st.Priority, _ = s.prio.Load().(string)
	return st
}

// Mode returns ModeNetlink or ModePoll once Run has decided, else "".
func (s *Source) Mode() string { m, _ := s.mode.Load().(string); return m }

// Run records until ctx is done, then returns nil (or the error that stopped
// the reader). It subscribes to cn_proc, probes that events arrive (falling
// back to poll mode), writes the snapshot rows, then the event rows. Run may
// be called once.
func (s *Source) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("collector: Source.Run called twice")
	}
	defer unix.Close(s.root)
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
	if err := s.tr.reconcile(procReconcileSnapshot); err != nil {
		s.log.Warn("snapshot of /proc", "err", err)
	}
	s.seedShadow()
	// The table goroutine stops when the reader has stopped and the queue is
	// drained, so that no event read is left unwritten.
	tctx, stopTable := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.tr.run(tctx, 0, s.opts.ResyncInterval, procClockOffsets)
	}()
	select {
	case <-ctx.Done():
	case <-procWaitDone(&wg):
	}
	stop()
	stopTable()
	<-done
	if readErr != nil && ctx.Err() == nil {
		return readErr
	}
	return nil
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
func procRaisePriority(want string, log *slog.Logger) string {
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
		in.exe = pre.filename
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
	// Source, CPU); after procRawIdle without one, read as usual.
	raw := runtime.GOMAXPROCS(0) >= 2 // else the held P would be the only one
	var lastEv time.Time
	for {
		if ctx.Err() != nil {
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
