package cnproc

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pofr/pofr/collector/tracepoint"
	"github.com/pofr/pofr/internal/mmsg"
)

// Clone flags of task_newtask (linux/sched.h).
const (
	cloneParent = 0x00008000
	cloneThread = 0x00010000
)

// The events of the tracepoint capture, in this order in the Set.
const (
	tpExec = iota
	tpNewTask
)

// tpSource is the tracepoint capture's open kernel side: the rings, the
// field layouts it decodes, and the cn_proc socket kept for what the
// tracepoints do not say (exit codes, uid/gid/sid changes, comm, ptrace,
// coredump).
type tpSource struct {
	set      *tracepoint.Set
	guard    *execGuard // nil unless Options.ExecGuard
	fd       int        // cn_proc socket, drained in batches
	filtered bool       // the kernel drops fork and exec for fd (proc_input, Linux ≥ 6.6)

	execFilename, execPID, newtaskPID, newtaskFlags tracepoint.Field
}

// openTracepoints opens the rings and the cn_proc socket of the tracepoint
// capture.
func (s *Source) openTracepoints() (*tpSource, error) {
	if s.opts.traceRefused != nil {
		return nil, s.opts.traceRefused
	}
	set, err := tracepoint.Open(tracepoint.Options{
		Events: []tracepoint.Event{
			{Name: "sched:sched_process_exec", StackBytes: s.opts.TraceStackBytes},
			{Name: "task:task_newtask"},
		},
		RingBytes: s.opts.TraceRingBytes,
		Watermark: s.opts.traceWatermark,
		// Idle, the reader sleeps for TraceIdle; the first fork or exec
		// (a process may exec without forking) wakes it.
		Doorbell:     "task:task_newtask",
		DoorbellAlso: []string{"sched:sched_process_exec"},
	})
	if err != nil {
		return nil, err
	}
	tp := &tpSource{set: set, fd: -1}
	fail := func(err error) (*tpSource, error) { tp.close(); return nil, err }
	f := set.Formats()
	for _, x := range []struct {
		dst  *tracepoint.Field
		ev   int
		name string
	}{
		{&tp.execFilename, tpExec, "filename"}, {&tp.execPID, tpExec, "pid"},
		{&tp.newtaskPID, tpNewTask, "pid"}, {&tp.newtaskFlags, tpNewTask, "clone_flags"},
	} {
		if *x.dst, err = f[x.ev].Field(x.name); err != nil {
			return fail(err)
		}
	}
	fd, capped, err := procDial(s.opts.RcvBuf, procTPEvents)
	if err != nil {
		return fail(err)
	}
	tp.fd, tp.filtered = fd, procFilterSupported()
	// Idle, the first exit (or uid, comm… change) wakes the reader too.
	set.Watch(fd)
	if s.opts.ExecGuard {
		if tp.guard, err = s.openGuard(); err != nil {
			return fail(err)
		}
	}
	if capped != nil {
		s.log.Warn("cn_proc receive buffer: SO_RCVBUFFORCE refused (no CAP_NET_ADMIN?), SO_RCVBUF is capped by net.core.rmem_max",
			"bytes", s.opts.RcvBuf, "err", capped)
	}
	return tp, nil
}

func (tp *tpSource) close() {
	if tp.guard != nil {
		tp.guard.close()
	}
	if tp.fd >= 0 {
		unix.Write(tp.fd, procSubscribeFrame(procCnMcastIgnore))
		unix.Close(tp.fd)
	}
	tp.set.Close()
}

// procTPEvents are the cn_proc events the tracepoint capture keeps: all but
// fork and exec, which the rings give.
const procTPEvents = procEventUID | procEventGID | procEventSID | procEventPtrace | procEventComm |
	procEventCoredump | procEventExit

// runTracepoint records from the rings until ctx is done.
func (s *Source) runTracepoint(ctx context.Context, tp *tpSource) error {
	defer tp.close()
	// Enabled before the reader starts: Enable stamps the rings, which the
	// reader then owns.
	if err := tp.set.Enable(); err != nil {
		return err
	}
	var wg sync.WaitGroup
	var readErr error
	rctx, stopReader := context.WithCancel(context.Background())
	wg.Add(1)
	go func() {
		defer wg.Done()
		readErr = s.readTracepoints(rctx, tp)
	}()
	if tp.guard != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tp.guard.run(rctx, s)
		}()
	}
	stop := func() {
		stopReader()
		tp.set.Interrupt()
		wg.Wait()
	}
	if err := s.probe(ctx); err != nil {
		stop()
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("tracepoint capture: %w", err)
	}
	s.mode.Store(ModeTracepoint)
	s.tpDirect = true
	s.drive.start(tp.set)
	s.log.Info("process source recording", "mode", ModeTracepoint, "cpus", tp.set.CPUs(),
		"ring_bytes", tp.set.RingBytes(), "stack_bytes", s.opts.TraceStackBytes, "cn_proc_filtered", tp.filtered,
		"exec_guard", tp.guard != nil,
		"argv_max", s.opts.ArgvMax, "enrich_rate", s.opts.EnrichRate)
	s.record(ctx, &wg, stop)
	if readErr != nil && ctx.Err() == nil {
		return readErr
	}
	return nil
}

// tpItem is one event of a drain: a decoded tracepoint sample or cn_proc
// message, and for an exec what its sample says.
type tpItem struct {
	msg procMsg
	pre execPre
	// argv and filename of pre as offsets into the drain's arena (the ring
	// space is reused once Drain returns): [argvOff, argvEnd), [fnOff, fnEnd).
	argvOff, argvEnd, fnOff, fnEnd int
	hasArgv                        bool
	cloneParent                    bool
}

// tpBusyItems is the size of a drain from which the reader stays on the
// short timer even after a drain without events.
const tpBusyItems = 16

// lookupWait bounds how long Lookup waits for a drain it asked for.
const lookupWait = 20 * time.Millisecond

// drainSync lets Lookup ask the tracepoint reader for a drain and wait
// until one that started after the request has been applied.
type drainSync struct {
	set  *tracepoint.Set
	mu   sync.Mutex
	req  uint64        // requests so far
	done uint64        // requests served by the last finished drain
	ch   chan struct{} // closed when a drain finishes
}

func newDrainSync(set *tracepoint.Set) *drainSync {
	return &drainSync{set: set, ch: make(chan struct{})}
}

// wait asks for a drain and reports whether one served it within d.
func (d *drainSync) wait(timeout time.Duration) bool {
	d.mu.Lock()
	d.req++
	g, ch := d.req, d.ch
	d.mu.Unlock()
	d.set.Interrupt()
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case <-ch:
		case <-t.C:
			return false
		}
		d.mu.Lock()
		ok := d.done >= g
		ch = d.ch
		d.mu.Unlock()
		if ok {
			return true
		}
	}
}

// begin returns the requests a drain starting now serves.
func (d *drainSync) begin() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.req
}

// end marks the requests up to g served and wakes the waiters.
func (d *drainSync) end(g uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.req == d.done && g == d.done {
		return // nobody waits
	}
	d.done = g
	close(d.ch)
	d.ch = make(chan struct{})
}

// readTracepoints is the tracepoint reader: it waits for a ring's watermark
// or its drain timer, then drains the rings and the cn_proc socket, merges
// them by time and hands the events to the table through the hot path.
func (s *Source) readTracepoints(ctx context.Context, tp *tpSource) error {
	// Raised (Options.Priority) and so locked to its thread for good, as
	// the cn_proc reader: on a host whose CPUs are saturated, a reader at
	// normal priority drains late, and the argv the stack dump missed is
	// lost with every process that ends meanwhile (a 100 ms life lost its
	// argv at load average 25 on 2 CPUs). PriorityNormal leaves it
	// unlocked, which is cheaper: a locked goroutine's preemption by
	// sysmon every 10 ms hands its thread over to another M and back.
	// docs/design.md, "The reader's thread and clock".
	defer s.drive.end()
	if s.opts.Priority != PriorityNormal {
		runtime.LockOSThread() // never unlocked: the raised thread must not run other goroutines
		s.drive.pinned = int32(unix.Gettid())
		s.prio.Store(procRaisePriority(s.opts.Priority, s.log))
	} else {
		s.prio.Store(PriorityNormal)
	}
	h := s.newHotPath()
	var (
		items, cn, carry []tpItem
		spare            []tpItem // carry's other buffer
		merged           []tpItem // the merge of items and cn, reused
		arena            []byte
		msgs             []procMsg
		rcv              = mmsg.NewReader(32, 8<<10)
		stat             procInfo
		later            = make(map[int32]bool)
	)
	busy := true // start with the short timer: the start-up probe waits for its fork
	prevEvents := true
	tick := newBusyTick(s.opts.TraceBusy, s.opts.TraceBusyMax, tracepoint.Settle)
	period := tick.period()
	s.busy.Store(int64(period))
	ds := newDrainSync(tp.set)
	s.drainSync.Store(ds)
	defer s.drainSync.Store(nil)
	var due time.Time // when a driven queue needs a drain (a window to close)
	for {
		// The last drain, once stopped: the events disabled, everything
		// the rings hold (and what their lost counters say), every loss
		// written. Decided once per drain: a stop that comes during a
		// drain gets one more, the last.
		last := ctx.Err() != nil
		if last {
			tp.set.Disable()
		}
		timeout, idle := s.opts.TraceIdle, false
		if busy {
			timeout = period
			if err := tp.set.Disarm(); err != nil {
				return err
			}
		} else if pending, err := tp.set.Arm(); err != nil {
			return err
		} else if pending || len(carry) > 0 || h.loss.on {
			// Records newer than the last cutoff, in the rings or read
			// from the cn_proc socket and held back, or a loss window
			// not written yet: the next drain takes them, so it must not
			// wait for the idle timeout.
			timeout = period
		} else {
			idle = true
			if !due.IsZero() {
				timeout = min(timeout, max(time.Until(due), s.opts.TraceBusy))
			}
		}
		if !last {
			woken, err := tp.set.Wait(timeout)
			if err != nil {
				return err
			}
			if woken && idle {
				// The doorbell (a fork) while idle: let the burst land
				// in the rings, then drain it at once. Parked, not in a
				// raw poll: a raw wait holds the P, and sysmon polls
				// every 20 µs while any P is held (about 50 wakeups per
				// burst on a quiet host, docs/design.md "Idle wakeups").
				if err := tp.set.Disarm(); err != nil {
					return err
				}
				time.Sleep(s.opts.TraceBusy)
			}
		}
		h.seedShadow()
		served := ds.begin()
		cutoff := tracepoint.Now() - uint64(tracepoint.Settle)
		if last {
			cutoff = ^uint64(0)
		}
		items, arena = items[:0], arena[:0]
		tp.set.DrainBefore(cutoff, func(r *tracepoint.Record) {
			if r.Event < 0 {
				s.st.ringLost.Add(r.Lost.Count)
				h.loss.ringLost(time.Now(), h.lastMono, int64(r.Lost.Count), r.Lost.From, r.Lost.To)
				h.lin.reset() // what was missed may have changed anything
				return
			}
			smp := &r.Sample
			it := tpItem{msg: procMsg{TS: smp.Time, CPU: smp.CPU}}
			switch r.Event {
			case tpExec:
				pid, err := tp.execPID.Int(smp.Raw)
				if err != nil {
					s.st.frames.Add(1)
					return
				}
				it.msg.What, it.msg.PID, it.msg.TGID = procEventExec, int32(pid), int32(pid)
				if fn, err := tp.execFilename.String(smp.Raw); err == nil {
					it.fnOff = len(arena)
					arena = append(arena, fn...)
					it.fnEnd = len(arena)
				}
				it.argvOff = len(arena)
				var perr error
				arena, _, perr = tracepoint.ParseArgv(smp.Stack, smp.SP, smp.RegsABI, arena)
				if perr == nil {
					it.hasArgv, it.argvEnd = true, len(arena)
				} else {
					arena = arena[:it.argvOff]
					s.st.argvNotInDump.Add(1)
				}
			case tpNewTask:
				child, err1 := tp.newtaskPID.Int(smp.Raw)
				flags, err2 := tp.newtaskFlags.Uint(smp.Raw)
				if err1 != nil || err2 != nil {
					s.st.frames.Add(1)
					return
				}
				it.msg.What, it.msg.PID, it.msg.TGID = procEventFork, int32(child), int32(child)
				it.msg.ParentPID, it.msg.ParentTGID = int32(smp.TID), int32(smp.PID)
				if flags&cloneThread != 0 {
					it.msg.TGID = int32(smp.PID)
				}
				it.cloneParent = flags&cloneParent != 0 && flags&cloneThread == 0
			}
			items = append(items, it)
		})
		// The cn_proc socket: everything queued now, then what is older
		// than the cutoff joins this drain and the rest the next one.
		// Assigned, not declared: cn keeps its storage across drains.
		held := carry
		cn, carry = cn[:0], spare[:0]
		for _, it := range held {
			if it.msg.TS > cutoff {
				carry = append(carry, it)
			} else {
				cn = append(cn, it)
			}
		}
		spare = held
		for {
			n, err := rcv.Recv(tp.fd)
			if err == unix.ENOBUFS {
				h.overrun()
				continue
			}
			if err != nil && err != unix.EAGAIN && err != unix.EINTR {
				return fmt.Errorf("read cn_proc socket: %w", err)
			}
			for i := range n {
				msgs, err = decodeProcEvents(rcv.Msg(i), msgs[:0])
				if err != nil {
					s.st.frames.Add(1)
				}
				for _, m := range msgs {
					if m.What == procEventFork || m.What == procEventExec || m.What == procEventNone {
						continue // the rings have them (a kernel without the filter sends them)
					}
					if m.TS > cutoff {
						carry = append(carry, tpItem{msg: m})
					} else {
						cn = append(cn, tpItem{msg: m})
					}
				}
			}
			if n < rcv.Cap() {
				break
			}
		}
		slices.SortStableFunc(cn, func(a, b tpItem) int { return cmpU64(a.msg.TS, b.msg.TS) })
		batch := items
		if len(cn) > 0 {
			merged = mergeByTime(merged[:0], items, cn)
			batch = merged
		}
		// An exec followed in this batch by another exec or the exit of
		// its process cannot be described by /proc any more; nor can one
		// whose exit is already read but held for the next drain (it
		// ended before this drain: its reads would find a zombie or
		// nothing, and cost 1-8 syscalls).
		clear(later)
		for _, it := range carry {
			if m := &it.msg; m.What == procEventExit && m.PID == m.TGID {
				later[m.TGID] = true
			}
		}
		for i := len(batch) - 1; i >= 0; i-- {
			m := &batch[i].msg
			switch {
			case m.What == procEventExec:
				batch[i].pre.noProc = later[m.TGID]
				later[m.TGID] = true
			case m.What == procEventExit && m.PID == m.TGID:
				later[m.TGID] = true
			}
		}
		for i := range batch {
			it := &batch[i]
			if it.cloneParent {
				// CLONE_PARENT: the child's parent is the caller's parent.
				if h.hot.readInto(it.msg.ParentTGID, procHaveStat, &stat); stat.have&procHaveStat != 0 {
					it.msg.ParentTGID, it.msg.ParentPID = stat.ppid, stat.ppid
				}
			}
			if it.msg.What != procEventExec {
				if it.msg.What == procEventExit && it.msg.PID == it.msg.TGID {
					tick.exit(it.msg.TGID, it.msg.TS)
				}
				h.handle(&it.msg, nil)
				continue
			}
			pre := &it.pre
			pre.filename = arena[it.fnOff:it.fnEnd:it.fnEnd]
			pre.argv, pre.argvCut = nil, false
			if it.hasArgv {
				pre.argv = arena[it.argvOff:it.argvEnd:it.argvEnd]
				if len(pre.argv) > s.opts.ArgvMax {
					pre.argv, pre.argvCut = pre.argv[:s.opts.ArgvMax], true
				}
			}
			if tp.guard != nil {
				if g, ok := tp.guard.take(it.msg.TGID, it.msg.TS); ok && pre.argv == nil {
					pre.argv, pre.argvCut = g.argv, g.cut
					s.st.argvGuard.Add(1)
				}
			}
			tick.exec(it.msg.TGID, pre.filename, it.msg.TS, pre.argv == nil)
			h.handle(&it.msg, pre)
		}
		if p := tick.update(cutoff); p != period {
			period = p
			s.busy.Store(int64(p))
		}
		if last {
			h.flushLossFinal() // nothing noted stays unwritten
		} else {
			h.flushLoss()
		}
		due = s.drive.run(func() {
			// Forks still in the rings (newer than the cutoff): the
			// driven queues may hold events of those processes.
			tp.set.Peek(func(r *tracepoint.Record) {
				if r.Event != tpNewTask {
					return
				}
				child, err1 := tp.newtaskPID.Int(r.Sample.Raw)
				flags, err2 := tp.newtaskFlags.Uint(r.Sample.Raw)
				if err1 != nil || err2 != nil || flags&cloneThread != 0 {
					return
				}
				s.tr.pending.add(int32(child), procPendingFork{start: s.tr.deriveStart(r.Sample.Time), ppid: int32(r.Sample.PID)})
			})
		})
		s.tr.applyNow()
		ds.end(served)
		// A flow (two drains in a row with events, or a large one) keeps
		// the timer and no wakeup per event; a lone burst goes back to the
		// doorbell at once (one wakeup at the next fork instead of another
		// timer drain that would find nothing).
		busy = len(batch) >= tpBusyItems || len(batch) > 0 && prevEvents
		prevEvents = len(batch) > 0
		if last {
			return nil
		}
	}
}

// mergeByTime appends the merge of two time-ordered lists to out (reused
// across drains: no allocation per drain).
func mergeByTime(out, a, b []tpItem) []tpItem {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if b[j].msg.TS < a[i].msg.TS {
			out = append(out, b[j])
			j++
		} else {
			out = append(out, a[i])
			i++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// procFilterSupported reports whether the kernel filters cn_proc events per
// socket (struct proc_input, Linux 6.6).
func procFilterSupported() bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	return kernelAtLeast(unix.ByteSliceToString(u.Release[:]), 6, 6)
}

// kernelAtLeast compares a kernel release string ("6.18.44-…") with
// major.minor.
func kernelAtLeast(release string, major, minor int) bool {
	var a, b int
	if _, err := fmt.Sscanf(release, "%d.%d", &a, &b); err != nil {
		return false
	}
	return a > major || a == major && b >= minor
}
