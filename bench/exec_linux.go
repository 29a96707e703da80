package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// nullAttr opens /dev/null and returns the attributes of a child that gets
// it as stdin, stdout and stderr, and an empty environment; the caller
// closes the file once its children are started.
func nullAttr() (*syscall.ProcAttr, *os.File, error) {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", os.DevNull, err)
	}
	fd := null.Fd()
	return &syscall.ProcAttr{Env: []string{}, Files: []uintptr{fd, fd, fd}}, null, nil
}

// RunExec runs the storm described by cfg in this process. The children get
// /dev/null as stdin, stdout and stderr, and an empty environment.
func RunExec(ctx context.Context, cfg ExecConfig) (ExecResult, error) {
	argv := cfg.Argv
	if len(argv) == 0 {
		argv = []string{cfg.Path}
	}
	attr, null, err := nullAttr()
	if err != nil {
		return ExecResult{}, err
	}
	defer null.Close()
	want := 0
	var period time.Duration
	if cfg.Rate > 0 {
		want = int(cfg.Rate * cfg.Duration.Seconds())
		period = time.Duration(float64(time.Second) / cfg.Rate)
	}

	var ru0, ru1, cu0, cu1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &cu0)
	res := ExecResult{Spawner: os.Getpid(), PIDs: make([]int32, 0, max(want, 1024))}
	lat := make([]int64, 0, cap(res.PIDs))
	start := time.Now()
	end := start.Add(cfg.Duration)
	if want > 0 {
		end = start.Add(2 * cfg.Duration)
	}
	next := start
	for ctx.Err() == nil {
		if want > 0 && res.Spawned >= want || !time.Now().Before(end) {
			break
		}
		t := time.Now()
		pid, err := syscall.ForkExec(cfg.Path, argv, attr)
		if err != nil {
			return res, fmt.Errorf("fork/exec %s: %w", cfg.Path, err)
		}
		ws, err := wait(pid)
		if err != nil {
			return res, err
		}
		lat = append(lat, int64(time.Since(t)))
		res.PIDs = append(res.PIDs, int32(pid))
		res.Spawned++
		if !ws.Exited() || ws.ExitStatus() != 0 {
			res.Failed++
		}
		if period > 0 {
			next = next.Add(period)
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			} else {
				res.Late++
			}
		}
	}
	stop := time.Now()
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &cu1)
	res.Start, res.End = start.UnixNano(), stop.UnixNano()
	res.Rate = float64(res.Spawned) / stop.Sub(start).Seconds()
	res.LatP50 = Percentile(lat, 50)
	res.LatP99 = Percentile(lat, 99)
	res.SelfCPU = int64(rusageCPU(&ru1) - rusageCPU(&ru0))
	res.ChildCPU = int64(rusageCPU(&cu1) - rusageCPU(&cu0))
	return res, ctx.Err()
}

// wait reaps pid, retrying on EINTR.
func wait(pid int) (syscall.WaitStatus, error) {
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return ws, fmt.Errorf("wait for pid %d: %w", pid, err)
		}
		return ws, nil
	}
}

func rusageCPU(ru *syscall.Rusage) time.Duration {
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
