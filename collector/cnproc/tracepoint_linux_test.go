package cnproc

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
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
// and recording must go on afterwards.
func TestPrivTracepointStormGaps(t *testing.T) {
	requireTracepoints(t)
	sink := &event.MemSink{}
	// The rings wake the reader only when full: drains come from the timer
	// (and the doorbell), so the storm overflows them between two drains.
	src := startProcSource(t, Options{Sink: sink, Tracepoint: true, TraceRingBytes: 128 << 10,
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
	// A ring reports its loss when it next writes a sample: one exec on
	// every CPU.
	for cpu := range runtime.NumCPU() {
		if err := testutil.RunPinned(exec.Command(bin), cpu); err != nil {
			t.Fatal(err)
		}
	}
	// After the storm, a process with a known argv, living past a drain, is
	// recorded: its exec row, or, if the host's own background overflowed
	// the tiny rings again just then, the snapshot row of the resync after
	// that loss. The host may be busy: up to five tries.
	var rows []event.Proc
	recorded := func(apid int32) func([]event.Proc) bool {
		return func(rs []event.Proc) bool {
			return slices.ContainsFunc(rs, func(r event.Proc) bool {
				return r.PID == apid && (r.Event == event.ProcExec || r.Event == event.ProcSnapshot) &&
					bytes.Contains(r.Argv, []byte("pofr-after-storm"))
			})
		}
	}
	for try := 0; ; try++ {
		after := exec.Command("/bin/sh", "-c", "sleep 1; exit 0", "pofr-after-storm")
		if err := after.Run(); err != nil {
			t.Fatal(err)
		}
		apid := int32(after.Process.Pid)
		deadline := time.Now().Add(3 * time.Second)
		for !recorded(apid)(sink.Procs()) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		rows = sink.Procs()
		if recorded(apid)(rows) {
			break
		}
		if try == 4 {
			t.Fatalf("no row of a process after the storm in 5 tries; stats %+v", src.Stats())
		}
		t.Logf("try %d: pid %d not recorded (ring losses go on: %d)", try, apid, src.Stats().RingLost)
		for _, r := range rows {
			if r.PID == apid {
				t.Logf("  its row: %s argv %q flags %#x", r.Event, r.Argv, r.Flags)
			}
		}
	}
	var execs int64
	for _, r := range rows {
		if r.Event == event.ProcExec && string(r.Exe) == bin {
			execs++
		}
	}
	// Losses are merged into one gap row per 100 ms and written at a
	// drain: wait until every sample the rings reported lost is in one.
	var lost int64
	var gaps int
	deadline := time.Now().Add(5 * time.Second)
	for {
		lost, gaps = 0, 0
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
		if uint64(lost) == src.Stats().RingLost || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	st := src.Stats()
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
