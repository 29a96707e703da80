package cnproc

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/testutil"
)

// testClock is a settable clock for the table.
type testClock struct{ t time.Time }

func (c *testClock) now() time.Time { return c.t }

func newTestTable(t *testing.T) (*procTable, *event.MemSink, *testClock) {
	t.Helper()
	sink := &event.MemSink{}
	clk := &testClock{t: time.Unix(1_800_000_000, 0)}
	tb := newProcTable(sink, slog.New(slog.NewTextHandler(io.Discard, nil)), &procCounters{}, clk.now)
	tb.selfPID = -1
	return tb, sink, clk
}

// feed decodes frame and hands its events to the table, each with info
// (what the reader read at an exec; the table ignores it for other events).
// The table derives fork starts from the event time (bootOff is 0 in tests).
func feed(t *testing.T, tb *procTable, frame []byte, info *procInfo) {
	t.Helper()
	msgs, err := decodeProcEvents(frame, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		tb.handle(&procItem{kind: procItemEvent, msg: m, info: info})
	}
}

// execInfo is what the exec hot path reads: no stat, so no start; comm and
// ppid come from status.
func execInfo(ppid int32, comm, exe, argv string) *procInfo {
	in := &procInfo{have: procHaveExe | procHaveArgv | procHaveStatus | procHaveComm | procHavePPid,
		ppid: ppid, comm: []byte(comm), exe: []byte(exe), argv: []byte(argv)}
	in.uid, in.euid, in.gid, in.egid = 1000, 1000, 100, 100
	return in
}

// fullInfo is what a FullEnrich exec reads: with stat.
func fullInfo(start int64, ppid int32, comm, exe, argv string) *procInfo {
	in := execInfo(ppid, comm, exe, argv)
	in.have |= procHaveStat
	in.start = start
	return in
}

// life is what identifies a row's process and parent.
type life struct {
	Event       string
	PID         int32
	Start       int64
	PPID        int32
	ParentStart event.Opt[int64]
	Argv        string
}

func lives(rows []event.Proc) []life {
	var out []life
	for _, r := range rows {
		out = append(out, life{r.Event, r.PID, r.ProcStart, r.PPID, r.ParentStart, string(r.Argv)})
	}
	return out
}

// TestProcTablePIDReuse runs two lives of pid 1234 through decoder and table:
// fork/exec/exit, then a fork with another start. The lives must not mix.
func TestProcTablePIDReuse(t *testing.T) {
	tb, sink, _ := newTestTable(t)
	const s1, s2 = 10 * int64(time.Second), 25 * int64(time.Second)
	parent := int64(2 * time.Second)
	// Fork starts derive from the event times: 2 s, 10 s, 25 s.
	ms := func(at int64, d int) uint64 { return uint64(at) + uint64(d)*uint64(time.Millisecond) }
	feed(t, tb, procTestFrame(procEventFork, ms(parent, 3), 1, 1, 500, 500), nil)
	feed(t, tb, procTestFrame(procEventFork, ms(s1, 3), 500, 500, 1234, 1234), nil)
	feed(t, tb, procTestFrame(procEventExec, ms(s1, 4), 1234, 1234), execInfo(500, "first", "/bin/first", "first\x00"))
	feed(t, tb, procTestFrame(procEventExit, ms(s1, 5), 1234, 1234, 0, 17, 500, 500), nil)
	if p, ok := tb.lookup(1234); !ok || p.Start != s1 {
		t.Errorf("Lookup after exit (grace) = %+v %v, want start %d", p, ok, s1)
	}
	feed(t, tb, procTestFrame(procEventFork, ms(s2, 3), 500, 500, 1234, 1234), nil)
	feed(t, tb, procTestFrame(procEventExec, ms(s2, 4), 1234, 1234), execInfo(500, "second", "/bin/second", "second\x00"))
	feed(t, tb, procTestFrame(procEventExit, ms(s2, 5), 1234, 1234, 9, 17, 500, 500), nil)

	ps := event.Some(parent)
	want := []life{
		{event.ProcFork, 500, parent, 1, event.Opt[int64]{}, ""},
		{event.ProcFork, 1234, s1, 500, ps, ""},
		{event.ProcExec, 1234, s1, 500, ps, "first\x00"},
		{event.ProcExit, 1234, s1, 500, ps, ""},
		{event.ProcFork, 1234, s2, 500, ps, ""},
		{event.ProcExec, 1234, s2, 500, ps, "second\x00"},
		{event.ProcExit, 1234, s2, 500, ps, ""},
	}
	rows := sink.Procs()
	if diff := cmp.Diff(want, lives(rows)); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	if len(rows) == len(want) {
		if got := rows[3].ExitCode; got != event.Some[int32](0) {
			t.Errorf("first exit code %+v, want 0", got)
		}
		if got := rows[6].ExitSignal; got != event.Some[int32](9) {
			t.Errorf("second exit signal %+v, want 9", got)
		}
		if string(rows[6].Exe) != "/bin/second" || string(rows[3].Exe) != "/bin/first" {
			t.Errorf("exe of exits %q, %q: lives mixed", rows[3].Exe, rows[6].Exe)
		}
	}
	if p, _ := tb.lookup(1234); p.Start != s2 {
		t.Errorf("Lookup start %d, want second life %d", p.Start, s2)
	}
}

// TestProcTableDerivedStart: a fork's child gets a key from the event time
// (/proc is not read at fork), and keeps it when a later /proc read (here a
// FullEnrich exec) is one tick off.
func TestProcTableDerivedStart(t *testing.T) {
	tb, sink, _ := newTestTable(t)
	tb.bootOff.Store(0)
	forkTS := uint64(7*time.Second + 12_345_678) // derived: 7.010 s
	feed(t, tb, procTestFrame(procEventFork, forkTS, 1, 1, 77, 77), nil)
	feed(t, tb, procTestFrame(procEventExec, forkTS+1000, 77, 77), fullInfo(int64(7*time.Second), 1, "x", "/x", "x\x00"))
	rows := sink.Procs()
	if len(rows) != 2 {
		t.Fatalf("got %d rows, want fork and exec", len(rows))
	}
	const want = int64(7*time.Second + 10*time.Millisecond)
	for _, r := range rows {
		if r.ProcStart != want {
			t.Errorf("%s row start %d, want the derived %d for the whole life", r.Event, r.ProcStart, want)
		}
	}
	// A stat start further away is another life.
	feed(t, tb, procTestFrame(procEventExec, forkTS+2000, 77, 77), fullInfo(int64(9*time.Second), 1, "y", "/y", "y\x00"))
	if got := tb.st.replaced.Load(); got != 1 {
		t.Errorf("replaced = %d, want 1", got)
	}
}

func TestProcTableThreadsAndSelf(t *testing.T) {
	tb, sink, _ := newTestTable(t)
	tb.selfPID = 42
	feed(t, tb, procTestFrame(procEventFork, 1, 1, 1, 42, 42), nil)
	feed(t, tb, procTestFrame(procEventFork, 2, 42, 42, 43, 42), nil) // thread
	feed(t, tb, procTestFrame(procEventExit, 3, 43, 42, 0, 0, 1, 1), nil)
	feed(t, tb, procTestFrame(procEventPtrace, 4, 43, 42, 9, 9), nil)
	feed(t, tb, procTestFrame(procEventFork, 5, 42, 42, 44, 44), nil) // probe child
	rows := sink.Procs()
	if len(rows) != 3 {
		t.Fatalf("got %d rows %+v, want fork, ptrace, fork", len(rows), lives(rows))
	}
	if rows[1].Event != event.ProcPtrace || rows[1].Flags&event.ProcFlagThread == 0 || rows[1].TID != 43 ||
		rows[1].TracerPID != event.Some[int32](9) {
		t.Errorf("ptrace row %+v, want thread-flagged tid 43 tracer 9", rows[1])
	}
	for _, r := range rows {
		if r.Flags&event.ProcFlagSelf == 0 {
			t.Errorf("%s row of %d not flagged self", r.Event, r.PID)
		}
	}
	if got := tb.st.threads.Load(); got != 2 {
		t.Errorf("threads folded = %d, want 2", got)
	}
}

// TestProcTableExeFromFanotify: exec rows without /proc exe take it from
// exec-opens, whichever arrives first, skipping the ELF interpreter.
func TestProcTableExeFromFanotify(t *testing.T) {
	tb, sink, clk := newTestTable(t)
	noExe := func() *procInfo {
		return &procInfo{have: procHaveArgv | procHaveComm, comm: []byte("x"), argv: []byte("x\x00")}
	}
	feed(t, tb, procTestFrame(procEventFork, 1, 1, 1, 10, 10), nil)
	feed(t, tb, procTestFrame(procEventFork, 1, 1, 1, 11, 11), nil)
	feed(t, tb, procTestFrame(procEventFork, 1, 1, 1, 12, 12), nil)

	// 10: the open comes first (binary, then loader).
	tb.onOpen(procExecOpen{pid: 10, path: []byte("/usr/bin/ten")})
	tb.onOpen(procExecOpen{pid: 10, path: []byte("/lib64/ld-linux-x86-64.so.2")})
	feed(t, tb, procTestFrame(procEventExec, 2, 10, 10), noExe())
	// 11: the exec comes first and waits; the loader open is not the exe.
	feed(t, tb, procTestFrame(procEventExec, 3, 11, 11), noExe())
	feed(t, tb, procTestFrame(procEventExit, 4, 11, 11, 0, 17, 1, 1), nil)
	if n := len(sink.Procs()); n != 4 {
		t.Fatalf("%d rows before the open, want 4 (exec and exit of 11 held)", n)
	}
	tb.onOpen(procExecOpen{pid: 11, path: []byte("/tmp/script.sh")})
	tb.onOpen(procExecOpen{pid: 11, path: []byte("/usr/bin/dash")})
	// 12: nothing comes; the row goes out without exe after the hold.
	feed(t, tb, procTestFrame(procEventExec, 5, 12, 12), noExe())
	clk.t = clk.t.Add(time.Second)
	tb.expireHeld(clk.t)

	got := map[int32]string{}
	var flags = map[int32]uint32{}
	var order []string
	for _, r := range sink.Procs() {
		if r.Event == event.ProcExec {
			got[r.PID], flags[r.PID] = string(r.Exe), r.Flags
		}
		if r.PID == 11 {
			order = append(order, r.Event)
		}
	}
	want := map[int32]string{10: "/usr/bin/ten", 11: "/tmp/script.sh", 12: ""}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("exe (-want +got):\n%s", diff)
	}
	if flags[10]&event.ProcFlagExeFromFanotify == 0 || flags[11]&event.ProcFlagExeFromFanotify == 0 {
		t.Errorf("exe_from_fanotify missing: %v", flags)
	}
	if flags[12]&event.ProcFlagGone == 0 {
		t.Errorf("exec of 12 without exe not flagged gone")
	}
	if diff := cmp.Diff([]string{event.ProcFork, event.ProcExec, event.ProcExit}, order); diff != "" {
		t.Errorf("rows of 11 out of order (-want +got):\n%s", diff)
	}
	if got := tb.st.exeMissed.Load(); got != 1 {
		t.Errorf("exeMissed = %d, want 1", got)
	}
}

// TestProcTableExeSkip: when /proc gave exe, that exec's opens cannot be
// claimed by the next exec of the same pid.
func TestProcTableExeSkip(t *testing.T) {
	tb, sink, _ := newTestTable(t)
	tb.onOpen(procExecOpen{pid: 99, path: []byte("/other")}) // fanotify is active
	feed(t, tb, procTestFrame(procEventFork, 1, 1, 1, 20, 20), nil)
	feed(t, tb, procTestFrame(procEventExec, 2, 20, 20), execInfo(1, "sh", "/usr/bin/dash", "sh\x00"))
	// sh's opens arrive late, then sh execs a program whose exe is unreadable.
	tb.onOpen(procExecOpen{pid: 20, path: []byte("/usr/bin/dash")})
	tb.onOpen(procExecOpen{pid: 20, path: []byte("/lib64/ld-linux-x86-64.so.2")})
	tb.onOpen(procExecOpen{pid: 20, path: []byte("/usr/bin/prog")})
	in := &procInfo{have: procHaveComm, comm: []byte("prog")}
	feed(t, tb, procTestFrame(procEventExec, 3, 20, 20), in)
	rows := sink.Procs()
	if got := string(rows[len(rows)-1].Exe); got != "/usr/bin/prog" {
		t.Errorf("second exec exe %q, want /usr/bin/prog", got)
	}
}

// TestProcTableExeKey: every exec row takes the file identity (exe_key)
// of its own exec-open, whether the open comes before or after it: one
// binary replaced at the same path gives two keys; a deleted one is matched
// by the path /proc shows with " (deleted)"; a script's row (exe the
// interpreter) gets the interpreter's key; a row whose exe is the path
// execve was given (through a symlink) gets its target's; a row whose open never comes
// goes out without one after the hold, counted.
func TestProcTableExeKey(t *testing.T) {
	tb, sink, clk := newTestTable(t)
	for pid := uint32(30); pid <= 36; pid++ {
		feed(t, tb, procTestFrame(procEventFork, 1, 1, 1, pid, pid), nil)
	}
	open := func(pid int32, path string, key uint64) {
		tb.onOpen(procExecOpen{pid: pid, path: []byte(path), exeKey: key})
	}
	exec := func(pid int32, exe string) {
		in := execInfo(1, "x", exe, "x\x00")
		if exe == "" {
			in = &procInfo{have: procHaveArgv | procHaveComm, comm: []byte("x"), argv: []byte("x\x00")}
		}
		feed(t, tb, procTestFrame(procEventExec, 2, uint32(pid), uint32(pid)), in)
	}
	open(30, "/tmp/x", 1) // first the open, then the exec
	open(30, "/lib64/ld-linux-x86-64.so.2", 9)
	exec(30, "/tmp/x")
	exec(31, "/tmp/x") // the same path, replaced: the exec first, then its open
	feed(t, tb, procTestFrame(procEventExit, 3, 31, 31, 0, 17, 1, 1), nil)
	if n := len(sink.Procs()); n != 8 {
		t.Fatalf("%d rows before 31's open, want 8 (its exec and exit held)", n)
	}
	open(31, "/tmp/x", 2)
	exec(32, "/tmp/dropper (deleted)")
	open(32, "/tmp/dropper", 3)
	exec(33, "/usr/bin/dash")
	open(33, "/tmp/script.sh", 4)
	open(33, "/usr/bin/dash", 5)
	exec(34, "") // gone: exe and key from the open
	open(34, "/usr/bin/gone", 6)
	// exe from the tracepoint: the path execve was given, through a
	// symlink; the execve target's open names the file.
	named := execInfo(1, "true", "/bin/true", "true\x00")
	named.exeNamed = true
	feed(t, tb, procTestFrame(procEventExec, 2, 36, 36), named)
	open(36, "/usr/bin/true", 7)
	open(36, "/lib64/ld-linux-x86-64.so.2", 9)
	exec(35, "/usr/bin/silent") // no open comes
	clk.t = clk.t.Add(time.Second)
	tb.expireHeld(clk.t)

	keys := map[int32]uint64{}
	var order []string
	for _, r := range sink.Procs() {
		if r.Event == event.ProcExec {
			keys[r.PID] = r.ExeKey.V
			if r.ExeKey.Valid != (r.ExeKey.V != 0) {
				t.Errorf("exec of %d: exe_key %+v", r.PID, r.ExeKey)
			}
		}
		if r.PID == 31 {
			order = append(order, r.Event)
		}
	}
	if diff := cmp.Diff(map[int32]uint64{30: 1, 31: 2, 32: 3, 33: 5, 34: 6, 35: 0, 36: 7}, keys); diff != "" {
		t.Errorf("exe_key (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{event.ProcFork, event.ProcExec, event.ProcExit}, order); diff != "" {
		t.Errorf("rows of 31 out of order (-want +got):\n%s", diff)
	}
	if got, missed := tb.st.exeKeys.Load(), tb.st.exeKeyMissed.Load(); got != 6 || missed != 1 {
		t.Errorf("exeKeys, exeKeyMissed = %d, %d, want 6, 1", got, missed)
	}
}

func TestProcTableLossAndUnknown(t *testing.T) {
	tb, sink, _ := newTestTable(t)
	tb.wallOff = 1_000_000_000_000
	feed(t, tb, procTestFrame(procEventExec, 500, 1, 1), fullInfo(1e9, 0, "init", "/sbin/init", "init\x00"))
	tb.handle(&procItem{kind: procItemLoss, at: tb.wallOff + 900, lost: -1, reason: "ENOBUFS on cn_proc socket"})
	// An exit of a pid never seen, gone from /proc (no reader): no row.
	feed(t, tb, procTestFrame(procEventExit, 1000, 555, 555, 0, 17, 1, 1), nil)
	want := []event.Gap{{FromTS: tb.wallOff + 500, ToTS: tb.wallOff + 900, Source: event.SourceProc, Reason: "ENOBUFS on cn_proc socket"}}
	if diff := cmp.Diff(want, sink.Gaps()); diff != "" {
		t.Errorf("gaps (-want +got):\n%s", diff)
	}
	if n := len(sink.Procs()); n != 1 {
		t.Errorf("%d proc rows, want 1", n)
	}
	if got := tb.st.unknown.Load(); got != 1 {
		t.Errorf("unknown = %d, want 1", got)
	}
}

func TestProcTableEviction(t *testing.T) {
	tb, _, clk := newTestTable(t)
	tb.maxProcs = 3
	for pid := int32(1); pid <= 3; pid++ {
		feed(t, tb, procTestFrame(procEventFork, 1, 1, 1, uint32(pid+10), uint32(pid+10)), nil)
	}
	feed(t, tb, procTestFrame(procEventExit, 2, 11, 11, 0, 17, 1, 1), nil)
	clk.t = clk.t.Add(time.Second)
	tb.housekeeping(clk.t)
	if _, ok := tb.lookup(11); !ok {
		t.Error("exited entry evicted before its grace period")
	}
	clk.t = clk.t.Add(tb.grace)
	tb.housekeeping(clk.t)
	if _, ok := tb.lookup(11); ok {
		t.Error("exited entry kept after its grace period")
	}
	// Full: 12, 13 and 14 fit; 15 does not, and is counted.
	feed(t, tb, procTestFrame(procEventFork, 3, 1, 1, 14, 14), nil)
	feed(t, tb, procTestFrame(procEventFork, 3, 1, 1, 15, 15), nil)
	if got := tb.st.tableFull.Load(); got != 1 {
		t.Errorf("tableFull = %d, want 1", got)
	}
	if len(tb.procs) != 3 {
		t.Errorf("table holds %d, want the cap 3", len(tb.procs))
	}
}

// TestProcTableExitWithoutParent: the kernel sends parent 0 in an exit event
// when the task is no longer alive (pid_alive); the row keeps the parent the
// table knows instead of claiming pid 0.
func TestProcTableExitWithoutParent(t *testing.T) {
	tb, sink, _ := newTestTable(t)
	parent, child := int64(2*time.Second), int64(3*time.Second)
	feed(t, tb, procTestFrame(procEventFork, uint64(parent), 1, 1, 500, 500), nil)
	feed(t, tb, procTestFrame(procEventFork, uint64(child), 500, 500, 600, 600), nil)
	feed(t, tb, procTestFrame(procEventExit, uint64(child)+1000, 600, 600, 0, 17, 0, 0), nil)
	rows := sink.Procs()
	last := rows[len(rows)-1]
	if last.Event != event.ProcExit || last.PPID != 500 || last.ParentStart != event.Some(parent) {
		t.Errorf("exit row %s ppid %d parent_start %+v, want exit 500 %d", last.Event, last.PPID, last.ParentStart, parent)
	}
}

// BenchmarkProcTableExecOpen is the table's cost for one short-lived
// dynamic exec with fanotify on: fork, the exec's two exec-opens (program
// and ELF interpreter, each with its file's key), the exec with exe from
// /proc, exit. open-first is the tracepoint reader's usual order (a drain
// applies the opens it read before its events); exec-first holds the exec
// row until its open comes.
func BenchmarkProcTableExecOpen(b *testing.B) {
	for _, c := range []struct {
		name      string
		openFirst bool
	}{{"open-first", true}, {"exec-first", false}} {
		b.Run(c.name, func(b *testing.B) {
			clk := &testClock{t: time.Unix(1_800_000_000, 0)}
			tb := newProcTable(event.Discard{}, slog.New(slog.NewTextHandler(io.Discard, nil)), &procCounters{}, clk.now)
			tb.selfPID = -1
			in := execInfo(1, "worker", "/usr/bin/worker", "worker\x00")
			opens := func(pid int32) {
				tb.onOpen(procExecOpen{pid: pid, path: []byte("/usr/bin/worker"), exeKey: 7})
				tb.onOpen(procExecOpen{pid: pid, path: []byte("/lib64/ld-linux-x86-64.so.2"), exeKey: 8})
			}
			msgs := func(frame []byte) []procMsg {
				m, err := decodeProcEvents(frame, nil)
				if err != nil {
					b.Fatal(err)
				}
				return m
			}
			pid := int32(1000)
			cpu0 := testutil.ProcessCPU()
			for b.Loop() {
				pid++
				if pid > 30000 {
					pid = 1001
				}
				fork := msgs(procTestFrame(procEventFork, 1, 1, 1, uint32(pid), uint32(pid)))
				exec := msgs(procTestFrame(procEventExec, 2, uint32(pid), uint32(pid)))
				exit := msgs(procTestFrame(procEventExit, 3, uint32(pid), uint32(pid), 0, 17, 1, 1))
				tb.handle(&procItem{kind: procItemEvent, msg: fork[0]})
				if c.openFirst {
					opens(pid)
				}
				tb.handle(&procItem{kind: procItemEvent, msg: exec[0], info: in})
				if !c.openFirst {
					opens(pid)
				}
				tb.handle(&procItem{kind: procItemEvent, msg: exit[0]})
			}
			// Wall time is the machine's load; CPU time is ours.
			b.ReportMetric(float64(testutil.ProcessCPU()-cpu0)/float64(b.N), "cpu-ns/exec")
			if rows := tb.st.rows.Load(); rows < 3*uint64(b.N) {
				b.Fatalf("%d rows for %d execs", rows, b.N)
			}
		})
	}
}

// BenchmarkProcTableExecSteady is BenchmarkProcTableExecOpen/open-first as
// the running collector does it, so that its allocations are the table's
// own: the exec-opens pass through the ring (ObserveExecOpen's path, from a
// reused buffer) and a drain, the clock moves 1 ms per exec and
// housekeeping runs every 100 execs (exited lives and exec-open queues
// expire as in a 1000/s storm), and the events are decoded once.
func BenchmarkProcTableExecSteady(b *testing.B) {
	clk := &testClock{t: time.Unix(1_800_000_000, 0)}
	tb := newProcTable(event.Discard{}, slog.New(slog.NewTextHandler(io.Discard, nil)), &procCounters{}, clk.now)
	tb.selfPID = -1
	in := execInfo(1, "worker", "/usr/bin/worker", "worker\x00")
	msg := func(frame []byte) procMsg {
		m, err := decodeProcEvents(frame, nil)
		if err != nil {
			b.Fatal(err)
		}
		return m[0]
	}
	fork := procItem{kind: procItemEvent, msg: msg(procTestFrame(procEventFork, 1, 1, 1, 1, 1))}
	exec := procItem{kind: procItemEvent, msg: msg(procTestFrame(procEventExec, 2, 1, 1)), info: in}
	exit := procItem{kind: procItemEvent, msg: msg(procTestFrame(procEventExit, 3, 1, 1, 0, 17, 1, 1))}
	var path []byte
	pid, n := int32(1000), 0
	cpu0 := testutil.ProcessCPU()
	for b.Loop() {
		pid++
		if pid > 30000 {
			pid = 1001
		}
		clk.t = clk.t.Add(time.Millisecond)
		fork.msg.PID, fork.msg.TGID = pid, pid
		exec.msg.PID, exec.msg.TGID = pid, pid
		exit.msg.PID, exit.msg.TGID = pid, pid
		tb.handle(&fork)
		for _, p := range []string{"/usr/bin/worker", "/lib64/ld-linux-x86-64.so.2"} {
			path = append(path[:0], p...)
			if !tb.ring.pushOpen(procExecOpen{pid: pid, path: path, exeKey: 7}) {
				b.Fatal("ring full")
			}
		}
		tb.drain()
		tb.handle(&exec)
		tb.handle(&exit)
		if n++; n%100 == 0 {
			tb.housekeeping(clk.t)
		}
	}
	b.ReportMetric(float64(testutil.ProcessCPU()-cpu0)/float64(b.N), "cpu-ns/exec")
	if st := tb.st; st.rows.Load() < 3*uint64(b.N) || st.exeKeys.Load() < uint64(b.N) {
		b.Fatalf("%d rows, %d keys for %d execs", st.rows.Load(), st.exeKeys.Load(), b.N)
	}
}

// TestProcTableHouseStops: the housekeeping tick stops once nothing waits
// for it, starts again when a drain applies an exit, evicts that entry
// after its grace period and stops again.
func TestProcTableHouseStops(t *testing.T) {
	tb := newProcTable(&event.MemSink{}, slog.New(slog.NewTextHandler(io.Discard, nil)), &procCounters{}, time.Now)
	tb.selfPID = -1
	tb.grace = 50 * time.Millisecond
	tb.direct.Store(true)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); tb.run(ctx, 0, 0, nil) }()
	defer func() { cancel(); <-done }()
	testutil.WaitFor(t, 10*time.Second, "the housekeeping tick to stop", tb.houseIdle.Load)
	for _, f := range [][]byte{procTestFrame(procEventFork, 1, 1, 1, 77, 77), procTestFrame(procEventExit, 2, 77, 77, 0, 17, 1, 1)} {
		msgs, err := decodeProcEvents(f, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !tb.ring.push(&procItem{kind: procItemEvent, msg: msgs[0]}, nil) {
			t.Fatal("ring full")
		}
	}
	tb.applyNow()
	tb.own.Lock()
	exited, idle := len(tb.exited), tb.houseIdle.Load()
	tb.own.Unlock()
	if exited != 1 || idle {
		t.Fatalf("after the exit: %d exited entries, house idle %v; want 1, false", exited, idle)
	}
	testutil.WaitFor(t, 10*time.Second, "the exited entry's eviction", func() bool {
		tb.own.Lock()
		defer tb.own.Unlock()
		return len(tb.exited) == 0
	})
	testutil.WaitFor(t, 10*time.Second, "the housekeeping tick to stop again", tb.houseIdle.Load)
}
