package bench

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseStat(t *testing.T) {
	// comm with spaces and parentheses, as a process can name itself.
	line := "4242 (a) b (c) S 17 4242 4242 0 -1 4194560 100 0 0 0 123 45 6 7 20 0 9 0 98765 1000000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	got, err := ParseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := Stat{PID: 4242, Comm: "a) b (c", State: 'S', PPID: 17, UTime: 1230 * time.Millisecond, STime: 450 * time.Millisecond, Threads: 9, StartTime: 98765}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseStat (-want +got):\n%s", diff)
	}
	if got.CPU() != 1680*time.Millisecond {
		t.Errorf("CPU() = %v, want 1.68s", got.CPU())
	}
}

func TestParseStatRejects(t *testing.T) {
	for _, in := range []string{
		"",
		"12 (x",
		"12 (x) S 1 2 3",
		"x (y) S 1 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5 0 0",
		"12 (y) S 1 1 1 0 -1 0 0 0 0 0 one 1 0 0 20 0 1 0 5 0 0",
	} {
		if s, err := ParseStat([]byte(in)); err == nil {
			t.Errorf("ParseStat(%q) = %+v, want an error", in, s)
		}
	}
}

func TestParseStatus(t *testing.T) {
	in := "Name:\tpofr-collector\nVmPeak:\t  900000 kB\nVmHWM:\t   30720 kB\nVmRSS:\t   20480 kB\nThreads:\t7\n"
	got, err := ParseStatus([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Memory{RSS: 20 << 20, HWM: 30 << 20}); got != want {
		t.Errorf("ParseStatus = %+v, want %+v", got, want)
	}
	// A kernel thread has no Vm lines.
	got, err = ParseStatus([]byte("Name:\tkauditd\nThreads:\t1\n"))
	if err != nil || got != (Memory{}) {
		t.Errorf("ParseStatus(kernel thread) = %+v, %v; want zero, nil", got, err)
	}
	if _, err := ParseStatus([]byte("VmHWM:\t12 MB\n")); err == nil {
		t.Error("ParseStatus accepted a unit other than kB")
	}
}

// writeProc writes a fixture /proc entry.
func writeProc(t *testing.T, root string, pid int, stat, status string) {
	t.Helper()
	dir := filepath.Join(root, itoa(pid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]string{"stat": stat, "status": status} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestProcFS(t *testing.T) {
	root := t.TempDir()
	writeProc(t, root, 30, "30 (kauditd) S 2 0 0 0 -1 0 0 0 0 0 4 96 0 0 20 0 1 0 12 0 0\n", "Name:\tkauditd\n")
	writeProc(t, root, 31, "31 (kauditd) S 1 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 12 0 0\n", "Name:\tkauditd\n") // not a kthread
	writeProc(t, root, 500, "500 (auditd) S 1 0 0 0 -1 0 0 0 0 0 10 20 0 0 20 0 2 0 99 0 0\n", "VmHWM:\t2048 kB\nVmRSS:\t1024 kB\n")
	os.MkdirAll(filepath.Join(root, "self"), 0o755)
	p := ProcFS(root)

	pid, err := p.KernelThread("kauditd")
	if err != nil || pid != 30 {
		t.Errorf("KernelThread(kauditd) = %d, %v; want 30", pid, err)
	}
	if _, err := p.KernelThread("nosuch"); !errors.Is(err, ErrNoProcess) {
		t.Errorf("KernelThread(nosuch) error = %v, want ErrNoProcess", err)
	}
	s, err := p.Sample(500)
	if err != nil {
		t.Fatal(err)
	}
	if s.CPU != 300*time.Millisecond || s.Mem != (Memory{RSS: 1 << 20, HWM: 2 << 20}) {
		t.Errorf("Sample(500) = %+v, want CPU 300ms, RSS 1 MiB, HWM 2 MiB", s)
	}
	if _, err := p.Stat(777); !errors.Is(err, ErrNoProcess) {
		t.Errorf("Stat(777) error = %v, want ErrNoProcess", err)
	}
}

func TestProcFSSelf(t *testing.T) {
	s, err := ProcFS("/proc").Sample(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.Mem.HWM <= 0 || s.Mem.HWM < s.Mem.RSS {
		t.Errorf("own memory %+v: want HWM > 0 and HWM ≥ RSS", s.Mem)
	}
}

// TestRunTime: the run time is the sum of the live threads' schedstat to the
// nanosecond, and a window in which a thread exited is reported as unknown.
func TestRunTime(t *testing.T) {
	root := t.TempDir()
	write := func(tid int, stat string) {
		d := filepath.Join(root, "42", "task", strconv.Itoa(tid))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "schedstat"), []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(42, "1000000 5 3\n")
	write(43, "2500 0 1\n")
	old, err := ProcFS(root).RunTime(42)
	if err != nil {
		t.Fatal(err)
	}
	if old.CPU != 1002500 || len(old.TIDs) != 2 {
		t.Fatalf("RunTime = %+v, want 1002500 ns in 2 threads", old)
	}
	write(42, "1700000 5 3\n")
	write(44, "300 0 1\n") // a new thread: all of it is in the window
	now, err := ProcFS(root).RunTime(42)
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := now.Since(old); !ok || d != 700300 {
		t.Errorf("Since = %v, %v; want 700.3µs, true", d, ok)
	}
	if err := os.RemoveAll(filepath.Join(root, "42", "task", "43")); err != nil {
		t.Fatal(err)
	}
	now, err = ProcFS(root).RunTime(42)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := now.Since(old); ok {
		t.Error("Since is known although thread 43 exited")
	}
	write(45, "garbage\n")
	if _, err := ProcFS(root).RunTime(42); err == nil {
		t.Error("a malformed schedstat gave no error")
	}
	if _, err := ProcFS(root).RunTime(7); !errors.Is(err, ErrNoProcess) {
		t.Errorf("missing process: %v, want ErrNoProcess", err)
	}
	// The live system: this process has run.
	if rt, err := ProcFS("/proc").RunTime(os.Getpid()); err != nil || rt.CPU <= 0 {
		t.Errorf("RunTime(self) = %+v, %v", rt, err)
	}
}
