package cnproc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/testutil"
)

// startProcSource runs a Source until the test ends and waits until it
// has chosen its mode.
func startProcSource(t testing.TB, o Options) *Source {
	t.Helper()
	s, _ := startProcSourceStop(t, o)
	return s
}

// startProcSourceStop is startProcSource that also returns the function that
// stops the source (and waits for its last rows); the test's end calls it
// too.
func startProcSourceStop(t testing.TB, o Options) (*Source, func()) {
	t.Helper()
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.SelfPID == 0 {
		o.SelfPID = -1 // the test spawns the processes it checks
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	stop := testutil.Go(t, "Source.Run", s.Run)
	testutil.WaitFor(t, 5*time.Second, "the source's choice of mode", func() bool { return s.Mode() != "" })
	// The snapshot is written before events: wait until rows flow.
	testutil.WaitFor(t, 5*time.Second, "snapshot rows", func() bool { return s.Stats().Rows > 0 })
	return s, stop
}

// waitRows polls sink until cond holds for its proc rows, or fails the test
// after d.
func waitRows(t *testing.T, sink *event.MemSink, d time.Duration, what string, cond func([]event.Proc) bool) []event.Proc {
	t.Helper()
	var rows []event.Proc
	testutil.WaitFor(t, d, what, func() bool { rows = sink.Procs(); return cond(rows) })
	return rows
}

// descendants returns root and the pids forked from it, per the fork rows.
func descendants(rows []event.Proc, root int32) map[int32]bool {
	ours := map[int32]bool{root: true}
	for changed := true; changed; {
		changed = false
		for _, r := range rows {
			if r.Event == event.ProcFork && ours[r.PPID] && !ours[r.PID] {
				ours[r.PID], changed = true, true
			}
		}
	}
	return ours
}

func TestPrivProcKnownTree(t *testing.T) { knownTree(t, Options{}, ModeNetlink) }

// knownTree runs a known process tree under a source with options o, which
// must choose mode, and checks every row of the tree. Its processes live
// past one drain of the tracepoint capture except the instant "exit 3",
// which is found by its exit code (its argv is checked when recorded).
func knownTree(t *testing.T, o Options, mode Mode) {
	testutil.RequireRoot(t)
	sink := &event.MemSink{}
	o.Sink = sink
	src := startProcSource(t, o)
	if m := src.Mode(); m != mode {
		t.Fatalf("mode %q, want %s", m, mode)
	}
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sh, err := filepath.EvalSymlinks("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	sleep, _ := exec.LookPath("sleep")
	sleep, _ = filepath.EvalSymlinks(sleep)

	// root sh → child sh with a hostile argv → grandchildren: sleep killed
	// by SIGKILL, and sh exiting with 3.
	childScript := `sleep 5 & sleep 0.3; kill -KILL $!; wait $!; /bin/sh -c 'exit 3'; exit 0`
	childArgv := []string{"/bin/sh", "-c", childScript, "pofr-tree", "with space", `q'uo"te`, "tab\there", "new\nline", "bin\xff\xfe\x80"}
	root := exec.Command("/bin/sh", append([]string{"-c", `"$0" "$@"; exit 0`}, childArgv...)...)
	root.Dir = dir
	if err := root.Run(); err != nil {
		t.Fatalf("run tree: %v", err)
	}
	rootPID := int32(root.Process.Pid)

	isExit := func(pid int32) func([]event.Proc) bool {
		return func(rows []event.Proc) bool {
			return slices.ContainsFunc(rows, func(r event.Proc) bool { return r.PID == pid && r.Event == event.ProcExit })
		}
	}
	rows := waitRows(t, sink, 5*time.Second, "exit row of the root", isExit(rootPID))
	ours := descendants(rows, rootPID)
	var mine []event.Proc
	for _, r := range rows {
		if ours[r.PID] {
			mine = append(mine, r)
		}
	}
	// Starts by pid, from the fork rows; every row's parent key must match.
	start := map[int32]int64{}
	for _, r := range mine {
		if r.Event == event.ProcFork {
			start[r.PID] = r.ProcStart
		}
	}
	byPID := map[int32][]event.Proc{}
	for _, r := range mine {
		byPID[r.PID] = append(byPID[r.PID], r)
		if r.ProcStart != start[r.PID] {
			t.Errorf("%s row of %d: proc_start %d, fork said %d", r.Event, r.PID, r.ProcStart, start[r.PID])
		}
		if ps, ok := start[r.PPID]; ok && r.ParentStart != event.Some(ps) {
			t.Errorf("%s row of %d: parent_start %+v, want %d (ppid %d)", r.Event, r.PID, r.ParentStart, ps, r.PPID)
		}
		if r.Flags&(event.ProcFlagSelf|event.ProcFlagPoll) != 0 {
			t.Errorf("%s row of %d has flags %#x", r.Event, r.PID, r.Flags)
		}
	}
	// Events of each process in order: fork, exec…, exit, times ordered.
	for pid, rs := range byPID {
		var kinds []string
		for i, r := range rs {
			kinds = append(kinds, r.Event)
			if i > 0 && r.TS < rs[i-1].TS {
				t.Errorf("pid %d: %s at %d before %s at %d", pid, r.Event, r.TS, rs[i-1].Event, rs[i-1].TS)
			}
		}
		if kinds[0] != event.ProcFork || kinds[len(kinds)-1] != event.ProcExit {
			t.Errorf("pid %d: rows %v, want fork … exit", pid, kinds)
		}
		if d := time.Since(time.Unix(0, rs[0].TS)); d < 0 || d > time.Minute {
			t.Errorf("pid %d: fork time %v ago: wall clock conversion is off", pid, d)
		}
	}

	var child, killed, three *event.Proc
	for i := range mine {
		r := &mine[i]
		if r.Event != event.ProcExec {
			continue
		}
		rs := byPID[r.PID]
		switch {
		case bytes.Contains(r.Argv, []byte("pofr-tree")):
			child = r
		case bytes.HasPrefix(r.Argv, []byte("sleep\x005\x00")):
			killed = r
		case rs[len(rs)-1].ExitCode == event.Some[int32](3):
			three = r
			if r.Argv != nil && !bytes.Equal(r.Argv, []byte("/bin/sh\x00-c\x00exit 3\x00")) {
				t.Errorf("exit-3 argv %q", r.Argv)
			}
			t.Logf("instant exit: argv recorded %v, flags %#x", r.Argv != nil, r.Flags)
		}
	}
	if child == nil || killed == nil || three == nil {
		t.Fatalf("exec rows: child %v, sleep %v, exit-3 %v; want all (rows %d)", child != nil, killed != nil, three != nil, len(mine))
	}
	wantArgv := []byte(strings.Join(childArgv, "\x00") + "\x00")
	if !bytes.Equal(child.Argv, wantArgv) {
		t.Errorf("argv %q, want %q", child.Argv, wantArgv)
	}
	if child.PPID != rootPID {
		t.Errorf("child ppid %d, want root %d", child.PPID, rootPID)
	}
	if string(child.Exe) != sh || string(killed.Exe) != sleep {
		t.Errorf("exe %q and %q, want %q and %q", child.Exe, killed.Exe, sh, sleep)
	}
	if string(child.Cwd) != dir {
		t.Errorf("cwd %q, want %q", child.Cwd, dir)
	}
	if child.UID != uint32(os.Getuid()) || child.EUID != uint32(os.Geteuid()) {
		t.Errorf("uid %d euid %d, want %d %d", child.UID, child.EUID, os.Getuid(), os.Geteuid())
	}
	if len(child.Cgroup) == 0 || child.Cgroup[0] != '/' {
		t.Errorf("cgroup %q, want a path", child.Cgroup)
	}
	if !child.NSPid.Valid || !child.NSNet.Valid || !child.NSMnt.Valid {
		t.Errorf("namespaces missing: %+v %+v %+v", child.NSPid, child.NSNet, child.NSMnt)
	}
	if string(child.Comm) != "sh" {
		t.Errorf("comm %q, want sh", child.Comm)
	}
	if killed.PPID != child.PID || three.PPID != child.PID {
		t.Errorf("grandchildren ppid %d, %d, want %d", killed.PPID, three.PPID, child.PID)
	}
	exitOf := func(pid int32) event.Proc {
		rs := byPID[pid]
		return rs[len(rs)-1]
	}
	if e := exitOf(killed.PID); e.ExitSignal != event.Some[int32](9) || e.ExitCode.Valid {
		t.Errorf("sleep exit: code %+v signal %+v, want signal 9", e.ExitCode, e.ExitSignal)
	}
	if e := exitOf(three.PID); e.ExitCode != event.Some[int32](3) || e.ExitSignal.Valid {
		t.Errorf("exit-3 exit: code %+v signal %+v, want code 3", e.ExitCode, e.ExitSignal)
	}
	if e := exitOf(child.PID); e.ExitCode != event.Some[int32](0) || e.PPID != rootPID {
		t.Errorf("child exit: code %+v ppid %d, want 0 and %d", e.ExitCode, e.PPID, rootPID)
	}
	if p, ok := src.Lookup(child.PID); !ok || p.Start != child.ProcStart {
		t.Errorf("Lookup(%d) = %+v %v, want start %d (within grace)", child.PID, p, ok, child.ProcStart)
	}
	st := src.Stats()
	if st.Priority != PriorityFIFO {
		t.Errorf("priority %q, want fifo as root in mode %s", st.Priority, mode)
	}
	t.Logf("stats: %+v", st)
}

// TestPrivProcSnapshot: processes running before the start have snapshot
// rows, fully enriched.
func TestPrivProcSnapshot(t *testing.T) {
	testutil.RequireRoot(t)
	cmd := exec.Command("/bin/sh", "-c", "sleep 10", "pofr-snapshot-marker")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sink := &event.MemSink{}
	src := startProcSource(t, Options{Sink: sink})
	pid := int32(cmd.Process.Pid)
	rows := waitRows(t, sink, 5*time.Second, "snapshot row", func(rs []event.Proc) bool {
		return slices.ContainsFunc(rs, func(r event.Proc) bool { return r.PID == pid && r.Event == event.ProcSnapshot })
	})
	var snap, self event.Proc
	for _, r := range rows {
		if r.PID == pid && r.Event == event.ProcSnapshot {
			snap = r
		}
		if r.PID == int32(os.Getpid()) && r.Event == event.ProcSnapshot {
			self = r
		}
	}
	if want := "/bin/sh\x00-c\x00sleep 10\x00pofr-snapshot-marker\x00"; string(snap.Argv) != want {
		t.Errorf("argv %q, want %q", snap.Argv, want)
	}
	if snap.PPID != int32(os.Getpid()) || snap.ParentStart != event.Some(self.ProcStart) || self.ProcStart == 0 {
		t.Errorf("parent %d/%+v, want this process %d/%d", snap.PPID, snap.ParentStart, os.Getpid(), self.ProcStart)
	}
	if p, ok := src.Lookup(pid); !ok || p.Start != snap.ProcStart || p.EUID != 0 {
		t.Errorf("Lookup = %+v %v, want start %d euid 0", p, ok, snap.ProcStart)
	}
}

func TestPrivProcSelf(t *testing.T) {
	testutil.RequireRoot(t)
	sink := &event.MemSink{}
	s, err := New(Options{Sink: sink, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	stop := testutil.Go(t, "Source.Run", s.Run)
	me := int32(os.Getpid())
	waitRows(t, sink, 5*time.Second, "self snapshot", func(rs []event.Proc) bool {
		return slices.ContainsFunc(rs, func(r event.Proc) bool { return r.PID == me })
	})
	stop()
	for _, r := range sink.Procs() {
		if r.PID == me && r.Flags&event.ProcFlagSelf == 0 {
			t.Errorf("%s row of the collector not flagged self", r.Event)
		}
		if r.PID != me && r.PPID != me && r.Flags&event.ProcFlagSelf != 0 {
			t.Errorf("%s row of %d (ppid %d) flagged self", r.Event, r.PID, r.PPID)
		}
	}
	if p, ok := s.Lookup(me); !ok || !p.Self {
		t.Errorf("Lookup(self) = %+v %v, want Self", p, ok)
	}
}

// spawnStorm runs n /bin/true with a unique argument from workers shell
// loops (other processes, so the spawner does not compete with the
// collector for this process's threads) and returns the loops' pids.
func spawnStorm(t testing.TB, n, workers int) []int32 {
	var cmds []*exec.Cmd
	for w := range workers {
		script := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do /bin/true pofr-storm-%d-$i; i=$((i+1)); done`, n/workers, w)
		cmd := exec.Command("/bin/sh", "-c", script)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	var pids []int32
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Error(err)
		}
		pids = append(pids, int32(c.Process.Pid))
	}
	return pids
}

func TestPrivProcENOBUFS(t *testing.T) {
	testutil.RequireRoot(t)
	sink := &event.MemSink{}
	src := startProcSource(t, Options{Sink: sink, RcvBuf: 1})
	// A reader slowed down by a tiny buffer, and a storm on both CPUs.
	spawnStorm(t, 3000, 4)
	deadline := time.Now().Add(10 * time.Second)
	for src.Stats().Resyncs == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	st := src.Stats()
	if st.Lost == 0 {
		t.Fatalf("no ENOBUFS with a minimal receive buffer: %+v", st)
	}
	gaps := sink.Gaps()
	if len(gaps) == 0 {
		t.Fatal("ENOBUFS without a gap row")
	}
	for _, g := range gaps {
		if g.Source != event.SourceProc || !strings.Contains(g.Reason, "ENOBUFS") || g.FromTS > g.ToTS || g.ToTS == 0 {
			t.Errorf("gap %+v, want source proc, ENOBUFS, from ≤ to", g)
		}
	}
	if st.Resyncs == 0 {
		t.Errorf("no resync after ENOBUFS: %+v", st)
	}
	// Not silence: rows keep coming after the losses.
	if st.Rows < 100 {
		t.Errorf("only %d rows", st.Rows)
	}
	var snaps, inferred int
	for _, r := range sink.Procs() {
		if r.Event == event.ProcSnapshot && r.TS >= gaps[0].ToTS {
			snaps++
		}
		if r.Event == event.ProcExit && r.Flags&event.ProcFlagLateRead != 0 {
			inferred++
		}
	}
	t.Logf("ENOBUFS %d, gap rows %d, resyncs %d, snapshot rows after the first gap %d, inferred exits %d", st.Lost, len(gaps), st.Resyncs, snaps, inferred)
}

func TestPrivProcPoll(t *testing.T) {
	testutil.RequireRoot(t)
	sink := &event.MemSink{}
	src := startProcSource(t, Options{Sink: sink, ForcePoll: true, PollInterval: 50 * time.Millisecond})
	if m := src.Mode(); m != ModePoll {
		t.Fatalf("mode %q, want poll", m)
	}
	cmd := exec.Command("/bin/sh", "-c", "sleep 0.5", "pofr-poll-marker")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := int32(cmd.Process.Pid)
	rows := waitRows(t, sink, 5*time.Second, "poll exit row", func(rs []event.Proc) bool {
		return slices.ContainsFunc(rs, func(r event.Proc) bool { return r.PID == pid && r.Event == event.ProcExit })
	})
	var got []string
	for _, r := range rows {
		if r.Flags&event.ProcFlagPoll == 0 {
			t.Fatalf("%s row of %d in poll mode not flagged poll", r.Event, r.PID)
		}
		if r.PID == pid {
			got = append(got, r.Event)
			if r.Event == event.ProcExec && string(r.Argv) != "/bin/sh\x00-c\x00sleep 0.5\x00pofr-poll-marker\x00" {
				t.Errorf("argv %q", r.Argv)
			}
		}
	}
	if !slices.Equal(got, []string{event.ProcExec, event.ProcExit}) {
		t.Errorf("rows of the polled process %v, want exec, exit", got)
	}
}

// TestPrivProcExecStorm: every exec of 2000 /bin/true is recorded (or
// covered by a gap row); argv and exe capture rates are reported.
func TestPrivProcExecStorm(t *testing.T) {
	testutil.RequireRoot(t)
	for _, prio := range []Priority{PriorityFIFO, PriorityNice, PriorityNormal} {
		t.Run(string(prio), func(t *testing.T) { procExecStorm(t, prio) })
	}
}

func procExecStorm(t *testing.T, prio Priority) {
	sink := &event.MemSink{}
	src := startProcSource(t, Options{Sink: sink, Priority: prio})
	const n = 2000
	t0 := time.Now()
	loops := spawnStorm(t, n, 2)
	el := time.Since(t0)
	// Every /bin/true is a fork of a loop; wait for the loops' exits, then
	// for all the forks' exits. Rows are matched by life, (pid, start): on a
	// busy machine with a small pid_max the storm's pids are taken again by
	// other processes while the test runs.
	rows := waitRows(t, sink, 5*time.Second, "exit rows of the storm", func(rs []event.Proc) bool {
		forks, exits := stormLives(rs, loops), 0
		for _, r := range rs {
			if r.Event == event.ProcExit && forks[procLife{r.PID, r.ProcStart}] {
				exits++
			}
		}
		return exits >= n || len(sink.Gaps()) > 0
	})
	forks := stormLives(rows, loops)
	var execs, argvOK, exeOK int
	args := map[string]bool{}
	for _, r := range rows {
		if r.Event != event.ProcExec || !forks[procLife{r.PID, r.ProcStart}] {
			continue
		}
		execs++
		if a, ok := bytes.CutPrefix(r.Argv, []byte("/bin/true\x00pofr-storm-")); ok {
			argvOK++
			args[string(a)] = true
		}
		if len(r.Exe) > 0 {
			exeOK++
		}
	}
	if len(args) != argvOK {
		t.Errorf("%d argv captured but %d distinct: rows duplicated or mixed", argvOK, len(args))
	}
	if (len(forks) != n || execs != n) && len(sink.Gaps()) == 0 {
		t.Errorf("%d forks and %d execs of %d spawns, and no gap row", len(forks), execs, n)
	}
	st := src.Stats()
	if st.Priority != prio {
		t.Errorf("priority %q, want %q", st.Priority, prio)
	}
	t.Logf("storm: %d execs in %v (%.0f/s); recorded %d (%.2f%%), argv %.2f%%, exe %.2f%%; stats %+v",
		n, el.Round(time.Millisecond), n/el.Seconds(), execs, 100*float64(execs)/n,
		100*float64(argvOK)/n, 100*float64(exeOK)/n, st)
}

// procLife names one process: a pid and its start.
type procLife struct {
	pid   int32
	start int64
}

// stormLives returns the lives forked by the loops of spawnStorm, by their
// pids, per the fork rows of this process's children and theirs.
func stormLives(rows []event.Proc, loops []int32) map[procLife]bool {
	me := int32(os.Getpid())
	loopLives := map[procLife]bool{}
	for _, r := range rows {
		if r.Event == event.ProcFork && r.PPID == me && slices.Contains(loops, r.PID) {
			loopLives[procLife{r.PID, r.ProcStart}] = true
		}
	}
	forks := map[procLife]bool{}
	for _, r := range rows {
		if r.Event == event.ProcFork && r.ParentStart.Valid && loopLives[procLife{r.PPID, r.ParentStart.V}] {
			forks[procLife{r.PID, r.ProcStart}] = true
		}
	}
	return forks
}

// benchSink keeps only what the benchmark checks: per pid, whether its exec
// row had argv and exe.
type benchSink struct {
	mu    sync.Mutex
	execs map[int32][2]bool
	gaps  int
}

func (s *benchSink) AppendProc(r *event.Proc) {
	if r.Event != event.ProcExec {
		return
	}
	s.mu.Lock()
	s.execs[r.PID] = [2]bool{bytes.Contains(r.Argv, []byte("pofr-bench")), len(r.Exe) > 0}
	s.mu.Unlock()
}
func (s *benchSink) AppendFile(*event.File)       {}
func (s *benchSink) AppendSock(*event.Sock)       {}
func (s *benchSink) AppendGap(*event.Gap)         { s.mu.Lock(); s.gaps++; s.mu.Unlock() }
func (s *benchSink) AppendAccount(*event.Account) {}

func rssMB() float64 {
	b, _ := os.ReadFile("/proc/self/status")
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return float64(kb) / 1024
		}
	}
	return 0
}

// TestProcHelperSpawner is not a test: run with POFR_PROC_SPAWN=N,RATE it
// is the paced spawner of BenchmarkPrivProcExec and BenchmarkPrivProcFloor,
// execing /bin/true pofr-bench N times at RATE per second (0: one after the
// other, as fast as one process can).
func TestProcHelperSpawner(t *testing.T) {
	spec := os.Getenv("POFR_PROC_SPAWN")
	if spec == "" {
		return
	}
	var n, rate int
	if _, err := fmt.Sscanf(spec, "%d,%d", &n, &rate); err != nil || rate < 0 {
		fmt.Fprintln(os.Stderr, "POFR_PROC_SPAWN: want N,RATE (RATE 0: as fast as possible)")
		os.Exit(2)
	}
	var tick time.Duration
	if rate > 0 {
		tick = time.Second / time.Duration(rate)
	}
	next := time.Now()
	for range n {
		if tick > 0 {
			next = next.Add(tick)
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
		}
		pid, err := syscall.ForkExec("/bin/true", []string{"/bin/true", "pofr-bench"}, &syscall.ProcAttr{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, 0, nil)
	}
	os.Exit(0)
}

// BenchmarkPrivProcExec spawns /bin/true pofr-bench from other processes
// (so this process's CPU is the collector's alone) at the machine's maximum
// rate (2 shell loops) and at 1000/s (a paced helper), with and without the
// collector. One op is one exec; the ops run in the spawners, so the loop
// is over b.N. Metrics: exec/s achieved (compare collector=on with off for
// the slowdown), the collector's CPU µs per exec, and with the collector the
// percentage of execs recorded, with argv and with exe, and its RSS.
func BenchmarkPrivProcExec(b *testing.B) {
	testutil.RequireRoot(b)
	for _, rate := range []int{0, 1000} {
		for _, on := range []bool{false, true} {
			name := fmt.Sprintf("rate=%s/collector=%v", map[bool]string{true: "max", false: strconv.Itoa(rate)}[rate == 0], on)
			b.Run(name, func(b *testing.B) { benchExec(b, rate, on) })
		}
	}
}

// startBenchProcSource runs a Source with its defaults into sink, quiet,
// and returns once it writes rows.
func startBenchProcSource(b *testing.B, sink event.Sink) (*Source, func()) {
	b.Helper()
	return startBenchSource(b, sink, Options{})
}

// startBenchSource runs a Source with options o until the returned stop.
func startBenchSource(b *testing.B, sink event.Sink, o Options) (*Source, func()) {
	b.Helper()
	o.Sink, o.SelfPID, o.Log = sink, -1, slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := New(o)
	if err != nil {
		b.Fatal(err)
	}
	stop := testutil.Go(b, "Source.Run", s.Run)
	testutil.WaitFor(b, 10*time.Second, "snapshot rows", func() bool { return s.Stats().Rows > 0 })
	return s, stop
}

func benchExec(b *testing.B, rate int, on bool) {
	sink := &benchSink{execs: map[int32][2]bool{}}
	var src *Source
	stop := func() {}
	if on {
		src, stop = startBenchProcSource(b, sink)
	}
	cpu0 := testutil.ProcessCPU()
	b.ResetTimer()
	t0 := time.Now()
	if rate == 0 {
		spawnBench(b, b.N, 2)
	} else {
		cmd := exec.Command(os.Args[0], "-test.run=^TestProcHelperSpawner$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("POFR_PROC_SPAWN=%d,%d", b.N, rate))
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("spawner: %v: %s", err, out)
		}
	}
	el := time.Since(t0)
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(n/el.Seconds(), "exec/s")
	if !on {
		return
	}
	// Wait for the rows of the last execs, then stop.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && src.Stats().Execs < uint64(b.N) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	cpu := testutil.ProcessCPU() - cpu0
	rss := rssMB()
	stop()
	var rec, argv, exe float64
	sink.mu.Lock()
	for _, e := range sink.execs {
		if e[0] {
			rec++
			argv++
			if e[1] {
				exe++
			}
		}
	}
	gaps := sink.gaps
	sink.mu.Unlock()
	st := src.Stats()
	// Exec rows without argv cannot be told apart from other execs by
	// argv, so "recorded" counts exec events seen (all execs on the host
	// during the run, which includes the spawners' own).
	b.ReportMetric(100*float64(min(st.Execs, uint64(b.N)))/n, "recorded-%")
	b.ReportMetric(100*argv/n, "argv-%")
	b.ReportMetric(100*exe/n, "exe-%")
	b.ReportMetric(float64(cpu.Microseconds())/n, "cpu-µs/exec")
	b.ReportMetric(rss, "rss-MB")
	b.ReportMetric(float64(gaps+int(st.QueueDrops)), "losses")
}

// spawnBench runs n /bin/true pofr-bench from workers shell loops.
func spawnBench(b *testing.B, n, workers int) {
	var cmds []*exec.Cmd
	for w := range workers {
		k := n / workers
		if w == 0 {
			k += n % workers
		}
		script := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do /bin/true pofr-bench; i=$((i+1)); done`, k)
		cmd := exec.Command("/bin/sh", "-c", script)
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			b.Error(err)
		}
	}
}

// TestPrivProcLoginUID checks where exec rows read loginuid when it is
// inherited unset (docs/design.md, "Process source, Enrichment"): a process writes its loginuid
// as pam_loginuid does, then a descendant changes its session (setsid) or
// its uid (setpriv) and execs: those execs and their children carry the
// loginuid. Without such a change in between, the loginuid written is not
// read (the documented blind spot), which the last case pins so that a
// change of the rule shows up here.
//
// The row checked is the exec of a child of the shell that the change
// exec'd: a shell blocked on its stdin until the test has seen its row.
// argv is read from /proc when the reader gets the event, so a process that
// exits at once can lose the marker its row is found by, and an exec read
// late shows the argv of a later exec of the same pid (whose own loginuid
// was not due to be read).
func TestPrivProcLoginUID(t *testing.T) {
	testutil.RequireRoot(t)
	if b, err := os.ReadFile("/proc/self/loginuid"); err != nil || strings.TrimSpace(string(b)) != "4294967295" {
		t.Skipf("this test needs an unset loginuid to start from: %q %v", b, err)
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		testutil.Skip(t, "priv", "setpriv not installed")
	}
	setsid, err := exec.LookPath("setsid")
	if err != nil {
		testutil.Skip(t, "priv", "setsid not installed")
	}
	const auid = 4242
	writeLogin := fmt.Sprintf("echo %d > /proc/self/loginuid", auid)
	if out, err := exec.Command("/bin/sh", "-c", writeLogin).CombinedOutput(); err != nil {
		if strings.Contains(string(out), "Operation not permitted") {
			testutil.Skip(t, "priv", "cannot write loginuid here: "+string(out))
		}
		t.Fatalf("%s: %v: %s", writeLogin, err, out)
	}
	sink := &event.MemSink{}
	src := startProcSource(t, Options{Sink: sink})
	if m := src.Mode(); m != ModeNetlink {
		t.Fatalf("mode %q, want netlink", m)
	}
	cases := []struct {
		name, change string
		want         uint32
	}{
		{"setsid", setsid, auid},
		{"setuid", setpriv + " --reuid 65534 --regid 65534 --clear-groups", auid},
		{"nochange", "", event.NoID},
	}
	for _, c := range cases {
		// The marker names this test process, so that another run of this
		// test on the machine cannot be taken for this one. "; exit 0"
		// keeps sh from exec'ing its last command in its own process.
		marker := fmt.Sprintf("pofr-login-%s-%d", c.name, os.Getpid())
		script := fmt.Sprintf(`%s && exec %s /bin/sh -c "/bin/sh -c 'read x; exit 0' %s; exit 0"`, writeLogin, c.change, marker)
		r, ok := heldExec(t, src, sink, script, "\x00"+marker+"\x00")
		if ok && r.AUID != c.want {
			t.Errorf("%s: exec row of %q: auid %d, want %d", c.name, r.Argv, r.AUID, c.want)
		}
	}
}

// heldExec runs script in /bin/sh with its stdin on a pipe, waits for the
// exec row whose argv contains marker, of a child of the script's process,
// then closes the pipe and waits for the script to end. The process with
// the marker must read its stdin, so that it lives until its row is seen.
// A loss while waiting (the kernel queue overrun, e.g. by another test's
// exec storm, a dropped event or a read skipped by EnrichRate) makes the
// reader forget what the rows inherit: the script is run again, up to three
// times. ok is false if the test failed.
func heldExec(t *testing.T, src *Source, sink *event.MemSink, script, marker string) (row event.Proc, ok bool) {
	t.Helper()
	losses := func() uint64 { st := src.Stats(); return st.Lost + st.QueueDrops + st.EnrichSkipped }
	for try := 1; ; try++ {
		lost := losses()
		cmd := exec.Command("/bin/sh", "-c", script)
		var out testutil.SyncBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		done, release := testutil.StartHeld(t, cmd)
		var found bool
		var early error
		deadline := time.Now().Add(10 * time.Second)
		for !found && early == nil && time.Now().Before(deadline) {
			rows := sink.Procs()
			if i := slices.IndexFunc(rows, func(r event.Proc) bool {
				return r.Event == event.ProcExec && bytes.Contains(r.Argv, []byte(marker))
			}); i >= 0 {
				row, found = rows[i], true
				break
			}
			select {
			case early = <-done:
				if early == nil {
					early = errors.New("ended before its row was seen")
				}
			case <-time.After(10 * time.Millisecond):
			}
		}
		release()
		if early == nil {
			testutil.Await(t, done, 10*time.Second, "end of "+script, func() { cmd.Process.Kill() })
		}
		switch {
		case early != nil:
			t.Errorf("%s: %v: %s", script, early, out.String())
			return row, false
		case losses() != lost && try < 3:
			t.Logf("events lost while running %s: running it again", script)
			continue
		case losses() != lost:
			t.Logf("events lost in each of %d runs of %s: the row may not follow the rule", try, script)
		case !found:
			t.Errorf("exec row with %q: not within 10 s: %s", marker, out.String())
			return row, false
		case row.PPID != int32(cmd.Process.Pid):
			t.Errorf("exec row of %q: ppid %d, want the script's %d", row.Argv, row.PPID, cmd.Process.Pid)
			return row, false
		}
		return row, true
	}
}
