package tracepoint

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pofr/pofr/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// requirePerf skips unless tracepoints can be opened here.
func requirePerf(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t)
	fs, err := OpenFS()
	if err != nil {
		testutil.Skip(t, testutil.TierPriv, err.Error())
	}
	fs.Close()
}

var procEvents = []Event{
	{Name: "sched:sched_process_exec", StackBytes: 16384},
	{Name: "task:task_newtask"},
	{Name: "sched:sched_process_exit"},
}

// TestPrivSetRecordsExec opens the process tracepoints, runs a child with a
// hostile argv and an environment of its own, and expects its newtask, exec
// and exit samples in time order; the exec's argv from the stack dump must be
// byte-exact when the dump holds it. With -update it writes the child's raw
// records to testdata/sample/.
func TestPrivSetRecordsExec(t *testing.T) {
	requirePerf(t)
	s, err := Open(Options{Events: procEvents, RingBytes: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Enable(); err != nil {
		t.Fatal(err)
	}
	bin := testutil.UniqueTrue(t)
	argv := []string{"tp-test", "two words", "tab\there", "nl\nx", "\xff\xfe", "", "last"}
	var want []byte
	for _, a := range argv {
		want = append(append(want, a...), 0)
	}
	for attempt := 0; ; attempt++ {
		// argv is missing from the dump in about a fifth of execs (see
		// ParseArgv): retry until one exec has it, up to a bound.
		cmd := exec.Command(bin)
		cmd.Args = argv
		cmd.Env = []string{"POFR_TP_TEST=env-must-not-leak"}
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		pid := uint32(cmd.Process.Pid)
		got := map[int][]byte{}
		var last uint64
		deadline := time.Now().Add(5 * time.Second)
		for len(got) < 3 && time.Now().Before(deadline) {
			s.Wait(20 * time.Millisecond)
			s.Drain(func(r *Record) {
				if r.Event < 0 {
					t.Logf("lost %d", r.Lost.Count)
					return
				}
				if r.Sample.Time < last {
					t.Errorf("sample at %d after one at %d: not merged by time", r.Sample.Time, last)
				}
				last = r.Sample.Time
				f := s.Formats()[r.Event]
				var subject uint32
				switch f.Name {
				case "task_newtask":
					fd, _ := f.Field("pid")
					v, _ := fd.Uint(r.Sample.Raw)
					subject = uint32(v)
				default:
					subject = r.Sample.PID
				}
				if subject == pid && got[r.Event] == nil {
					got[r.Event] = recordBytes(r)
				}
			})
		}
		if len(got) < 3 {
			t.Fatalf("pid %d: got samples of events %v, want exec, newtask and exit", pid, keys(got))
		}
		var smp Sample
		if err := ParseSample(got[0], func(uint16) Layout { return s.layouts[0] }, &smp); err != nil {
			t.Fatal(err)
		}
		fn, _ := s.Formats()[0].Field("filename")
		name, err := fn.String(smp.Raw)
		if err != nil || string(name) != bin {
			t.Errorf("exec filename %q, %v; want %q", name, err, bin)
		}
		cmdline, argc, err := ParseArgv(smp.Stack, smp.SP, smp.RegsABI, nil)
		if argc != len(argv) {
			t.Errorf("argc %d, want %d", argc, len(argv))
		}
		if errors.Is(err, ErrArgvMissing) && attempt < 20 {
			t.Logf("attempt %d: %v", attempt, err)
			continue
		}
		if err != nil || !bytes.Equal(cmdline, want) {
			t.Fatalf("argv %q, %v; want %q", cmdline, err, want)
		}
		if *update {
			for ev, name := range []string{"exec", "newtask", "exit"} {
				if err := os.WriteFile(filepath.Join("testdata", "sample", name+".bin"), got[ev], 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		return
	}
}

// recordBytes copies a record's bytes: the ring space is reused once the
// handler returns.
func recordBytes(r *Record) []byte { return append([]byte(nil), r.Bytes...) }

func keys(m map[int][]byte) []int {
	var k []int
	for i := range m {
		k = append(k, i)
	}
	return k
}

// stormTinyRing opens an enabled 64 KiB ring of exec samples filtered to a
// binary of the test's own and runs that binary n times, one at a time: a
// storm the ring cannot hold.
func stormTinyRing(t *testing.T, n int) (*Set, string) {
	t.Helper()
	requirePerf(t)
	bin := testutil.UniqueTrue(t)
	s, err := Open(Options{Events: []Event{{Name: "sched:sched_process_exec", StackBytes: 4096,
		Filter: `filename == "` + bin + `"`}}, RingBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Enable(); err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := exec.Command(bin).Run(); err != nil {
			t.Fatal(err)
		}
	}
	return s, bin
}

// TestPrivLostIsExact runs a storm of execs of one binary into a ring too
// small for them, with a kernel filter on that binary's path, and drains
// only afterwards: kept samples plus the counts of the lost records must be
// the number of execs, and recording must go on after the loss.
func TestPrivLostIsExact(t *testing.T) {
	const n = 300
	s, bin := stormTinyRing(t, n)
	var kept, lost, gaps uint64
	count := func(r *Record) {
		if r.Event < 0 {
			lost += r.Lost.Count
			gaps++
			if r.Lost.To < r.Lost.From {
				t.Errorf("loss interval %d..%d", r.Lost.From, r.Lost.To)
			}
			return
		}
		kept++
	}
	s.Flush(count)
	// A ring's PERF_RECORD_LOST is written when that ring next has room and
	// a sample to write: after the drain, one more exec on every CPU.
	cpus, err := onlineCPUs()
	if err != nil {
		t.Fatal(err)
	}
	for _, cpu := range cpus {
		if err := testutil.RunPinned(exec.Command(bin), cpu); err != nil {
			t.Fatal(err)
		}
	}
	total := uint64(n + len(cpus))
	deadline := time.Now().Add(5 * time.Second)
	for kept+lost < total && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		s.Flush(count)
	}
	t.Logf("%d execs: %d kept, %d lost in %d gaps", total, kept, lost, gaps)
	if kept+lost != total || lost == 0 || gaps == 0 {
		t.Errorf("kept %d + lost %d = %d, want %d execs with a loss", kept, lost, kept+lost, total)
	}
	if st := s.Stats(); st.Lost != lost || st.Bad != 0 {
		t.Errorf("stats %+v, want Lost %d and no bad records", st, lost)
	}
}

// TestPrivLostAtDisable runs a storm into a ring too small for it and
// disables the events before any drain: the rings never had room to write
// their lost records, so only the events' lost counters say the loss, and
// the last drain must still count every exec, kept or lost, exactly once.
func TestPrivLostAtDisable(t *testing.T) {
	const n = 300
	s, _ := stormTinyRing(t, n)
	if err := s.Disable(); err != nil {
		t.Fatal(err)
	}
	var kept, lost uint64
	count := func(r *Record) {
		if r.Event < 0 {
			lost += r.Lost.Count
			if r.Lost.To < r.Lost.From {
				t.Errorf("loss interval %d..%d", r.Lost.From, r.Lost.To)
			}
			return
		}
		kept++
	}
	s.Flush(count)
	s.Flush(count) // a second last drain counts nothing twice
	st := s.Stats()
	t.Logf("%d execs: %d kept, %d lost (%d of them from the counters only); stats %+v", n, kept, lost, st.Unreported, st)
	if s.noLostFormat {
		testutil.Skip(t, testutil.TierPriv, "no PERF_FORMAT_LOST (Linux < 6.0): a loss pending at Disable is not seen")
	}
	if kept+lost != n || lost == 0 || st.Unreported == 0 {
		t.Errorf("kept %d + lost %d = %d, want %d execs with a loss only the counters say", kept, lost, kept+lost, n)
	}
	if st.Lost != lost || st.Bad != 0 {
		t.Errorf("stats %+v, want Lost %d and no bad records", st, lost)
	}
}

// TestPrivFilterRefused checks that a bad filter is reported as ErrEvent.
func TestPrivFilterRefused(t *testing.T) {
	requirePerf(t)
	_, err := Open(Options{Events: []Event{{Name: "sched:sched_process_exec", Filter: "nosuchfield == 1"}}, RingBytes: 8192})
	if !errors.Is(err, ErrEvent) {
		t.Errorf("Open with a bad filter: %v, want ErrEvent", err)
	}
	_, err = Open(Options{Events: []Event{{Name: "sched:no_such_tracepoint"}}, RingBytes: 8192})
	if !errors.Is(err, ErrEvent) {
		t.Errorf("Open of a missing tracepoint: %v, want ErrEvent", err)
	}
}

// TestPrivPrivateTracefs creates a private tracefs (attached to no mount
// point) even when one is mounted, and reads a format through it.
func TestPrivPrivateTracefs(t *testing.T) {
	requirePerf(t)
	fd, err := privateTracefs()
	if err != nil {
		t.Fatal(err)
	}
	fs := &FS{root: fd, Where: "private"}
	defer fs.Close()
	f, err := fs.Format("sched", "sched_process_exec")
	if err != nil || f.Name != "sched_process_exec" {
		t.Fatalf("Format through a private tracefs: %v, %v", f, err)
	}
}

func TestParseTracefsMounts(t *testing.T) {
	in := "22 28 0:20 / /sys rw,nosuid - sysfs sysfs rw\n" +
		"40 22 0:12 / /sys/kernel/tracing rw,nosuid - tracefs tracefs rw\n" +
		"41 22 0:12 / /tmp/with\\040space rw - tracefs nodev rw\n" +
		"garbage\n"
	got, err := parseTracefsMounts(strings.NewReader(in))
	if err != nil || len(got) != 2 || got[0] != "/sys/kernel/tracing" || got[1] != "/tmp/with space" {
		t.Errorf("parseTracefsMounts = %q, %v", got, err)
	}
}

// TestPrivDoorbell: an armed doorbell wakes Wait at the next fork; a
// disarmed one does not.
func TestPrivDoorbell(t *testing.T) {
	requirePerf(t)
	s, err := Open(Options{Events: []Event{{Name: "sched:sched_process_exec"}}, RingBytes: 64 << 10,
		Doorbell: "task:task_newtask"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Enable(); err != nil {
		t.Fatal(err)
	}
	s.Flush(func(*Record) {})
	if _, err := s.Arm(); err != nil {
		t.Fatal(err)
	}
	bin := testutil.UniqueTrue(t)
	done := make(chan error, 1)
	go func() { time.Sleep(50 * time.Millisecond); done <- exec.Command(bin).Run() }()
	start := time.Now()
	woken, err := s.Wait(10 * time.Second)
	if err != nil || !woken || time.Since(start) > 5*time.Second {
		t.Errorf("armed Wait: woken %v after %v, %v; want woken by the fork", woken, time.Since(start), err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := s.Disarm(); err != nil {
		t.Fatal(err)
	}
	// Disarmed, a fork does not wake Wait: the doorbells are not polled
	// (they stay enabled; their rings fill up and then drop hits). The
	// fork's wakeup is pending on its doorbell when Wait polls.
	if err := exec.Command(bin).Run(); err != nil {
		t.Fatal(err)
	}
	if woken, err := s.Wait(0); err != nil || woken {
		t.Errorf("disarmed Wait after a fork: woken %v, %v; want not woken", woken, err)
	}
}

// TestPrivDoorbellAlso: a tracepoint of DoorbellAlso rings the doorbell (the
// first one, a hung task, does not fire on a healthy host).
func TestPrivDoorbellAlso(t *testing.T) {
	requirePerf(t)
	s, err := Open(Options{Events: []Event{{Name: "sched:sched_process_exec", Filter: `filename == "/nonexistent/pofr"`}},
		RingBytes: 64 << 10, Doorbell: "sched:sched_process_hang", DoorbellAlso: []string{"sched:sched_process_exec"}})
	if err != nil {
		testutil.Skip(t, testutil.TierPriv, err.Error())
	}
	defer s.Close()
	if err := s.Enable(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Arm(); err != nil {
		t.Fatal(err)
	}
	bin := testutil.UniqueTrue(t)
	done := make(chan error, 1)
	go func() { time.Sleep(50 * time.Millisecond); done <- exec.Command(bin).Run() }()
	start := time.Now()
	woken, err := s.Wait(10 * time.Second)
	if err != nil || !woken || time.Since(start) > 5*time.Second {
		t.Errorf("armed Wait: woken %v after %v, %v; want woken by the exec", woken, time.Since(start), err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestPrivMemlockRefused opens rings larger than the locked-memory allowance
// in a child that lacks CAP_IPC_LOCK and CAP_SYS_RESOURCE (dropped from its
// bounding set by setpriv, so root loses them at exec) and has
// RLIMIT_MEMLOCK lowered to 64 KiB: Open must fail with ErrMemlock and a
// message that names the remedies, not with a bare EPERM.
func TestPrivMemlockRefused(t *testing.T) {
	if os.Getenv("POFR_TP_MEMLOCK_CHILD") == "1" {
		memlockChild(t)
		return
	}
	requirePerf(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		testutil.Skip(t, testutil.TierPriv, "setpriv (util-linux) not found")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(setpriv, "--bounding-set", "-ipc_lock,-sys_resource", "--inh-caps", "-ipc_lock,-sys_resource",
		"--", self, "-test.run", "^TestPrivMemlockRefused$", "-test.v")
	cmd.Env = append(os.Environ(), "POFR_TP_MEMLOCK_CHILD=1")
	out, err := cmd.CombinedOutput()
	t.Logf("child:\n%s", out)
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	if !bytes.Contains(out, []byte("memlock refusal ok")) {
		t.Fatal("the child did not check the refusal")
	}
}

// memlockChild is TestPrivMemlockRefused's child.
func memlockChild(t *testing.T) {
	lim := unix.Rlimit{Cur: 64 << 10, Max: 64 << 10}
	if err := unix.Setrlimit(unix.RLIMIT_MEMLOCK, &lim); err != nil {
		t.Fatal(err)
	}
	// 8 MiB per CPU is far above kernel.perf_event_mlock_kb (516 KiB per CPU
	// by default) and the 64 KiB limit.
	s, err := Open(Options{Events: []Event{{Name: "sched:sched_process_exec"}}, RingBytes: 8 << 20})
	if err == nil {
		s.Close()
		t.Fatal("Open of 8 MiB rings without CAP_IPC_LOCK under a 64 KiB RLIMIT_MEMLOCK succeeded")
	}
	if !errors.Is(err, ErrMemlock) || !strings.Contains(err.Error(), "CAP_IPC_LOCK") {
		t.Fatalf("Open: %v, want ErrMemlock naming CAP_IPC_LOCK", err)
	}
	t.Logf("memlock refusal ok: %v", err)
}

// TestNowIsClockMonotonic checks that Now, read through the runtime's clock,
// stays on CLOCK_MONOTONIC (the clock of sample times and of cn_proc's
// timestamps), between two clock_gettime(2) readings.
func TestNowIsClockMonotonic(t *testing.T) {
	for range 1000 {
		var a, b unix.Timespec
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &a)
		n := Now()
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &b)
		// The calibration's error is half its tightest bracket; allow 1 ms.
		if lo, hi := uint64(a.Nano()), uint64(b.Nano()); n+1e6 < lo || n > hi+1e6 {
			t.Fatalf("Now() = %d, want within 1 ms of [%d, %d]", n, lo, hi)
		}
	}
}
