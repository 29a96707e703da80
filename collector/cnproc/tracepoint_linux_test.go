package cnproc

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pofr/pofr/collector/tracepoint"
	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/testutil"
)

// requireTracepoints skips unless the tracepoint capture can open here.
func requireTracepoints(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t)
	fs, err := tracepoint.OpenFS()
	if err != nil {
		testutil.Skip(t, testutil.TierPriv, err.Error())
	}
	fs.Close()
}

// TestPrivTracepointKnownTree runs the known-tree test on the tracepoint
// capture.
func TestPrivTracepointKnownTree(t *testing.T) {
	requireTracepoints(t)
	knownTree(t, Options{Tracepoint: true}, ModeTracepoint)
}

// TestPrivTracepointFallback: when the rings cannot be opened, the source
// says why and records with cn_proc.
func TestPrivTracepointFallback(t *testing.T) {
	testutil.RequireRoot(t)
	sink := &event.MemSink{}
	var logged testutil.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	src := startProcSource(t, Options{Sink: sink, Log: log, Tracepoint: true,
		traceRefused: fmt.Errorf("%w: test", tracepoint.ErrPerm)})
	if m := src.Mode(); m != ModeNetlink || src.Stats().Capture != "cn_proc" {
		t.Fatalf("mode %q capture %q, want the cn_proc fallback", m, src.Stats().Capture)
	}
	if !strings.Contains(logged.String(), "falling back to cn_proc") || !strings.Contains(logged.String(), "perf_event_open refused") {
		t.Errorf("log %q does not say why the tracepoint capture is not used", logged.String())
	}
	cmd := exec.Command("/bin/sh", "-c", "exit 7", "pofr-fallback")
	cmd.Run()
	pid := int32(cmd.Process.Pid)
	waitRows(t, sink, 5*time.Second, "exit row under the fallback", func(rs []event.Proc) bool {
		return slices.ContainsFunc(rs, func(r event.Proc) bool {
			return r.PID == pid && r.Event == event.ProcExit && r.ExitCode == event.Some[int32](7)
		})
	})
}

// TestPrivTracepointStormGaps runs an exec storm into tiny rings: the
// samples the kernel drops must come out as gap rows whose counts add up to
// exactly what the rings lost, every exec must be a row or in such a count,
// and recording must go on afterwards. The counts are compared once the
// source has stopped: its last drain reads the events' lost counters, so a
// loss no ring reported (a quiet CPU writes its lost record only with its
// next sample) is in them, and no loss of the host's own processes can land
// between reading the rows and reading the counter.
func TestPrivTracepointStormGaps(t *testing.T) {
	requireTracepoints(t)
	sink := &event.MemSink{}
	// The rings wake the reader only when full: drains come from the timer
	// (and the doorbell), so the storm overflows them between two drains.
	src, stop := startProcSourceStop(t, Options{Sink: sink, Tracepoint: true, TraceRingBytes: 128 << 10,
		TraceBusy: 500 * time.Millisecond, TraceIdle: 500 * time.Millisecond, traceWatermark: 128 << 10})
	if src.Mode() != ModeTracepoint {
		t.Fatalf("mode %q", src.Mode())
	}
	bin := testutil.UniqueTrue(t)
	const spawners, each = 6, 60
	var wg sync.WaitGroup
	for range spawners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			exec.Command("/bin/sh", "-c", fmt.Sprintf("i=0; while [ $i -lt %d ]; do %s; i=$((i+1)); done", each, bin)).Run()
		}()
	}
	wg.Wait()
	stormEnd := time.Now()
	// After the storm, recording goes on: a process with a known argv,
	// living past a drain, gets its exec row (its argv, when the row has
	// one, must be its own), or, when the rings lost its exec sample, the
	// snapshot row of the resync after that loss; or, when the host's own
	// execs overflow the tiny rings again just then and the process is
	// gone before the resync, a gap row over its life says so (checked once
	// the source has stopped and written every gap). Up to five tries for
	// a recorded one.
	type life struct {
		pid      int32
		from, to int64 // wall ns: before its start, after its end
	}
	ofLife := func(l life, r event.Proc) bool {
		return r.PID == l.pid && r.TS >= l.from && (r.Event == event.ProcExec || r.Event == event.ProcSnapshot)
	}
	var tries []life
	ok := false
	for try := 0; try < 5 && !ok; try++ {
		after := exec.Command("/bin/sh", "-c", "sleep 1; exit 0", "pofr-after-storm")
		from := time.Now().UnixNano()
		if err := after.Run(); err != nil {
			t.Fatal(err)
		}
		l := life{pid: int32(after.Process.Pid), from: from, to: time.Now().UnixNano()}
		tries = append(tries, l)
		recorded := func() bool {
			return slices.ContainsFunc(sink.Procs(), func(r event.Proc) bool { return ofLife(l, r) })
		}
		deadline := time.Now().Add(3 * time.Second)
		for !recorded() && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if ok = recorded(); !ok {
			t.Logf("try %d: pid %d not recorded (ring losses go on: %d)", try, l.pid, src.Stats().RingLost)
		}
	}
	stop()
	st := src.Stats()
	rows := sink.Procs()
	var execs, execsAfter int64
	for _, r := range rows {
		if r.Event == event.ProcExec && string(r.Exe) == bin {
			execs++
		}
		if r.Event == event.ProcExec && r.TS > stormEnd.UnixNano() {
			execsAfter++
		}
	}
	want := []byte("/bin/sh\x00-c\x00sleep 1; exit 0\x00pofr-after-storm\x00")
	for _, l := range tries {
		found := false
		for _, r := range rows {
			if !ofLife(l, r) || r.TS > l.to {
				continue
			}
			found = true
			if r.Argv != nil && !bytes.Equal(r.Argv, want) {
				t.Errorf("pid %d: %s row with argv %q, want %q", l.pid, r.Event, r.Argv, want)
			}
		}
		if found {
			continue
		}
		// Not recorded: the rings lost its exec sample (the host's losses
		// go on), so a ring gap row must cover its life.
		covered := slices.ContainsFunc(sink.Gaps(), func(g event.Gap) bool {
			return g.Source == event.SourceProc && strings.Contains(g.Reason, "tracepoint ring") &&
				g.FromTS <= l.to && g.ToTS >= l.from
		})
		if !covered {
			t.Errorf("pid %d (%d..%d): no exec or snapshot row, and no ring gap row over its life: a silent miss", l.pid, l.from, l.to)
			for _, r := range rows {
				if r.PID == l.pid {
					t.Logf("  its row: %s at %d argv %q flags %#x", r.Event, r.TS, r.Argv, r.Flags)
				}
			}
		}
	}
	if !ok && execsAfter == 0 {
		t.Errorf("no exec row at all after the storm; stats %+v", st)
	}
	var lost int64
	var gaps int
	for _, g := range sink.Gaps() {
		if g.Source != event.SourceProc || !strings.Contains(g.Reason, "tracepoint ring") {
			continue
		}
		gaps++
		if !g.Lost.Valid || g.ToTS < g.FromTS {
			t.Errorf("gap %+v: want a count and an interval", g)
		}
		lost += g.Lost.V
	}
	t.Logf("%d execs: %d rows, %d lost in %d gap rows; stats %+v", spawners*each, execs, lost, gaps, st)
	if gaps == 0 || uint64(lost) != st.RingLost {
		t.Errorf("gap rows count %d lost, the rings lost %d; want equal and above 0", lost, st.RingLost)
	}
	// An exec whose fork sample was lost, and whose process was gone when
	// /proc was read, has no key and so no row (Unknown), inside a gap.
	if execs+lost+int64(st.Unknown) < spawners*each {
		t.Errorf("%d exec rows + %d lost + %d unknown < %d execs", execs, lost, st.Unknown, spawners*each)
	}
}

// setLastPID makes the next pid the kernel hands out pid (if it is free).
func setLastPID(pid int32) error {
	return os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(int(pid-1))), 0)
}

// TestPrivTracepointPIDReuse runs two lives of one pid: their rows must
// carry two keys, each with its own argv, the first's exit before the
// second's fork.
func TestPrivTracepointPIDReuse(t *testing.T) {
	requireTracepoints(t)
	sink := &event.MemSink{}
	src := startProcSource(t, Options{Sink: sink, Tracepoint: true})
	if src.Mode() != ModeTracepoint {
		t.Fatalf("mode %q", src.Mode())
	}
	var first, second int32
	for attempt := 0; attempt < 20 && second == 0; attempt++ {
		a := exec.Command("/bin/sh", "-c", "sleep 0.05", "pofr-life-one")
		if err := a.Run(); err != nil {
			t.Fatal(err)
		}
		first = int32(a.Process.Pid)
		time.Sleep(20 * time.Millisecond) // a ms of lifetime apart: distinct proc_start ticks
		if err := setLastPID(first); err != nil {
			testutil.Skip(t, testutil.TierPriv, "cannot set ns_last_pid: "+err.Error())
		}
		b := exec.Command("/bin/sh", "-c", "sleep 0.05", "pofr-life-two")
		if err := b.Run(); err != nil {
			t.Fatal(err)
		}
		if int32(b.Process.Pid) == first {
			second = first
		}
	}
	if second == 0 {
		t.Fatal("could not get a pid reused within 20 attempts (another process took it)")
	}
	rows := waitRows(t, sink, 5*time.Second, "both lives", func(rs []event.Proc) bool {
		n := 0
		for _, r := range rs {
			if r.PID == first && r.Event == event.ProcExit {
				n++
			}
		}
		return n >= 2
	})
	var lives []int64
	argv := map[int64][]byte{}
	for _, r := range rows {
		if r.PID != first {
			continue
		}
		if !slices.Contains(lives, r.ProcStart) {
			lives = append(lives, r.ProcStart)
		}
		if r.Event == event.ProcExec {
			argv[r.ProcStart] = r.Argv
		}
	}
	if len(lives) < 2 {
		t.Fatalf("pid %d: keys %v, want two lives", first, lives)
	}
	one, two := lives[len(lives)-2], lives[len(lives)-1]
	if !bytes.Contains(argv[one], []byte("pofr-life-one")) || !bytes.Contains(argv[two], []byte("pofr-life-two")) {
		t.Errorf("argv of the lives %q and %q", argv[one], argv[two])
	}
	if one >= two {
		t.Errorf("keys %d then %d, want increasing", one, two)
	}
}

// TestPrivTracepointInstantExitArgv counts, without asserting exactness,
// how many execs of processes that exit at once keep their argv on the
// tracepoint capture (the stack dump misses it for about a fifth of the
// execs on x86_64, and /proc is gone by the drain), with and without the
// exec guard.
func TestPrivTracepointInstantExitArgv(t *testing.T) {
	requireTracepoints(t)
	for _, guard := range []bool{false, true} {
		t.Run(fmt.Sprintf("guard=%v", guard), func(t *testing.T) {
			sink := &event.MemSink{}
			src := startProcSource(t, Options{Sink: sink, Tracepoint: true, ExecGuard: guard})
			if src.Mode() != ModeTracepoint {
				t.Fatalf("mode %q", src.Mode())
			}
			bin := testutil.UniqueTrue(t)
			const n = 200
			var pids []int32
			for i := range n {
				c := exec.Command(bin, "pofr-instant", strconv.Itoa(i))
				if err := c.Run(); err != nil {
					t.Fatal(err)
				}
				pids = append(pids, int32(c.Process.Pid))
			}
			last := pids[len(pids)-1]
			rows := waitRows(t, sink, 5*time.Second, "exit of the last", func(rs []event.Proc) bool {
				return slices.ContainsFunc(rs, func(r event.Proc) bool { return r.PID == last && r.Event == event.ProcExit })
			})
			ours := map[int32]bool{}
			for _, p := range pids {
				ours[p] = true
			}
			var execs, withArgv, fromProc int
			for _, r := range rows {
				if r.Event != event.ProcExec || !ours[r.PID] {
					continue
				}
				execs++
				if r.Argv != nil {
					withArgv++
					if !bytes.HasPrefix(r.Argv, []byte(bin+"\x00pofr-instant\x00")) {
						t.Errorf("argv %q", r.Argv)
					}
				}
				if r.Flags&event.ProcFlagArgvFromProc != 0 {
					fromProc++
				}
			}
			st := src.Stats()
			t.Logf("guard %v: %d of %d execs recorded, argv for %d (%.1f %%), %d from /proc; not in dump %d, from the guard %d",
				guard, execs, n, withArgv, 100*float64(withArgv)/float64(n), fromProc, st.ArgvNotInDump, st.ArgvGuard)
			// A ring that other processes' samples filled drops samples
			// (an exec sample with its stack dump can be dropped where a
			// small fork or exit sample still fits): that is a gap row,
			// never silence.
			if gaps := sink.Gaps(); execs != n && len(gaps) > 0 {
				t.Logf("%d exec rows of %d, with gap rows %+v (ring lost %d samples)", execs, n, gaps, st.RingLost)
			} else if execs != n {
				t.Errorf("%d exec rows, want %d, and no gap row (stats %+v)", execs, n, st)
				for _, p := range pids {
					var kinds []string
					for _, r := range rows {
						if r.PID == p {
							kinds = append(kinds, r.Event)
						}
					}
					if !slices.Contains(kinds, event.ProcExec) {
						t.Logf("pid %d: rows %v", p, kinds)
					}
				}
			}
		})
	}
}
