package cnproc

import (
	"bytes"
	"context"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pofr/pofr/collector"
	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/procfs"
)

// procEntry is the current life of one pid in the process table.
type procEntry struct {
	pid         int32
	start       int64 // proc_start: the key of this life
	statStart   bool  // start came from /proc/PID/stat; otherwise derived from the fork event time
	ppid        int32
	parentStart event.Opt[int64]
	uid, euid   uint32
	gid, egid   uint32
	auid, sid   uint32
	tty         []byte
	comm        []byte
	exe         []byte
	cwd         []byte
	cgroup      []byte
	container   []byte
	ns          [len(procNSNames)]event.Opt[uint32]
	argvSum     uint64 // poll mode: hash of the last argv seen, to notice execs
	self        bool
	exited      bool
	inferred    bool // exited was inferred by a /proc scan, not seen as an event
	exitAt      time.Time
}

// procItemKind says what a queue item carries.
type procItemKind uint8

const (
	procItemEvent procItemKind = iota // a cn_proc event, with hot-path /proc data
	procItemLoss                      // events were lost: write a gap row and resync
)

// procItem is what the reader hands to the table goroutine.
type procItem struct {
	kind procItemKind
	msg  procMsg
	info *procInfo // exec: the /proc read on the hot path; nil if not read
	// infoAt is, in the ring, 1 + the index of info in the batch's infos
	// (0: none); the table sets info from it.
	infoAt int32
	// start is the key of a fork's child, derived from the event time by
	// the reader (0: the table derives it).
	start int64
	// procItemLoss:
	fromMono uint64 // kernel time of the last event before the loss (0: unknown)
	toMono   uint64 // kernel time the loss ended, when the kernel says (tracepoint rings); 0: at
	at       int64  // wall ns when the loss was noticed
	lost     int64  // events lost, or -1 if unknown
	reason   string
}

// procExitRec is an exited entry waiting for the end of its grace period.
type procExitRec struct {
	e  *procEntry
	at time.Time
}

// procCounters are the source's statistics, updated atomically.
type procCounters struct {
	seen, execs, rows, lost, queueDrops, gaps, resyncs       atomic.Uint64
	enrichSkipped, argvMissed, exeMissed, exeFromFan         atomic.Uint64
	openDrops, unknown, threads, tableFull, replaced, frames atomic.Uint64
	ringLost, argvNotInDump, argvGuard, execSuperseded       atomic.Uint64
	exeKeys, exeKeyMissed                                    atomic.Uint64
	tableSize                                                atomic.Int64
}

// procTable is the live process table. One goroutine owns it (handle, onOpen,
// reconcile, housekeeping); Lookup reads the index under mu from any
// goroutine.
type procTable struct {
	sink     event.Sink
	log      *slog.Logger
	st       *procCounters
	now      func() time.Time
	selfPID  int32
	poll     bool // every row gets ProcFlagPoll
	grace    time.Duration
	maxProcs int
	hold     time.Duration

	wallOff int64        // wall-clock ns − CLOCK_MONOTONIC ns
	bootOff atomic.Int64 // CLOCK_BOOTTIME ns − CLOCK_MONOTONIC ns (the reader derives fork starts with it)

	ring    *procRing        // hand-over from the reader and ObserveExecOpen
	pending procPendingForks // forks in the ring, for Lookup
	spare   procBatch        // the buffers the reader fills next
	intern  procInterner     // exe, cwd, cgroup and comm bytes shared between entries
	rowBuf  event.Proc       // the row being built (sinks copy what they keep)

	procs  map[int32]*procEntry
	exited []procExitRec
	held   map[int32]*procHeld
	opens  map[int32]*procOpenQueue
	freeQ  []*procOpenQueue // queues housekeeping dropped, for the next pids
	// lastOpen is when the last exec-open arrived: exe-less exec rows are
	// held only while fanotify is feeding us; lastKey when the last one with
	// a file identity did: exec rows wait for their key only while keys come.
	lastOpen time.Time
	lastKey  time.Time
	lastTS   int64 // wall time of the last event handled
	// drainNow is the time of the drain being applied (zero outside one):
	// its events share one clock read (clock) instead of several each.
	drainNow time.Time
	// A loss asked for a /proc rescan; lastResync rate-limits them.
	resyncDue  bool
	lastResync time.Time
	seed       maphash.Seed

	mu    sync.RWMutex
	index map[int32]collector.ProcInfo

	// own serialises the table's owners: the table goroutine, and the
	// tracepoint reader thread when it applies its drains itself (applyNow).
	own sync.Mutex
	// holdBell tells the table goroutine that applyNow left held exec rows
	// (its hold timer is the table goroutine's).
	holdBell chan struct{}
	// houseBell restarts the table goroutine's housekeeping tick, which
	// stops (houseIdle) while no exited entry, exec-open or resync waits:
	// an idle collector has no timer of its own here.
	houseBell chan struct{}
	houseIdle atomic.Bool
	// clocks measures wallOff and bootOff; a drain with events does it
	// again when lastClock is clockEvery old.
	clocks    func() (wallOff, bootOff int64)
	lastClock time.Time
	// direct: the tracepoint reader applies its drains itself (applyNow);
	// set once the start-up snapshot is in the table.
	direct atomic.Bool

	// /proc access, nil in tests that feed frames only.
	readStat func(pid int32) (*procInfo, error)
	readFull func(pid int32) (*procInfo, error)
	listPIDs func() ([]int32, error)
}

func newProcTable(sink event.Sink, log *slog.Logger, st *procCounters, now func() time.Time) *procTable {
	return &procTable{
		sink: sink, log: log, st: st, now: now,
		grace: 10 * time.Second, maxProcs: 1 << 17, hold: 250 * time.Millisecond,
		procs: make(map[int32]*procEntry), held: make(map[int32]*procHeld),
		opens: make(map[int32]*procOpenQueue), index: make(map[int32]collector.ProcInfo),
		seed: maphash.MakeSeed(), ring: newProcRing(16384, 4096),
		pending:  procPendingForks{m: make(map[int32]procPendingFork)},
		holdBell: make(chan struct{}, 1), houseBell: make(chan struct{}, 1),
	}
}

// clockEvery is how old the clock offsets may be when a drain applies
// events (a wall-clock step or a resume from suspend moves them).
const clockEvery = 10 * time.Second

// wakeHouse restarts the housekeeping tick if it stopped.
func (t *procTable) wakeHouse() {
	if t.houseIdle.Load() && t.houseIdle.CompareAndSwap(true, false) {
		select {
		case t.houseBell <- struct{}{}:
		default:
		}
	}
}

// wakeHouseLocked is wakeHouse after work that did not go through drain
// (a reconcile's exits); own is held.
func (t *procTable) wakeHouseLocked() {
	if !t.houseDone() {
		t.wakeHouse()
	}
}

// houseDone reports whether housekeeping has nothing left to do until the
// next event.
func (t *procTable) houseDone() bool {
	return len(t.exited) == 0 && len(t.opens) == 0 && !t.resyncDue
}

// applyNow applies the ring in the calling thread: the tracepoint reader
// calls it at the end of each drain instead of ringing the table goroutine,
// which saves a goroutine wakeup (and a second timer) per drain.
func (t *procTable) applyNow() {
	if !t.direct.Load() {
		return // the table goroutine applies what was pushed
	}
	t.own.Lock()
	t.drain()
	held := len(t.held) > 0
	t.own.Unlock()
	if held {
		select {
		case t.holdBell <- struct{}{}:
		default:
		}
	}
}

// lookup returns the life currently holding pid (or the last one, during its
// grace period after exit).
func (t *procTable) lookup(pid int32) (collector.ProcInfo, bool) {
	if f, ok := t.pending.get(pid); ok {
		// Forked, and the table has not applied it yet: the newest life.
		p := collector.ProcInfo{Start: f.start, EUID: event.NoID, Self: pid == t.selfPID || f.ppid == t.selfPID}
		t.mu.RLock()
		if pp, ok := t.index[f.ppid]; ok {
			p.EUID = pp.EUID // a child starts with its parent's credentials
		}
		t.mu.RUnlock()
		return p, true
	}
	t.mu.RLock()
	p, ok := t.index[pid]
	t.mu.RUnlock()
	return p, ok
}

// put makes e the current life of its pid. It returns false when the table
// is full (counted); rows are still written, but Lookup will not find e.
func (t *procTable) put(e *procEntry) bool {
	if old, ok := t.procs[e.pid]; !ok || old == nil {
		if len(t.procs) >= t.maxProcs {
			t.evict(t.now(), true)
			if len(t.procs) >= t.maxProcs {
				t.st.tableFull.Add(1)
				return false
			}
		}
	}
	t.procs[e.pid] = e
	t.publish(e)
	t.st.tableSize.Store(int64(len(t.procs)))
	return true
}

// publish copies what Lookup needs of e into the index.
func (t *procTable) publish(e *procEntry) {
	t.mu.Lock()
	t.index[e.pid] = collector.ProcInfo{Start: e.start, EUID: e.euid, Self: e.self}
	t.mu.Unlock()
}

// evict drops exited entries whose grace period is over (all of them if
// force), oldest first.
func (t *procTable) evict(now time.Time, force bool) {
	n := 0
	for _, x := range t.exited {
		if !force && now.Sub(x.at) < t.grace {
			break
		}
		n++
		if cur := t.procs[x.e.pid]; cur == x.e {
			delete(t.procs, x.e.pid)
			t.mu.Lock()
			delete(t.index, x.e.pid)
			t.mu.Unlock()
		}
	}
	t.exited = append(t.exited[:0], t.exited[n:]...)
	t.st.tableSize.Store(int64(len(t.procs)))
}

// alive returns the live entry of pid, or nil.
func (t *procTable) alive(pid int32) *procEntry {
	if e := t.procs[pid]; e != nil && !e.exited {
		return e
	}
	return nil
}

// deriveStart turns a cn_proc time (CLOCK_MONOTONIC ns) into a proc_start:
// ns since boot, truncated to a clock tick like /proc/PID/stat starttime.
func (t *procTable) deriveStart(mono uint64) int64 {
	b := int64(mono) + t.bootOff.Load()
	return b - b%procfs.TickNS
}

// procSameStart reports whether start (from /proc/PID/stat) names the life e.
// A start derived from the fork event time can be one tick later than the
// kernel's (the fork event is stamped a few µs after the task's start), so it
// matches within one tick.
func procSameStart(e *procEntry, start int64) bool {
	if e.statStart {
		return e.start == start
	}
	d := e.start - start
	return d >= -procfs.TickNS && d <= procfs.TickNS
}

// setParent sets e's parent to ppid and its start from the table.
func (t *procTable) setParent(e *procEntry, ppid int32) {
	t.setParentEntry(e, ppid, t.alive(ppid))
}

// setParentEntry is setParent with ppid's live entry p (nil: none) looked
// up already.
func (t *procTable) setParentEntry(e *procEntry, ppid int32, p *procEntry) {
	e.ppid = ppid
	e.parentStart = event.Opt[int64]{}
	if p != nil {
		e.parentStart = event.Some(p.start)
	}
}

// clock is the table's time: the drain's while one is applied, else now.
func (t *procTable) clock() time.Time {
	if !t.drainNow.IsZero() {
		return t.drainNow
	}
	return t.now()
}

// applyInfo copies what /proc said into e. Parts that could not be read keep
// their previous (inherited) values, except comm and exe, which an exec
// changes: those become unknown.
//
// The bytes of in may point into a batch that is reused: what e keeps is
// taken from the interner (or e's own bytes when equal), never in's.
func (t *procTable) applyInfo(e *procEntry, in *procInfo, exec bool) {
	if in.have&procHaveComm != 0 {
		e.comm = t.intern.keep(e.comm, in.comm)
	} else if exec {
		e.comm = nil
	}
	if in.have&procHaveStat != 0 {
		e.tty = t.intern.keep(e.tty, in.tty)
	}
	if in.have&procHaveExe != 0 {
		e.exe = t.intern.keep(e.exe, in.exe)
	} else if exec {
		e.exe = nil
	}
	if in.have&procHaveStatus != 0 {
		e.uid, e.euid, e.gid, e.egid = in.uid, in.euid, in.gid, in.egid
	}
	if in.have&procHaveLogin != 0 {
		e.auid = in.auid
	}
	if in.have&procHaveSession != 0 {
		e.sid = in.sid
	}
	if in.have&procHaveCwd != 0 {
		e.cwd = t.intern.keep(e.cwd, in.cwd)
	}
	if in.have&procHaveCgroup != 0 && !bytes.Equal(e.cgroup, in.cgroup) {
		e.cgroup = t.intern.keep(nil, in.cgroup)
		e.container = nil
		if e.cgroup != nil {
			e.container = procfs.ContainerID(e.cgroup)
		}
	}
	for i, v := range in.ns {
		if v.Valid {
			e.ns[i] = v
		}
	}
	if in.have&procHaveArgv != 0 {
		e.argvSum = maphash.Bytes(t.seed, in.argv)
	}
}

// entryFromInfo makes a new life from a /proc read (stat must be present).
func (t *procTable) entryFromInfo(pid int32, in *procInfo) *procEntry {
	e := &procEntry{pid: pid, start: in.start, statStart: true,
		uid: event.NoID, euid: event.NoID, gid: event.NoID, egid: event.NoID, auid: event.NoID, sid: event.NoID}
	t.applyInfo(e, in, false)
	e.ppid = in.ppid
	e.self = pid == t.selfPID
	return e
}

// heldCopy returns a copy of r that may be kept past the drain: argv
// points into the drain's batch (the sink copies what it keeps, so a row
// written at once needs no copy of its own); the other byte columns are
// the entry's, which are never changed in place.
func heldCopy(r *event.Proc) *event.Proc {
	c := *r
	c.Argv = bytes.Clone(r.Argv)
	return &c
}

// row builds a row for e with the columns every event kind carries.
//
// The row is t.rowBuf, valid until the next call: emit copies it when it has
// to be held.
func (t *procTable) row(kind string, ts int64, e *procEntry, tid int32) *event.Proc {
	r := &t.rowBuf
	*r = event.Proc{
		TS: ts, Event: kind, PID: e.pid, TID: tid, PPID: e.ppid,
		ProcStart: e.start, ParentStart: e.parentStart,
		UID: e.uid, EUID: e.euid, GID: e.gid, EGID: e.egid, AUID: e.auid, SessionID: e.sid,
		TTY: e.tty, Comm: e.comm, Exe: e.exe, Cwd: e.cwd, Cgroup: e.cgroup, ContainerID: e.container,
		NSPid: e.ns[0], NSMnt: e.ns[1], NSNet: e.ns[2], NSUser: e.ns[3], NSUts: e.ns[4], NSIpc: e.ns[5], NSCgroup: e.ns[6],
	}
	if !r.ParentStart.Valid {
		r.Flags |= event.ProcFlagParentUnknown
	}
	if e.self {
		r.Flags |= event.ProcFlagSelf
	}
	if t.poll {
		r.Flags |= event.ProcFlagPoll
	}
	if tid != e.pid {
		r.Flags |= event.ProcFlagThread
	}
	return r
}

// emit writes r, or queues it behind a held exec row of the same pid.
func (t *procTable) emit(r *event.Proc) {
	if h := t.held[r.PID]; h != nil {
		h.rows = append(h.rows, heldCopy(r))
		return
	}
	t.write(r)
}

func (t *procTable) write(r *event.Proc) {
	t.sink.AppendProc(r)
	t.st.rows.Add(1)
}

// handle applies one queue item to the table and writes its rows.
func (t *procTable) handle(it *procItem) {
	if it.kind == procItemLoss {
		from := t.lastTS
		if it.fromMono != 0 {
			from = int64(it.fromMono) + t.wallOff
		}
		to := it.at
		if it.toMono != 0 {
			to = int64(it.toMono) + t.wallOff
		}
		t.loss(from, to, it.lost, it.reason)
		return
	}
	m := &it.msg
	if m.What == procEventNone {
		return
	}
	t.st.seen.Add(1)
	ts := int64(m.TS) + t.wallOff
	t.lastTS = ts
	thread := m.PID != m.TGID
	switch m.What {
	case procEventFork:
		if thread {
			t.st.threads.Add(1) // a new thread is not a new process
			return
		}
		t.fork(m, it.start, ts)
	case procEventExec:
		t.exec(m, it.info, ts)
	case procEventExit:
		if thread {
			t.st.threads.Add(1) // the process lives on
			return
		}
		t.exit(m, ts)
	case procEventUID, procEventGID, procEventComm:
		if thread {
			// Per-thread credentials and names: glibc and Go change ids on
			// every thread, so the leader's event stands for the process.
			t.st.threads.Add(1)
			return
		}
		e, late := t.current(m.TGID)
		if e == nil {
			return
		}
		kind := event.ProcUID
		switch m.What {
		case procEventUID:
			e.uid, e.euid = m.RID, m.EID
			t.publish(e)
		case procEventGID:
			kind = event.ProcGID
			e.gid, e.egid = m.RID, m.EID
		case procEventComm:
			kind = event.ProcComm
			e.comm = procCommBytes(&m.Comm)
		}
		r := t.row(kind, ts, e, m.PID)
		r.Flags |= late
		t.emit(r)
	case procEventSID, procEventPtrace, procEventCoredump:
		e, late := t.current(m.TGID)
		if e == nil {
			return
		}
		var r *event.Proc
		switch m.What {
		case procEventSID:
			r = t.row(event.ProcSID, ts, e, m.PID)
			r.SessionID = uint32(m.TGID) // setsid(2) makes the caller the session leader
		case procEventPtrace:
			r = t.row(event.ProcPtrace, ts, e, m.PID)
			r.TracerPID = event.Some(m.TracerTGID)
		case procEventCoredump:
			r = t.row(event.ProcCoredump, ts, e, m.PID)
		}
		r.Flags |= late
		t.emit(r)
	}
}

// housekeeping evicts ended lives and stale exec-open queues.
func (t *procTable) housekeeping(now time.Time) {
	t.evict(now, false)
	for pid, q := range t.opens {
		t.expireOpens(q, now)
		if len(q.items) == 0 && q.skip == nil && !now.Before(q.skipLd) {
			delete(t.opens, pid)
			if len(t.freeQ) < procFreeQueues {
				t.freeQ = append(t.freeQ, q)
			}
		}
	}
}

// drain applies one batch from the ring: its exec-opens first (an exec
// finds its open queued rather than waiting for it), then its events. It
// returns whether the batch had anything.
func (t *procTable) drain() bool {
	b := t.ring.take(t.spare)
	if len(b.items)+len(b.opens) > 0 {
		t.drainNow = t.now()
		defer func() { t.drainNow = time.Time{} }()
		if t.clocks != nil && t.drainNow.Sub(t.lastClock) >= clockEvery {
			var boot int64
			t.wallOff, boot = t.clocks()
			t.bootOff.Store(boot)
			t.lastClock = t.drainNow
		}
		defer t.wakeHouse()
	}
	for i := range b.opens {
		t.onOpen(b.opens[i])
	}
	for i := range b.items {
		it := &b.items[i]
		if it.infoAt > 0 {
			it.info = &b.infos[it.infoAt-1]
		}
		t.handle(it)
	}
	t.pending.applied(b.items)
	n := len(b.items) + len(b.opens)
	clear(b.items) // drop references: strings, and infos pointing into arena
	clear(b.infos)
	clear(b.opens)
	t.spare = b
	return n > 0
}

// run is the table goroutine: it applies the ring's events and exec-opens
// in batches, holds and releases exe-less exec rows, keeps the clock offsets
// fresh, evicts ended lives and, when resync > 0, rescans /proc at that
// interval. In poll mode it scans /proc every pollEvery instead.
//
// Batching: the goroutine sleeps on the ring's bell; once rung, it waits
// procBatchDelay, drains, and keeps draining every procBatchDelay (bell
// ignored) until a drain finds the ring empty. Under load that is one
// wakeup per procBatchDelay, not one per event; idle, none.
func (t *procTable) run(ctx context.Context, pollEvery, resync time.Duration, clocks func() (wallOff, bootOff int64)) {
	house := time.NewTicker(time.Second)
	defer house.Stop()
	houseC := house.C
	t.own.Lock()
	t.clocks, t.lastClock = clocks, t.now()
	t.own.Unlock()
	holdTimer := time.NewTimer(time.Hour)
	holdTimer.Stop()
	batch := time.NewTimer(time.Hour)
	batch.Stop()
	bell := t.ring.bell
	var holdAt time.Time
	var resyncC, pollC <-chan time.Time
	if resync > 0 && !t.poll {
		tk := time.NewTicker(resync)
		defer tk.Stop()
		resyncC = tk.C
	}
	if t.poll {
		tk := time.NewTicker(pollEvery)
		defer tk.Stop()
		pollC = tk.C
	}
	// armHold starts the hold timer for the earliest held exec row, if it is
	// not running already.
	armHold := func() {
		if !holdAt.IsZero() {
			return
		}
		next := t.expireHeld(t.now())
		if next.IsZero() {
			return
		}
		holdAt = next
		holdTimer.Reset(next.Sub(t.now()))
	}
	for {
		select {
		case <-ctx.Done():
			// Apply what the reader handed over before it stopped.
			t.own.Lock()
			for t.drain() {
			}
			t.flushAllHeld()
			t.own.Unlock()
			return
		case <-bell:
			bell = nil
			batch.Reset(procBatchDelay)
		case <-t.holdBell:
			t.own.Lock()
			armHold()
			t.own.Unlock()
		case <-batch.C:
			t.own.Lock()
			if t.drain() {
				batch.Reset(procBatchDelay)
			} else {
				bell = t.ring.bell
			}
			if len(t.held) > 0 {
				armHold()
			}
			t.own.Unlock()
		case <-holdTimer.C:
			t.own.Lock()
			holdAt = time.Time{}
			armHold()
			t.own.Unlock()
		case now := <-houseC:
			t.own.Lock()
			t.housekeeping(now)
			t.maybeResync()
			if t.houseDone() {
				house.Stop()
				houseC = nil
				t.houseIdle.Store(true) // under own: the next drain sees it
			}
			t.own.Unlock()
		case <-t.houseBell:
			if houseC == nil {
				house.Reset(time.Second)
				houseC = house.C
			}
		case <-resyncC:
			t.own.Lock()
			if err := t.reconcile(procReconcileResync); err != nil {
				t.log.Warn("periodic resync of the process table", "err", err)
			}
			t.wakeHouseLocked()
			t.own.Unlock()
		case <-pollC:
			t.own.Lock()
			if err := t.reconcile(procReconcilePoll); err != nil {
				t.log.Warn("poll /proc", "err", err)
			}
			t.wakeHouseLocked()
			t.own.Unlock()
		}
	}
}
