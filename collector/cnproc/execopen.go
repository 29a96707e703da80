package cnproc

// Exe for every exec: how the process table fills the exe of an exec row
// from fanotify's exec-opens when /proc/PID/exe could not be read
// (docs/design.md, "Process source, Exe for every exec").

import (
	"bytes"
	"time"

	"github.com/pofr/pofr/internal/event"
)

// procExecOpen is one FAN_OPEN_EXEC passed in by ObserveExecOpen.
type procExecOpen struct {
	pid    int32
	ts     int64
	path   []byte
	exeKey uint64    // event.ExeKey of the file (0: unknown)
	at     time.Time // when the table saw it
}

// procOpenQueue holds the unclaimed exec-opens of one pid, oldest first.
type procOpenQueue struct {
	items    []procExecOpen
	first    [2]procExecOpen // items' first storage: an exec's program and ELF interpreter
	skip     []byte          // discard opens until this path (its exec already had exe from /proc)
	skipLd   time.Time       // discard loader opens until then (their exec was already matched)
	deadline time.Time       // skip expires then
}

// procHeld are rows of one pid kept back while its exec row waits for an
// exec-open: to fill exe (fill), or to name the file (exe_key), by the open
// of path want or, want nil, the first one that is not an ELF interpreter.
// Rows stay in order.
type procHeld struct {
	rows     []*event.Proc
	e        *procEntry
	fill     bool
	want     []byte
	deadline time.Time
}

// holdRow holds exec row r of e until an exec-open arrives (see procHeld).
func (t *procTable) holdRow(r *event.Proc, e *procEntry, fill bool, want []byte) {
	t.held[r.PID] = &procHeld{rows: []*event.Proc{heldCopy(r)}, e: e, fill: fill, want: want, deadline: t.clock().Add(t.hold)}
}

// setKey sets exe_key of exec row r from its exec-open (0: none) and
// counts it.
func (t *procTable) setKey(r *event.Proc, key uint64) {
	switch {
	case key != 0:
		r.ExeKey = event.Some(key)
		t.st.exeKeys.Add(1)
	case t.keysActive():
		t.st.exeKeyMissed.Add(1)
	}
}

// keysActive reports whether exec-opens bring file identities (the exe
// hasher runs) lately.
func (t *procTable) keysActive() bool {
	return !t.lastKey.IsZero() && t.clock().Sub(t.lastKey) < 10*time.Second
}

// sameExe reports whether an exec-open's path names exe as /proc/PID/exe
// gave it, which appends " (deleted)" once the file is unlinked (a dropper
// that removes itself).
func sameExe(open, exe []byte) bool {
	if bytes.Equal(open, exe) {
		return true
	}
	d, ok := bytes.CutSuffix(exe, []byte(" (deleted)"))
	return ok && bytes.Equal(open, d)
}

// fillExe sets exe of exec row r (process e) from an exec-open.
func (t *procTable) fillExe(r *event.Proc, e *procEntry, path []byte) {
	r.Exe = path
	r.Flags |= event.ProcFlagExeFromFanotify
	if t.procs[e.pid] == e {
		e.exe = path
	}
	t.st.exeFromFan.Add(1)
}

func (t *procTable) fanotifyActive() bool {
	return !t.lastOpen.IsZero() && t.clock().Sub(t.lastOpen) < 10*time.Second
}

// takeOpen claims the execve target among pid's unclaimed exec-opens: the
// first one that is not an ELF interpreter. The loader opens that follow it
// belong to the same exec and are dropped; the interpreter of a #! script
// stays queued (docs/design.md, "Process source, Exe for every exec", says what that means).
func (t *procTable) takeOpen(pid int32) (procExecOpen, bool) {
	q := t.opens[pid]
	if q == nil {
		return procExecOpen{}, false
	}
	now := t.clock()
	t.expireOpens(q, now)
	for len(q.items) > 0 && isELFLoaderPath(q.items[0].path) {
		q.items = q.items[1:]
	}
	if len(q.items) == 0 {
		return procExecOpen{}, false
	}
	o := q.items[0]
	q.items = q.items[1:]
	for len(q.items) > 0 && isELFLoaderPath(q.items[0].path) {
		q.items = q.items[1:]
	}
	q.skipLd = now.Add(t.hold)
	return o, true
}

// skipOpens drops pid's exec-opens that belong to an exec whose exe /proc
// gave: up to the one naming exe (for a script, /proc's exe is the
// interpreter, the last element before the loader) and the loaders after
// it, and returns the one naming exe. If they have not arrived yet, they
// are dropped when they do (false).
func (t *procTable) skipOpens(pid int32, exe []byte) (procExecOpen, bool) {
	q := t.opens[pid]
	if q == nil {
		if !t.fanotifyActive() {
			return procExecOpen{}, false
		}
		q = t.newOpenQueue()
		t.opens[pid] = q
	}
	now := t.clock()
	t.expireOpens(q, now)
	for i, o := range q.items {
		if sameExe(o.path, exe) {
			q.items = q.items[i+1:]
			for len(q.items) > 0 && isELFLoaderPath(q.items[0].path) {
				q.items = q.items[1:]
			}
			q.skipLd = now.Add(t.hold)
			return o, true
		}
	}
	q.items = q.items[:0]
	q.skip, q.deadline = exe, now.Add(t.hold)
	return procExecOpen{}, false
}

func (t *procTable) expireOpens(q *procOpenQueue, now time.Time) {
	n := 0
	for n < len(q.items) && now.Sub(q.items[n].at) > t.hold {
		n++
	}
	q.items = q.items[n:]
	if q.skip != nil && now.After(q.deadline) {
		q.skip = nil
	}
}

// onOpen takes one exec-open from the file source. Its path may point into
// the ring's batch: what the table keeps is the interned copy.
func (t *procTable) onOpen(o procExecOpen) {
	o.path = t.intern.keep(nil, o.path)
	now := t.clock()
	o.at = now
	t.lastOpen = now
	if o.exeKey != 0 {
		t.lastKey = now
	}
	if h := t.held[o.pid]; h != nil && !isELFLoaderPath(o.path) && (h.want == nil || sameExe(o.path, h.want)) {
		if h.fill {
			t.fillExe(h.rows[0], h.e, o.path)
		}
		t.setKey(h.rows[0], o.exeKey)
		t.flushHeld(o.pid, h)
		q := t.queue(o.pid)
		q.skip, q.skipLd = nil, now.Add(t.hold)
		return
	}
	q := t.queue(o.pid)
	t.expireOpens(q, now)
	if q.skip != nil {
		if sameExe(o.path, q.skip) {
			q.skip, q.skipLd = nil, now.Add(t.hold)
		}
		return
	}
	if isELFLoaderPath(o.path) && now.Before(q.skipLd) {
		return
	}
	switch {
	case len(q.items) == 0:
		q.items = q.first[:0] // taken or expired: start again in place
	case len(q.items) >= 8:
		q.items = q.items[1:]
	}
	q.items = append(q.items, o)
}

func (t *procTable) queue(pid int32) *procOpenQueue {
	q := t.opens[pid]
	if q == nil {
		q = t.newOpenQueue()
		t.opens[pid] = q
	}
	return q
}

// procFreeQueues bounds the queues kept for reuse: every exec of a new pid
// needs one, and housekeeping drops them a hold after their last open.
const procFreeQueues = 1024

// newOpenQueue returns an empty queue, one housekeeping dropped if any.
func (t *procTable) newOpenQueue() *procOpenQueue {
	var q *procOpenQueue
	if n := len(t.freeQ); n > 0 {
		q = t.freeQ[n-1]
		t.freeQ[n-1] = nil
		t.freeQ = t.freeQ[:n-1]
		*q = procOpenQueue{}
	} else {
		q = &procOpenQueue{}
	}
	q.items = q.first[:0]
	return q
}

func (t *procTable) flushHeld(pid int32, h *procHeld) {
	delete(t.held, pid)
	for _, r := range h.rows {
		t.write(r)
	}
}

// expireHeld writes the held rows whose wait is over, without exe, and
// returns the earliest remaining deadline (zero if none).
func (t *procTable) expireHeld(now time.Time) time.Time {
	var next time.Time
	for pid, h := range t.held {
		if !now.Before(h.deadline) {
			t.expired(h)
			t.flushHeld(pid, h)
			continue
		}
		if next.IsZero() || h.deadline.Before(next) {
			next = h.deadline
		}
	}
	return next
}

// flushAllHeld writes every held row (at shutdown).
func (t *procTable) flushAllHeld() {
	for pid, h := range t.held {
		t.expired(h)
		t.flushHeld(pid, h)
	}
}

// expired counts what a held exec row is written without.
func (t *procTable) expired(h *procHeld) {
	if h.fill {
		t.st.exeMissed.Add(1)
	}
	t.setKey(h.rows[0], 0)
}
