package cnproc

import "github.com/pofr/pofr/internal/event"

// current returns the live entry of pid for an event that does not start a
// life. When the table does not know the pid (its start was lost), /proc is
// read now and the row is flagged late_read; if that fails too the event is
// counted as unknown and dropped, since a row needs the process key. A
// parent that has ended since e was last seen is replaced by the one /proc
// names now (reparenting).
func (t *procTable) current(pid int32) (*procEntry, uint32) {
	if e := t.alive(pid); e != nil {
		t.reparent(e)
		return e, 0
	}
	if t.readStat == nil {
		t.st.unknown.Add(1)
		return nil, 0
	}
	in, err := t.readStat(pid)
	if err != nil {
		t.st.unknown.Add(1)
		return nil, 0
	}
	e := t.entryFromInfo(pid, in)
	t.setParent(e, in.ppid)
	t.put(e)
	return e, event.ProcFlagLateRead
}

// reparent checks that e's parent is still alive; if not, the process was
// reparented (to init or a subreaper) and its new ppid is read from /proc.
func (t *procTable) reparent(e *procEntry) {
	if !e.parentStart.Valid || t.readStat == nil {
		return
	}
	if p := t.alive(e.ppid); p != nil && p.start == e.parentStart.V {
		return
	}
	in, err := t.readStat(e.pid)
	if err != nil || !procSameStart(e, in.start) {
		e.parentStart = event.Opt[int64]{}
		return
	}
	t.setParent(e, in.ppid)
}

// fork starts a life. /proc is not read: its key is derived from the event
// time (start, from the reader, or here), and it inherits its parent's
// columns.
func (t *procTable) fork(m *procMsg, start int64, ts int64) {
	pid := m.TGID
	e := &procEntry{pid: pid, uid: event.NoID, euid: event.NoID, gid: event.NoID, egid: event.NoID,
		auid: event.NoID, sid: event.NoID, start: start}
	if e.start == 0 {
		e.start = t.deriveStart(m.TS)
	}
	if old := t.alive(pid); old != nil {
		if procSameStart(old, e.start) {
			// Already known (a snapshot or resync saw it first).
			t.emit(t.row(event.ProcFork, ts, old, m.PID))
			return
		}
		t.st.replaced.Add(1) // its exit was lost
	}
	p := t.alive(m.ParentTGID)
	t.setParentEntry(e, m.ParentTGID, p)
	if p != nil {
		// The child starts as a copy of its parent.
		e.uid, e.euid, e.gid, e.egid = p.uid, p.euid, p.gid, p.egid
		e.auid, e.sid, e.tty = p.auid, p.sid, p.tty
		e.comm, e.exe, e.cwd = p.comm, p.exe, p.cwd
		e.cgroup, e.container, e.ns = p.cgroup, p.container, p.ns
	}
	e.self = pid == t.selfPID || m.ParentTGID == t.selfPID
	t.put(e)
	t.emit(t.row(event.ProcFork, ts, e, m.PID))
}

// exec applies what the reader read at the exec (in, nil if nothing) to the
// life it belongs to. The life is the table's (its key from the fork event
// or a /proc scan); only a FullEnrich read, which has stat, can show that
// the pid holds another life. A pid the table does not know has its stat
// read now (flag late_read); if that fails the exec has no key and no row.
func (t *procTable) exec(m *procMsg, in *procInfo, ts int64) {
	t.st.execs.Add(1)
	pid := m.TGID
	var empty procInfo
	if in == nil {
		in = &empty
	}
	statOK := in.have&procHaveStat != 0
	e := t.alive(pid)
	var late uint32
	switch {
	case e != nil && statOK && !procSameStart(e, in.start):
		t.st.replaced.Add(1)
		e = t.entryFromInfo(pid, in)
		t.put(e)
	case e == nil && statOK:
		e = t.entryFromInfo(pid, in)
		t.put(e)
	case e == nil:
		if e, late = t.current(pid); e == nil {
			return // a life we never saw start, and gone already: no key
		}
	}
	t.applyInfo(e, in, true)
	if in.have&procHavePPid != 0 {
		t.setParent(e, in.ppid) // fresh ppid: notices reparenting
	} else {
		t.reparent(e)
	}
	r := t.row(event.ProcExec, ts, e, m.PID)
	r.Flags |= late
	if in.have&procHaveArgv != 0 {
		r.Argv = in.argv
		if in.argvTrunc {
			r.Flags |= event.ProcFlagArgvTruncated
		}
		if in.argvLate {
			r.Flags |= event.ProcFlagArgvFromProc
		}
	} else {
		t.st.argvMissed.Add(1)
	}
	if in.have&(procHaveArgv|procHaveExe) != procHaveArgv|procHaveExe {
		r.Flags |= event.ProcFlagGone
	}
	if r.Exe != nil {
		// exe from /proc names the file that runs (for a script, its
		// interpreter): its key is the open of that path. exe from the
		// tracepoint is the path execve was given, maybe through a symlink
		// (/bin/true for /usr/bin/true): its key is the execve target's open.
		var o procExecOpen
		var ok bool
		want := r.Exe
		if in.exeNamed {
			o, ok = t.takeOpen(pid)
			want = nil
		} else {
			o, ok = t.skipOpens(pid, r.Exe)
		}
		if ok {
			t.setKey(r, o.exeKey)
		} else if t.keysActive() && t.held[pid] == nil {
			// Its exec-open is still in fanotify's queue: the row waits
			// for it (at most hold) to name its file.
			t.holdRow(r, e, false, want)
			return
		} else if t.held[pid] == nil {
			t.setKey(r, 0)
		}
		t.emit(r)
		return
	}
	if o, ok := t.takeOpen(pid); ok {
		t.fillExe(r, e, o.path)
		t.setKey(r, o.exeKey)
		t.emit(r)
		return
	}
	if t.fanotifyActive() && t.held[pid] == nil {
		t.holdRow(r, e, true, nil)
		return
	}
	t.st.exeMissed.Add(1)
	t.setKey(r, 0)
	t.emit(r)
}

func (t *procTable) exit(m *procMsg, ts int64) {
	pid := m.TGID
	e := t.procs[pid]
	var flags uint32
	switch {
	case e != nil && !e.exited:
		t.reparent(e)
	case e != nil && e.inferred:
		// A /proc scan already ended this life; this is its real exit.
		e.inferred = false
	default:
		// Not in the table: the zombie may still be in /proc.
		if e, flags = t.current(pid); e == nil {
			return
		}
	}
	r := t.row(event.ProcExit, ts, e, m.PID)
	r.Flags |= flags
	// The exit event names the parent at exit time (after any reparenting),
	// unless the kernel found the task no longer alive (pid_alive) and sent
	// 0: then the table's parent stands.
	if m.ParentTGID != 0 {
		r.PPID = m.ParentTGID
		r.ParentStart = event.Opt[int64]{}
		r.Flags |= event.ProcFlagParentUnknown
		if p := t.alive(m.ParentTGID); p != nil {
			r.ParentStart = event.Some(p.start)
			r.Flags &^= event.ProcFlagParentUnknown
		}
	}
	code, codeOK, sig, sigOK := procWaitStatus(m.ExitCode)
	if codeOK {
		r.ExitCode = event.Some(code)
	}
	if sigOK {
		r.ExitSignal = event.Some(sig)
	}
	if !e.exited {
		e.exited, e.exitAt = true, t.clock()
		t.exited = append(t.exited, procExitRec{e: e, at: e.exitAt})
	}
	t.emit(r)
}
