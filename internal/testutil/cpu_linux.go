package testutil

import (
	"time"

	"golang.org/x/sys/unix"
)

// ProcessCPU is the CPU time (user + system) this process has used, not its
// children's: with the workload in child processes, that is the cost of the
// code under test. Benchmarks report the difference over what they measure.
func ProcessCPU() time.Duration { return cpuTime(unix.RUSAGE_SELF) }

// ThreadCPU is the CPU time (user + system) the calling thread has used;
// the caller locks its goroutine to the thread around what it measures.
func ThreadCPU() time.Duration { return cpuTime(unix.RUSAGE_THREAD) }

func cpuTime(who int) time.Duration {
	var ru unix.Rusage
	_ = unix.Getrusage(who, &ru) // fails only for a bad who
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
