package cnproc

import (
	"sync"
	"sync/atomic"
	"time"
)

// procBatchDelay is how long the table goroutine lets the ring fill after
// it was told that the ring is not empty, and then between drains while
// events keep coming. Each drain costs one wakeup of the table goroutine
// instead of one per event; Lookup sees pending forks meanwhile
// (procPendingForks).
const procBatchDelay = 5 * time.Millisecond

// procBatch is one batch of the ring: the items, the /proc reads of its
// exec items, the bytes those reads point into, and exec-opens.
type procBatch struct {
	items []procItem
	infos []procInfo
	arena []byte
	opens []procExecOpen
}

// procRing is the bounded hand-over from the reader thread (and
// ObserveExecOpen) to the table goroutine: appends under a mutex that is
// held for a copy, double-buffered so that steady state allocates nothing,
// and a doorbell rung only when the ring goes from empty to not empty.
type procRing struct {
	mu       sync.Mutex
	b        procBatch
	rung     bool // the bell was rung since the last take
	maxItems int
	maxOpens int
	maxArena int
	bell     chan struct{}
	// quiet: the tracepoint reader applies the ring itself at each of its
	// drains (procTable.applyNow), so a push never wakes the table goroutine.
	quiet atomic.Bool
}

func newProcRing(maxItems, maxOpens int) *procRing {
	return &procRing{maxItems: maxItems, maxOpens: maxOpens, maxArena: 8 << 20, bell: make(chan struct{}, 1)}
}

// keep copies b into the arena (ring locked).
func (q *procRing) keep(b []byte) []byte {
	if b == nil {
		return nil
	}
	off := len(q.b.arena)
	q.b.arena = append(q.b.arena, b...)
	return q.b.arena[off:len(q.b.arena):len(q.b.arena)]
}

// push appends it and a copy of in (nil: none). It returns false when the
// ring is full: the caller counts the drop.
func (q *procRing) push(it *procItem, in *procInfo) bool {
	q.mu.Lock()
	if len(q.b.items) >= q.maxItems {
		q.mu.Unlock()
		return false
	}
	if in != nil {
		need := len(in.argv) + len(in.exe) + len(in.cwd) + len(in.cgroup) + len(in.comm) + len(in.tty)
		if len(q.b.arena)+need > q.maxArena {
			q.mu.Unlock()
			return false
		}
		c := *in
		c.argv, c.exe, c.cwd, c.cgroup = q.keep(in.argv), q.keep(in.exe), q.keep(in.cwd), q.keep(in.cgroup)
		c.comm, c.tty, c.container = q.keep(in.comm), q.keep(in.tty), nil
		q.b.infos = append(q.b.infos, c)
		it.infoAt = int32(len(q.b.infos))
	}
	it.info = nil
	q.b.items = append(q.b.items, *it)
	q.unlockRing()
	return true
}

// unlockRing unlocks the ring after an append and rings the doorbell if the
// batch was empty before it.
func (q *procRing) unlockRing() {
	ring := !q.rung
	q.rung = true
	q.mu.Unlock()
	if ring && !q.quiet.Load() {
		select {
		case q.bell <- struct{}{}:
		default:
		}
	}
}

// pushOpen appends an exec-open with a copy of its path in the arena;
// false when full.
func (q *procRing) pushOpen(o procExecOpen) bool {
	q.mu.Lock()
	if len(q.b.opens) >= q.maxOpens || len(q.b.arena)+len(o.path) > q.maxArena {
		q.mu.Unlock()
		return false
	}
	o.path = q.keep(o.path)
	q.b.opens = append(q.b.opens, o)
	q.unlockRing()
	return true
}

// take swaps the ring's batch with spare (emptied) and returns the full one.
func (q *procRing) take(spare procBatch) procBatch {
	spare.items, spare.infos, spare.arena, spare.opens = spare.items[:0], spare.infos[:0], spare.arena[:0], spare.opens[:0]
	q.mu.Lock()
	b := q.b
	q.b = spare
	q.rung = false
	q.mu.Unlock()
	return b
}

// procPendingFork is a fork the reader has seen and the table not yet
// applied.
type procPendingFork struct {
	start int64
	ppid  int32
}

// procPendingForks lets Lookup see the lives still in the ring, so that
// batching does not delay other sources' attribution of new processes.
type procPendingForks struct {
	n  atomic.Int32 // len(m), read without the lock
	mu sync.Mutex
	m  map[int32]procPendingFork
}

func (p *procPendingForks) add(pid int32, f procPendingFork) {
	p.mu.Lock()
	p.m[pid] = f
	p.n.Store(int32(len(p.m)))
	p.mu.Unlock()
}

func (p *procPendingForks) get(pid int32) (procPendingFork, bool) {
	if p.n.Load() == 0 {
		return procPendingFork{}, false
	}
	p.mu.Lock()
	f, ok := p.m[pid]
	p.mu.Unlock()
	return f, ok
}

// drop forgets pid's pending fork with that start (it was not queued).
func (p *procPendingForks) drop(pid int32, start int64) {
	p.mu.Lock()
	if f, ok := p.m[pid]; ok && f.start == start {
		delete(p.m, pid)
	}
	p.n.Store(int32(len(p.m)))
	p.mu.Unlock()
}

// applied forgets the forks of items, now in the table.
func (p *procPendingForks) applied(items []procItem) {
	if p.n.Load() == 0 {
		return
	}
	p.mu.Lock()
	for i := range items {
		m := &items[i].msg
		if items[i].kind == procItemEvent && m.What == procEventFork && m.PID == m.TGID {
			if f, ok := p.m[m.TGID]; ok && f.start == items[i].start {
				delete(p.m, m.TGID)
			}
		}
	}
	p.n.Store(int32(len(p.m)))
	p.mu.Unlock()
}

// procInterner shares the byte strings that entries keep (exe, cwd, cgroup,
// comm, tty): most execs repeat a path already seen, which then costs no
// allocation. It is bounded: when full it starts over.
type procInterner struct {
	m map[string][]byte
}

const procInternMax = 8192

// keep returns b as bytes owned by the table: cur if it holds the same
// bytes, else the interned copy; nil for nil.
func (p *procInterner) keep(cur, b []byte) []byte {
	if b == nil {
		return nil
	}
	if cur != nil && string(cur) == string(b) {
		return cur
	}
	if v, ok := p.m[string(b)]; ok {
		return v
	}
	if p.m == nil || len(p.m) >= procInternMax {
		p.m = make(map[string][]byte, 256)
	}
	v := append([]byte{}, b...)
	p.m[string(v)] = v
	return v
}
