package cnproc

import (
	"hash/maphash"
	"time"

	"github.com/pofr/pofr/internal/event"
)

// procShadow is what the reader remembers of a live process to decide what
// an exec must read: its parent's (inherited at fork) or its own last
// cgroup and whether namespaces and a set loginuid are known. The table
// holds the values themselves.
type procShadow struct {
	cg    uint64 // maphash of the cgroup path (0: unknown)
	ns    bool   // namespaces were read for this process or an ancestor
	auid  bool   // loginuid is set (and so inherited from now on)
	login bool   // a uid, gid or sid event since loginuid was last read (here or in an ancestor)
	valid bool
}

// procHotWant is what every exec reads.
const procHotWant = procHaveArgv | procHaveExe | procHaveCwd | procHaveStatus | procHaveCgroup

// lineage is the reader's per-pid memory of what execs inherit instead of
// reading /proc: tty, loginuid, sessionid and namespaces come from the
// parent unless a login or a new cgroup may have changed them (the rules are
// in docs/design.md, "Process source, Enrichment"). It is owned by the
// reader goroutine, holds at most max pids, and never reads /proc itself:
// exec calls the read function it is given, so tests drive it with
// procInfo values alone.
type lineage struct {
	m    map[int32]procShadow
	max  int
	seed maphash.Seed
}

func newLineage(max int, seed maphash.Seed) *lineage {
	return &lineage{m: make(map[int32]procShadow, 1024), max: max, seed: seed}
}

// cgroupHash is the shadow hash of a cgroup path (never 0).
func cgroupHash(seed maphash.Seed, cgroup []byte) uint64 { return maphash.Bytes(seed, cgroup) | 1 }

// merge adds the snapshot's processes that the reader has not seen fork.
func (l *lineage) merge(snap map[int32]procShadow) {
	for pid, sh := range snap {
		if _, ok := l.m[pid]; !ok && len(l.m) < l.max {
			l.m[pid] = sh
		}
	}
}

// fork makes child inherit parent's shadow (or forget child when the parent
// is unknown).
func (l *lineage) fork(parent, child int32) {
	if p, ok := l.m[parent]; ok && len(l.m) < l.max {
		l.m[child] = p
	} else {
		delete(l.m, child)
	}
}

// cred notes a uid, gid or sid change of pid: where a login sets loginuid,
// one follows before the shell's exec (procShadow.login).
func (l *lineage) cred(pid int32) {
	if sh, ok := l.m[pid]; ok && !sh.auid && !sh.login {
		sh.login = true
		l.m[pid] = sh
	}
}

// forget drops pid (it exited, or its exec was not read).
func (l *lineage) forget(pid int32) { delete(l.m, pid) }

// reset forgets everything: after a loss anything may have changed.
func (l *lineage) reset() { clear(l.m) }

// exec decides what an exec of pid reads, reads it into in with read
// (first the hot set, then, in nsIn, the namespace links when the cgroup
// changed or the namespaces are unknown), and records what it learnt. full
// reads everything (FullEnrich); skip leaves parts out that the caller has
// already (argv from a tracepoint sample). It returns false when the
// process was gone.
func (l *lineage) exec(pid int32, full bool, skip uint32, in, nsIn *procInfo, read func(pid int32, want uint32, in *procInfo)) bool {
	sh := l.m[pid]
	want := procHotWant
	if full {
		want = procHaveAll
	} else if !sh.valid || (!sh.auid && sh.login) {
		want |= procHaveLogin // a login may have set it
	}
	want &^= skip
	read(pid, want, in)
	if in.have == 0 {
		delete(l.m, pid) // gone
		return false
	}
	var cg uint64
	if in.have&procHaveCgroup != 0 {
		cg = cgroupHash(l.seed, in.cgroup)
	}
	if want&procHaveNS == 0 && (!sh.valid || !sh.ns || cg == 0 || cg != sh.cg) {
		// A new cgroup (containers get one) or unknown namespaces: read
		// them.
		read(pid, procHaveNS, nsIn)
		in.ns, in.have = nsIn.ns, in.have|nsIn.have
	}
	sh = procShadow{valid: true, cg: cg, ns: sh.ns || in.have&procHaveNS != 0,
		auid:  sh.auid || (in.have&procHaveLogin != 0 && in.auid != event.NoID),
		login: sh.login && in.have&procHaveLogin == 0}
	if sh.cg != 0 && len(l.m) < l.max {
		l.m[pid] = sh
	}
	return true
}

// lossWindow is how long the reader merges losses into one gap item per
// cause.
const lossWindow = 100 * time.Millisecond

// lossCoalescer merges the reader's losses (ENOBUFS on the socket, samples
// dropped by the tracepoint rings, events dropped by a full queue) within
// lossWindow into one gap item per cause, which goes into the queue as soon
// as there is room after that: each cause's row keeps its own count (the
// rings' is exact, ENOBUFS's unknown), so no cause's count is lost in
// another's. It is owned by the reader goroutine and takes the time as
// arguments.
type lossCoalescer struct {
	on       bool
	first    time.Time
	fromMono uint64 // kernel time of the last event before the first loss
	toMono   uint64 // end of the rings' loss interval (0: when noticed)
	lost     int64  // events dropped by a full queue
	kernel   int64  // samples the tracepoint rings dropped (PERF_RECORD_LOST)
	enobufs  bool
}

// pending reports whether a loss is waiting to be written.
func (c *lossCoalescer) pending() bool { return c.on }

// note starts a window at now if none is open; lastMono is the kernel time
// of the last event decoded.
func (c *lossCoalescer) note(now time.Time, lastMono uint64) {
	if !c.on {
		c.on, c.first, c.fromMono = true, now, lastMono
	}
}

// dropped counts one event dropped by a full ring.
func (c *lossCoalescer) dropped(now time.Time, lastMono uint64) {
	c.note(now, lastMono)
	c.lost++
}

// overrun notes ENOBUFS: an unknown number of events was lost.
func (c *lossCoalescer) overrun(now time.Time, lastMono uint64) {
	c.note(now, lastMono)
	c.enobufs = true
}

// ringLost notes count samples that a tracepoint ring dropped between the
// kernel times from and to.
func (c *lossCoalescer) ringLost(now time.Time, lastMono uint64, count int64, from, to uint64) {
	c.note(now, lastMono)
	c.kernel += count
	if c.fromMono == 0 || from < c.fromMono {
		c.fromMono = from
	}
	c.toMono = max(c.toMono, to)
}

// flush hands the merged losses to push once the window is over (at is the
// wall time the gap rows end at, unless the rings said), one item per
// cause, and closes the window once push took them all (a cause push took
// is not handed out again).
func (c *lossCoalescer) flush(now time.Time, at int64, push func(*procItem) bool) {
	if !c.on || now.Sub(c.first) < lossWindow {
		return
	}
	item := func(lost int64, reason string) bool {
		it := procItem{kind: procItemLoss, fromMono: c.fromMono, toMono: c.toMono, at: at, lost: lost, reason: reason}
		return push(&it)
	}
	if c.kernel > 0 {
		if !item(c.kernel, "tracepoint ring overflow") {
			return
		}
		c.kernel = 0
	}
	if c.lost > 0 {
		if !item(c.lost, "process event queue overflow") {
			return
		}
		c.lost = 0
	}
	if c.enobufs {
		if !item(-1, "ENOBUFS on cn_proc socket") {
			return
		}
	}
	*c = lossCoalescer{}
}

// flushFinal is flush whatever the window's age: the reader stops, and a
// loss it noted must still be written.
func (c *lossCoalescer) flushFinal(at int64, push func(*procItem) bool) {
	if c.on {
		c.flush(c.first.Add(lossWindow), at, push)
	}
}
