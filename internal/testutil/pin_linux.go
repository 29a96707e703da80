package testutil

import (
	"os/exec"
	"runtime"

	"golang.org/x/sys/unix"
)

// StartPinned starts cmd; with cpu ≥ 0, from a thread allowed only on that
// CPU, whose affinity the child and all its threads inherit. Tests use it to
// put load on one CPU's ring or queue.
func StartPinned(cmd *exec.Cmd, cpu int) error {
	if cpu < 0 {
		return cmd.Start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var saved, one unix.CPUSet
	if err := unix.SchedGetaffinity(0, &saved); err != nil {
		return err
	}
	one.Set(cpu)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		return err
	}
	defer unix.SchedSetaffinity(0, &saved)
	return cmd.Start()
}

// RunPinned runs cmd to its end, started as StartPinned does.
func RunPinned(cmd *exec.Cmd, cpu int) error {
	if err := StartPinned(cmd, cpu); err != nil {
		return err
	}
	return cmd.Wait()
}
