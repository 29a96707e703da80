package cnproc

// Losses and /proc scans: the process table's gap rows, and how it is
// compared with /proc at start-up, after a loss and in poll mode.

import (
	"bytes"
	"time"

	"github.com/pofr/pofr/internal/event"
)

// procReconcileKind says why the table is compared with /proc.
type procReconcileKind uint8

const (
	procReconcileSnapshot procReconcileKind = iota // start-up: every process gets a snapshot row
	procReconcileResync                            // after a loss: only what the table missed
	procReconcilePoll                              // fallback mode: new lives become exec rows
)

// loss writes a gap row for events lost between from (the last event
// before the loss) and at, then resynchronises the table from /proc.
func (t *procTable) loss(from, at, lost int64, reason string) {
	if from == 0 || from > at {
		from = at
	}
	g := &event.Gap{FromTS: from, ToTS: at, Source: event.SourceProc, Reason: reason}
	if lost >= 0 {
		g.Lost = event.Some(lost)
	}
	t.sink.AppendGap(g)
	t.st.gaps.Add(1)
	t.resyncDue = true
	t.maybeResync()
	if t.resyncDue {
		t.wakeHouse() // rate-limited: housekeeping does it
	}
}

// maybeResync rescans /proc after a loss, at most once a second: under a
// storm of ENOBUFS a rescan per loss would feed the storm.
func (t *procTable) maybeResync() {
	if !t.resyncDue || t.listPIDs == nil {
		return
	}
	now := t.now()
	if !t.lastResync.IsZero() && now.Sub(t.lastResync) < time.Second {
		return
	}
	t.resyncDue, t.lastResync = false, now
	if err := t.reconcile(procReconcileResync); err != nil {
		t.log.Warn("resync process table from /proc", "err", err)
	}
}

// reconcile compares the table with the processes in /proc. A snapshot
// writes a snapshot row for every process; a resync writes snapshot rows for
// lives the table missed and exit rows (flag late_read) for lives that ended
// unseen; a poll round writes exec rows for new lives and changed programs
// and exit rows for ended ones.
func (t *procTable) reconcile(how procReconcileKind) error {
	pids, err := t.listPIDs()
	if err != nil {
		return err
	}
	if how == procReconcileResync {
		t.st.resyncs.Add(1)
	}
	now := t.now()
	ts := now.UnixNano()
	seen := make(map[int32]bool, len(pids))
	var fresh []*procEntry
	var argv = make(map[*procEntry]*procInfo)
	for _, pid := range pids {
		st, err := t.readStat(pid)
		if err != nil {
			continue // gone
		}
		seen[pid] = true
		e := t.alive(pid)
		if e != nil && procSameStart(e, st.start) {
			if how == procReconcilePoll && !bytes.Equal(e.comm, st.comm) {
				t.pollExec(e, ts)
			} else if how == procReconcileSnapshot {
				fresh = append(fresh, e) // known already (an event came first): still snapshot it
			}
			continue
		}
		if e != nil {
			t.endInferred(e, ts)
		}
		in, err := t.readFull(pid)
		if err != nil || in.have&procHaveStat == 0 || in.start != st.start {
			delete(seen, pid)
			continue
		}
		ne := t.entryFromInfo(pid, in)
		t.put(ne)
		fresh = append(fresh, ne)
		argv[ne] = in
	}
	for _, e := range t.procs {
		if !e.exited && !seen[e.pid] {
			t.endInferred(e, ts)
		}
	}
	kind := event.ProcSnapshot
	if how == procReconcilePoll {
		kind = event.ProcExec
	}
	for _, e := range fresh {
		in := argv[e]
		if in == nil {
			in, err = t.readFull(e.pid)
			if err != nil || !procSameStart(e, in.start) {
				continue
			}
			t.applyInfo(e, in, false)
		}
		t.setParent(e, in.ppid)
		r := t.row(kind, ts, e, e.pid)
		if in.have&procHaveArgv != 0 {
			r.Argv = in.argv
			if in.argvTrunc {
				r.Flags |= event.ProcFlagArgvTruncated
			}
		}
		t.emit(r)
	}
	return nil
}

// pollExec re-reads a process whose comm changed between two polls and
// writes an exec row if its program or argv changed.
func (t *procTable) pollExec(e *procEntry, ts int64) {
	in, err := t.readFull(e.pid)
	if err != nil || !procSameStart(e, in.start) {
		return
	}
	oldExe, oldSum := e.exe, e.argvSum
	t.applyInfo(e, in, true)
	t.setParent(e, in.ppid)
	if bytes.Equal(oldExe, e.exe) && oldSum == e.argvSum {
		return
	}
	t.st.execs.Add(1)
	r := t.row(event.ProcExec, ts, e, e.pid)
	if in.have&procHaveArgv != 0 {
		r.Argv = in.argv
		if in.argvTrunc {
			r.Flags |= event.ProcFlagArgvTruncated
		}
	}
	t.emit(r)
}

// endInferred ends a life that a /proc scan found gone (or replaced): an exit
// row at the scan time with no exit status, flagged late_read.
func (t *procTable) endInferred(e *procEntry, ts int64) {
	r := t.row(event.ProcExit, ts, e, e.pid)
	r.Flags |= event.ProcFlagLateRead
	e.exited, e.inferred, e.exitAt = true, true, t.now()
	t.exited = append(t.exited, procExitRec{e: e, at: e.exitAt})
	t.emit(r)
}
