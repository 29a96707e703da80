package cnproc

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/pofr/pofr/internal/defaults"
	"github.com/pofr/pofr/internal/event"
)

// Mode is how the process source captures (Stats.Mode); its value is
// also what the segment manifest and the status file say. "" means Run has
// not decided yet.
type Mode string

// The process source's modes.
const (
	// ModeTracepoint: forks and execs come from the kernel's tracepoint
	// rings (sched_process_exec with a user-stack dump for argv,
	// task_newtask), exits and the rest from a cn_proc socket drained in
	// batches (docs/design.md, "Process source, Tracepoint capture").
	ModeTracepoint Mode = "tracepoint"
	// ModeNetlink: events come from the proc connector.
	ModeNetlink Mode = "netlink"
	// ModePoll: cn_proc is silent here (not in the initial pid/user
	// namespace, or no CAP_NET_ADMIN on an old kernel), so /proc is polled;
	// short-lived processes are missed and every row is flagged poll.
	ModePoll Mode = "poll"
)

// Priority is the reader thread's scheduling priority (Options.Priority,
// Stats.Priority), as profiles name it.
type Priority string

// Reader thread priorities, highest first.
const (
	PriorityFIFO   Priority = "fifo"   // SCHED_FIFO, priority 10
	PriorityNice   Priority = "nice"   // SCHED_OTHER at nice −20
	PriorityNormal Priority = "normal" // whatever the process has
)

// ErrOptions reports invalid Options.
var ErrOptions = errors.New("collector: invalid process source options")

// Options configure a Source. Zero values take the defaults noted.
type Options struct {
	// Sink receives the proc rows and the gap rows. Required.
	Sink event.Sink
	// Log receives warnings (priority fallback, poll mode) and Debug detail;
	// never a line per event above Debug. Default: slog.Default().
	Log *slog.Logger
	// ArgvMax is the number of argv bytes kept; longer argv is cut and
	// flagged argv_truncated. Default 32768.
	ArgvMax int
	// Priority of the reader thread: PriorityFIFO (default), PriorityNice or
	// PriorityNormal. Each falls back down the list with a warning. The
	// tracepoint reader at PriorityNormal is not locked to a thread (a
	// little cheaper, but late on a saturated host).
	Priority Priority
	// EnrichRate caps the /proc reads on the hot path (one set per exec)
	// per second, so a fork bomb cannot make a real-time reader starve the
	// host. Beyond it, exec rows carry only what the event says and are
	// flagged gone, and EnrichSkipped counts them. Default 20000; negative
	// means no cap.
	EnrichRate int
	// FullEnrich reads everything at every exec (stat, loginuid, sessionid
	// and all namespace links besides what an exec always reads), instead
	// of inheriting tty, loginuid, sessionid and namespaces from the parent
	// (docs/design.md, "Process source, Enrichment"): about twice the /proc syscalls per exec,
	// for the forensic profile.
	FullEnrich bool
	// RcvBuf is the netlink receive buffer in bytes, set with SO_RCVBUFFORCE
	// (needs CAP_NET_ADMIN), else SO_RCVBUF. Default 8 MiB.
	RcvBuf int
	// QueueLen bounds the events handed from the reader to the table
	// goroutine and not yet applied; overflow is counted and becomes a gap
	// row. Default 16384.
	QueueLen int
	// ProcRoot is the procfs mount point. Default "/proc".
	ProcRoot string
	// SelfPID is the collector's own pid: its rows, and those of children it
	// forks (the start-up probe), are flagged self. 0 means os.Getpid();
	// negative means none (tests that spawn their own processes).
	SelfPID int32
	// Now is the wall clock for snapshot, poll and gap times. Default
	// time.Now.
	Now func() time.Time
	// ForcePoll skips the proc connector and polls /proc (tests).
	ForcePoll bool
	// PollInterval is the /proc scan period in poll mode. Default 200 ms.
	PollInterval time.Duration
	// ResyncInterval, if positive, rescans /proc at that period besides the
	// rescans after a loss (profiles' proc.resync_interval).
	ResyncInterval time.Duration
	// Grace is how long an ended process stays in the table, so late events
	// of other sources still find it. Default 10 s.
	Grace time.Duration
	// MaxProcs caps the process table; beyond it new lives are written but
	// not remembered (Stats.TableFull). Default 131072.
	MaxProcs int
	// ExecHold is how long an exec row without exe (or without its file's
	// key) waits for a fanotify exec-open, and how long exec-opens wait for
	// their exec: several drain periods of the reader, which reads an exec's
	// open and its event in different drains when the exec straddles a
	// cutoff. Default 250 ms.
	ExecHold time.Duration
	// ProbeTimeout is how long the start-up probe waits for its child's
	// event before falling back to poll mode. Default 1 s.
	ProbeTimeout time.Duration

	// Tracepoint makes the kernel's tracepoint rings the primary capture
	// (ModeTracepoint), falling back to cn_proc with a warning when
	// perf_event_open is refused or tracefs is unavailable. Off: cn_proc.
	Tracepoint bool
	// TraceRingBytes is each CPU's ring size. Default 8 MiB.
	TraceRingBytes int
	// TraceStackBytes is the user-stack dump taken at each exec for argv.
	// Default 16 KiB; at most tracepoint.MaxStackBytes.
	TraceStackBytes int
	// TraceBusy is the drain period while events flow, TraceIdle when the
	// last drain found nothing (then the first fork, exec or cn_proc
	// message, and the driven queues' fds, also wake the reader, and a
	// driven queue's window ends it earlier); a ring half full drains at
	// once. Defaults 5 ms and 10 s (docs/design.md, "Idle wakeups").
	TraceBusy, TraceIdle time.Duration
	// TraceBusyMax is the drain period while events flow and few execs
	// risk their argv by it: those whose argv was not in the stack dump and
	// that live between the settle margin and this period (measured from
	// their exits; docs/design.md, "Drain policy"). Default 25 ms; at most
	// TraceBusy disables it. Waits up to tracepoint.RawWaitMax keep the
	// reader's P (longer ones wake the runtime's sysmon).
	TraceBusyMax time.Duration
	// ExecGuard adds the immediate guard to the tracepoint capture: a
	// cn_proc exec wakeup that reads /proc/PID/cmdline at once, for execs
	// whose stack dump missed argv (processes that exit at once), at
	// cn_proc's cost per exec.
	ExecGuard bool

	// traceRefused, if set, is what opening the rings fails with (tests of
	// the fallback).
	traceRefused error
	// traceWatermark, if set, is the rings' watermark in bytes (tests that
	// want the rings to overflow between timer drains set the ring size).
	traceWatermark int
}

// Capture names how the process source captures, for the segment manifest
// and the status: "tracepoint", "cn_proc" or "poll" ("" before Run has
// decided).
func Capture(mode Mode) string {
	switch mode {
	case ModeTracepoint:
		return "tracepoint"
	case ModeNetlink:
		return "cn_proc"
	}
	return string(mode)
}

// Stats are the process source's counters since it started.
type Stats struct {
	Mode           Mode     // ModeTracepoint, ModeNetlink or ModePoll; "" until Run has decided
	Priority       Priority // reader thread priority in effect
	Seen           uint64   // cn_proc events handled
	Execs          uint64   // exec events (and exec rows in poll mode)
	Rows           uint64   // proc rows written
	Lost           uint64   // ENOBUFS on the socket (each loses an unknown number of events)
	QueueDrops     uint64   // events dropped because the table goroutine fell behind
	Gaps           uint64   // gap rows written
	Resyncs        uint64   // /proc rescans after a loss or on the resync interval
	EnrichSkipped  uint64   // hot-path /proc reads skipped by EnrichRate
	ArgvMissed     uint64   // exec rows without argv
	ExeMissed      uint64   // exec rows without exe (neither /proc nor fanotify)
	ExeFanotify    uint64   // exec rows whose exe came from fanotify
	OpenDrops      uint64   // exec-opens dropped (ObserveExecOpen faster than the table)
	ExeKeys        uint64   // exec rows that name their file's identity (exe_key) from an exec-open
	ExeKeyMissed   uint64   // exec rows without exe_key while exec-opens brought keys
	Unknown        uint64   // events about a process whose start is unknown and that was gone: no row
	Threads        uint64   // thread events folded into their process
	Replaced       uint64   // lives replaced without their exit having been seen
	TableSize      int      // entries in the process table now
	TableFull      uint64   // lives not remembered because the table was full
	BadFrames      uint64   // datagrams that did not decode
	RingLost       uint64   // tracepoint samples the kernel dropped because a ring was full
	ArgvNotInDump  uint64   // tracepoint execs whose argv was not in the stack dump (then read from /proc)
	ExecSuperseded uint64   // tracepoint execs whose /proc reads already showed a later exec (argv, exe not taken from /proc)
	ArgvGuard      uint64   // of those, argv read at the exec by the exec guard
	Capture        string   // Capture(Mode): tracepoint, cn_proc or poll
	// BusyPeriod is the tracepoint reader's drain period while events
	// flow now: TraceBusy, or TraceBusyMax while the argv it could lose is
	// under the budget (busyTick).
	BusyPeriod time.Duration
}

// stats converts the counters.
func (c *procCounters) stats() Stats {
	return Stats{
		Seen: c.seen.Load(), Execs: c.execs.Load(), Rows: c.rows.Load(), Lost: c.lost.Load(),
		QueueDrops: c.queueDrops.Load(), Gaps: c.gaps.Load(), Resyncs: c.resyncs.Load(),
		EnrichSkipped: c.enrichSkipped.Load(), ArgvMissed: c.argvMissed.Load(), ExeMissed: c.exeMissed.Load(),
		ExeFanotify: c.exeFromFan.Load(), OpenDrops: c.openDrops.Load(), ExeKeys: c.exeKeys.Load(), ExeKeyMissed: c.exeKeyMissed.Load(), Unknown: c.unknown.Load(),
		Threads: c.threads.Load(), Replaced: c.replaced.Load(), TableSize: int(c.tableSize.Load()),
		TableFull: c.tableFull.Load(), BadFrames: c.frames.Load(), RingLost: c.ringLost.Load(),
		ArgvNotInDump: c.argvNotInDump.Load(), ArgvGuard: c.argvGuard.Load(), ExecSuperseded: c.execSuperseded.Load(),
	}
}

// withDefaults returns o with its zero values replaced by the defaults.
func (o Options) withDefaults() (Options, error) {
	if o.Sink == nil {
		return o, errors.Join(ErrOptions, errors.New("no Sink"))
	}
	defaults.Zero(&o.Log, slog.Default())
	if o.ArgvMax == 0 {
		o.ArgvMax = 32768
	}
	if o.ArgvMax < 0 {
		return o, errors.Join(ErrOptions, errors.New("negative ArgvMax"))
	}
	switch o.Priority {
	case "":
		o.Priority = PriorityFIFO
	case PriorityFIFO, PriorityNice, PriorityNormal:
	default:
		return o, errors.Join(ErrOptions, fmt.Errorf("Priority %q: want fifo, nice or normal", o.Priority))
	}
	if o.EnrichRate == 0 {
		o.EnrichRate = 20000
	}
	defaults.Positive(&o.RcvBuf, 8<<20)
	defaults.Positive(&o.QueueLen, 16384)
	defaults.Zero(&o.ProcRoot, "/proc")
	if o.Now == nil {
		o.Now = time.Now
	}
	defaults.Positive(&o.TraceRingBytes, 8<<20)
	defaults.Positive(&o.TraceStackBytes, 16<<10)
	defaults.Positive(&o.TraceBusy, 5*time.Millisecond)
	defaults.Positive(&o.TraceIdle, 10*time.Second)
	defaults.Positive(&o.TraceBusyMax, 25*time.Millisecond)
	defaults.Positive(&o.PollInterval, 200*time.Millisecond)
	defaults.Positive(&o.Grace, 10*time.Second)
	defaults.Positive(&o.MaxProcs, 1<<17)
	defaults.Positive(&o.ExecHold, 250*time.Millisecond)
	defaults.Positive(&o.ProbeTimeout, time.Second)
	return o, nil
}

// atomicOf holds a value of type T that one goroutine sets and others read
// (the mode and the priority in effect).
type atomicOf[T any] struct{ p atomic.Pointer[T] }

// Store sets v.
func (a *atomicOf[T]) Store(v T) { a.p.Store(&v) }

// Load returns the value set last, or T's zero value.
func (a *atomicOf[T]) Load() T {
	if p := a.p.Load(); p != nil {
		return *p
	}
	var zero T
	return zero
}
