package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ClockTick is USER_HZ, the unit of utime, stime and starttime in
// /proc/PID/stat: 10 ms on every architecture pofr supports.
const ClockTick = 10 * time.Millisecond

// ErrNoProcess reports that a process named by pid or name does not exist.
var ErrNoProcess = errors.New("bench: no such process")

// Stat is what the harness reads from /proc/PID/stat. The CPU times are the
// kernel's own accounting for the whole thread group: every live thread plus
// the threads that have already exited (not the children).
type Stat struct {
	PID       int
	Comm      string
	State     byte
	PPID      int
	UTime     time.Duration // user CPU, field 14
	STime     time.Duration // system CPU, field 15
	Threads   int           // field 20
	StartTime uint64        // clock ticks since boot, field 22
}

// CPU returns user plus system time.
func (s Stat) CPU() time.Duration { return s.UTime + s.STime }

// ParseStat decodes the contents of /proc/PID/stat. The command name may
// hold spaces and parentheses, so the fields are counted from the last ')'.
func ParseStat(b []byte) (Stat, error) {
	open := bytes.IndexByte(b, '(')
	close := bytes.LastIndexByte(b, ')')
	if open < 0 || close < open {
		return Stat{}, fmt.Errorf("parse stat %.40q: no command name", b)
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return Stat{}, fmt.Errorf("parse stat %.40q: pid: %w", b, err)
	}
	f := strings.Fields(string(b[close+1:]))
	// f[0] is field 3 (state); field k is f[k-3].
	if len(f) < 20 {
		return Stat{}, fmt.Errorf("parse stat %.40q: %d fields after the command name, want at least 20", b, len(f))
	}
	num := func(k int) (uint64, error) {
		v, err := strconv.ParseUint(f[k-3], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse stat %.40q: field %d: %w", b, k, err)
		}
		return v, nil
	}
	s := Stat{PID: pid, Comm: string(b[open+1 : close])}
	if len(f[0]) != 1 {
		return Stat{}, fmt.Errorf("parse stat %.40q: state %q", b, f[0])
	}
	s.State = f[0][0]
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return Stat{}, fmt.Errorf("parse stat %.40q: ppid: %w", b, err)
	}
	s.PPID = ppid
	ut, err := num(14)
	if err != nil {
		return Stat{}, err
	}
	st, err := num(15)
	if err != nil {
		return Stat{}, err
	}
	th, err := num(20)
	if err != nil {
		return Stat{}, err
	}
	s.StartTime, err = num(22)
	if err != nil {
		return Stat{}, err
	}
	s.UTime = time.Duration(ut) * ClockTick
	s.STime = time.Duration(st) * ClockTick
	s.Threads = int(th)
	return s, nil
}

// Memory is the process's resident set from /proc/PID/status.
type Memory struct {
	RSS int64 // VmRSS in bytes: resident now
	HWM int64 // VmHWM in bytes: peak resident set since start
}

// ParseStatus decodes VmRSS and VmHWM from the contents of /proc/PID/status.
// A kernel thread has neither; its Memory is zero.
func ParseStatus(b []byte) (Memory, error) {
	var m Memory
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return Memory{}, fmt.Errorf("parse status: %s: %q", key, val)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return Memory{}, fmt.Errorf("parse status: %s: %w", key, err)
		}
		if key == "VmRSS" {
			m.RSS = kb << 10
		} else {
			m.HWM = kb << 10
		}
	}
	return m, sc.Err()
}

// Sample is one reading of a process's kernel accounting.
type Sample struct {
	At  time.Time
	CPU time.Duration // utime + stime of all threads
	Mem Memory
}

// ProcFS reads process accounting under a proc root, "/proc" on a live
// system; tests point it at a fixture tree.
type ProcFS string

// Stat reads and parses root/PID/stat. A process that does not exist
// gives an error wrapping ErrNoProcess.
func (p ProcFS) Stat(pid int) (Stat, error) {
	b, err := os.ReadFile(filepath.Join(string(p), strconv.Itoa(pid), "stat"))
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, errESRCH) {
		return Stat{}, fmt.Errorf("read stat of pid %d: %w", pid, ErrNoProcess)
	}
	if err != nil {
		return Stat{}, fmt.Errorf("read stat of pid %d: %w", pid, err)
	}
	return ParseStat(b)
}

// Sample reads the CPU time and memory of pid now.
func (p ProcFS) Sample(pid int) (Sample, error) {
	at := time.Now()
	s, err := p.Stat(pid)
	if err != nil {
		return Sample{}, err
	}
	b, err := os.ReadFile(filepath.Join(string(p), strconv.Itoa(pid), "status"))
	if err != nil {
		return Sample{}, fmt.Errorf("read status of pid %d: %w", pid, err)
	}
	m, err := ParseStatus(b)
	if err != nil {
		return Sample{}, fmt.Errorf("read status of pid %d: %w", pid, err)
	}
	return Sample{At: at, CPU: s.CPU(), Mem: m}, nil
}

// KernelThread returns the pid of the kernel thread named comm (a child of
// kthreadd, pid 2), such as "kauditd".
func (p ProcFS) KernelThread(comm string) (int, error) {
	ents, err := os.ReadDir(string(p))
	if err != nil {
		return 0, fmt.Errorf("find kernel thread %s: %w", comm, err)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		s, err := p.Stat(pid)
		if err != nil {
			continue
		}
		if s.Comm == comm && s.PPID == 2 {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("find kernel thread %s: %w", comm, ErrNoProcess)
}

// RunTime is the CPU time of a process's live threads to the nanosecond
// (the first field of each /proc/PID/task/TID/schedstat) and their tids.
// /proc/PID/stat counts in clock ticks (10 ms), which over a 30 s window of
// an idle collector is a third of the 0.1 % bar; RunTime misses only what
// threads that have exited used, which the caller sees as a changed tid set.
type RunTime struct {
	CPU  time.Duration
	TIDs []int // sorted
}

// RunTime reads the run time of pid's live threads.
func (p ProcFS) RunTime(pid int) (RunTime, error) {
	dir := filepath.Join(string(p), strconv.Itoa(pid), "task")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, errESRCH) {
		return RunTime{}, fmt.Errorf("read threads of pid %d: %w", pid, ErrNoProcess)
	}
	if err != nil {
		return RunTime{}, fmt.Errorf("read threads of pid %d: %w", pid, err)
	}
	var rt RunTime
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "schedstat"))
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, errESRCH) {
			continue // exited since the listing
		}
		if err != nil {
			return RunTime{}, fmt.Errorf("read run time of pid %d: %w", pid, err)
		}
		f := strings.Fields(string(b))
		if len(f) != 3 {
			return RunTime{}, fmt.Errorf("read run time of pid %d: schedstat %q", pid, b)
		}
		ns, err := strconv.ParseUint(f[0], 10, 63)
		if err != nil {
			return RunTime{}, fmt.Errorf("read run time of pid %d: schedstat %q", pid, b)
		}
		rt.CPU += time.Duration(ns)
		rt.TIDs = append(rt.TIDs, tid)
	}
	sort.Ints(rt.TIDs)
	return rt, nil
}

// Since returns the CPU the threads of rt used since old, and false when a
// thread of old has exited (its time since old is then unknown).
func (rt RunTime) Since(old RunTime) (time.Duration, bool) {
	i := 0
	for _, tid := range old.TIDs {
		for i < len(rt.TIDs) && rt.TIDs[i] < tid {
			i++
		}
		if i == len(rt.TIDs) || rt.TIDs[i] != tid {
			return 0, false
		}
	}
	return rt.CPU - old.CPU, true
}
