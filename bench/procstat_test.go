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
