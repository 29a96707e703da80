package tracepoint

import (
	"os"
	"os/exec"
	"slices"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pofr/pofr/internal/testutil"
)

// setCPUOnline writes cpu's online switch, skipping the test if the
// machine does not allow it.
func setCPUOnline(t *testing.T, cpu int, on bool) {
	t.Helper()
	v := "0"
	if on {
		v = "1"
	}
	p := "/sys/devices/system/cpu/cpu" + strconv.Itoa(cpu) + "/online"
	if err := os.WriteFile(p, []byte(v), 0); err != nil {
		testutil.Skip(t, testutil.TierPriv, "cannot switch CPU "+strconv.Itoa(cpu)+": "+err.Error())
	}
}

// TestPrivCPUHotplug takes CPU 1 offline and back online while the rings are
// open (the kernel drops a CPU's events when it goes offline and does not
// restore them), then runs execs pinned to CPU 1: a drain must reopen its
// ring and their samples arrive.
//
// Opt-in (POFR_TEST_HOTPLUG=1): taking a CPU offline drops the perf events of
// every other process on the machine too, and tests of other packages that
// run at the same time pin children to CPU 1 or keep rings open on it.
func TestPrivCPUHotplug(t *testing.T) {
	if os.Getenv("POFR_TEST_HOTPLUG") != "1" {
		t.Skip("set POFR_TEST_HOTPLUG=1 to take CPU 1 offline and back (disturbs every perf user on the machine)")
	}
	requirePerf(t)
	cpus, err := onlineCPUs()
	if err != nil {
		t.Fatal(err)
	}
	if len(cpus) < 2 || cpus[1] != 1 {
		testutil.Skip(t, testutil.TierPriv, "needs CPU 1 online")
	}
	bin := testutil.UniqueTrue(t)
	s := openChecked(t, Options{Events: []Event{{Name: "sched:sched_process_exec", Filter: `filename == "` + bin + `"`}},
		RingBytes: 64 << 10, Doorbell: "task:task_newtask"}, 100*time.Millisecond)
	t.Cleanup(func() { os.WriteFile("/sys/devices/system/cpu/cpu1/online", []byte("1"), 0) })
	setCPUOnline(t, 1, false)
	time.Sleep(200 * time.Millisecond)
	setCPUOnline(t, 1, true)
	seen := 0
	deadline := time.Now().Add(5 * time.Second)
	for seen == 0 && time.Now().Before(deadline) {
		if err := testutil.RunPinned(exec.Command(bin), 1); err != nil {
			t.Fatal(err)
		}
		s.Wait(50 * time.Millisecond)
		s.Drain(func(r *Record) {
			if r.Event >= 0 && r.Sample.CPU == 1 {
				seen++
			}
		})
	}
	st := s.Stats()
	t.Logf("samples from CPU 1 after the hotplug: %d; stats %+v", seen, st)
	if seen == 0 || st.CPUsReopened == 0 {
		t.Errorf("CPU 1 back online: %d samples from it, %d rings reopened; want both > 0", seen, st.CPUsReopened)
	}
	if len(s.bells) != len(cpus) || s.CPUs() != len(cpus) {
		t.Errorf("%d rings and %d doorbells, want %d of each", s.CPUs(), len(s.bells), len(cpus))
	}
}

// TestPrivCPUCheckQuiet: with every CPU online, the checks find every ring
// alive and reopen none, however idle the events are.
func TestPrivCPUCheckQuiet(t *testing.T) {
	requirePerf(t)
	s := openChecked(t, Options{Events: []Event{{Name: "sched:sched_process_exec", Filter: `filename == "/nonexistent/pofr"`}},
		RingBytes: 8192}, 50*time.Millisecond)
	for range 10 {
		time.Sleep(60 * time.Millisecond)
		s.Drain(func(*Record) {})
	}
	if st := s.Stats(); st.CPUsReopened != 0 || st.CPUErrors != 0 {
		t.Errorf("stats %+v: rings reopened with every CPU online", st)
	}
}

// openChecked opens and enables a Set whose drains check the CPUs every
// `every`; it is closed at the end of the test.
func openChecked(t *testing.T, o Options, every time.Duration) *Set {
	t.Helper()
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.cpuCheckEvery = every
	if err := s.Enable(); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPrivReplacedRingHandsOutItsRest: a ring the CPU check replaces hands
// out everything it still holds before it is closed, records newer than
// the drain's cutoff and the loss only its counters say. The ring's events
// are disabled after a storm into it, which stops their enabled time as
// taking the CPU offline does (without disturbing the machine), and the
// drains' cutoff is before the storm, so nothing but the replacement hands
// the storm out.
func TestPrivReplacedRingHandsOutItsRest(t *testing.T) {
	const n = 200
	requirePerf(t)
	cpus, err := onlineCPUs()
	if err != nil {
		t.Fatal(err)
	}
	cpu := cpus[len(cpus)-1]
	bin := testutil.UniqueTrue(t)
	s := openChecked(t, Options{Events: []Event{{Name: "sched:sched_process_exec", StackBytes: 4096,
		Filter: `filename == "` + bin + `"`}}, RingBytes: 64 << 10}, 50*time.Millisecond)
	var old *ring
	for _, r := range s.rings {
		if r.cpu == cpu {
			old = r
		}
	}
	cutoff := Now()
	for range n {
		if err := testutil.RunPinned(exec.Command(bin), cpu); err != nil {
			t.Fatal(err)
		}
	}
	for _, fd := range old.fds {
		if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_DISABLE, 0); err != nil {
			t.Fatal(err)
		}
	}
	var kept, lost uint64
	count := func(r *Record) {
		switch {
		case r.Event >= 0 && r.Sample.CPU == uint32(cpu):
			kept++
		case r.Event < 0 && r.Lost.CPU == cpu:
			lost += r.Lost.Count
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().CPUsReopened == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		s.DrainBefore(cutoff, count)
	}
	st := s.Stats()
	t.Logf("%d execs on CPU %d: %d kept, %d lost; stats %+v", n, cpu, kept, lost, st)
	if st.CPUsReopened != 1 || slices.Contains(s.rings, old) {
		t.Fatalf("stats %+v: the disabled ring of CPU %d was not replaced", st, cpu)
	}
	if s.noLostFormat {
		testutil.Skip(t, testutil.TierPriv, "no PERF_FORMAT_LOST (Linux < 6.0): a replaced ring's pending loss is not seen")
	}
	if kept+lost != n || kept == 0 || lost == 0 {
		t.Errorf("kept %d + lost %d = %d, want the %d execs, some kept and some lost", kept, lost, kept+lost, n)
	}
}
