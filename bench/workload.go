package bench

import (
	"context"
	"iter"
	"math/rand/v2"
	"strconv"
	"time"
)

// paced yields 0 … n-1, one every 1/rate seconds by absolute deadlines (a
// late step is not made up by shifting the later ones), and stops early
// when ctx is done. The workloads that start things at a rate loop over it.
func paced(ctx context.Context, n int, rate float64) iter.Seq[int] {
	period := time.Duration(float64(time.Second) / rate)
	return func(yield func(int) bool) {
		next := time.Now()
		for i := range n {
			if ctx.Err() != nil || !yield(i) {
				return
			}
			next = next.Add(period)
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
		}
	}
}

// ExecConfig describes an exec storm: one child at a time, fork → exec →
// reap, the way edr-loadgen and the baselines' spawner run.
type ExecConfig struct {
	// Path is the program to run; Argv its argv (argv[0] included). An empty
	// Argv runs Path with argv [Path].
	Path string
	Argv []string
	// Rate is the target execs per second, paced by absolute deadlines so the
	// rate holds exactly when the machine keeps up. 0 runs as fast as
	// possible.
	Rate float64
	// Duration bounds the run. At a fixed rate the run makes Rate×Duration
	// execs, and takes longer when the machine cannot keep up, up to twice
	// Duration.
	Duration time.Duration
}

// ExecResult is what an exec storm did. Times are ns since the Unix epoch.
type ExecResult struct {
	Spawner  int     `json:"spawner"` // pid of the process that forked (the children's ppid)
	Spawned  int     `json:"spawned"`
	Failed   int     `json:"failed"` // children that did not exit 0 (exec failed)
	Late     int     `json:"late"`   // paced deadlines already past when reached
	Start    int64   `json:"start_ns"`
	End      int64   `json:"end_ns"`
	Rate     float64 `json:"rate"` // achieved execs per second
	LatP50   int64   `json:"lat_p50_ns"`
	LatP99   int64   `json:"lat_p99_ns"`
	SelfCPU  int64   `json:"self_cpu_ns"`  // spawner's own utime+stime over the storm
	ChildCPU int64   `json:"child_cpu_ns"` // the children's utime+stime
	PIDs     []int32 `json:"pids"`
}

// Wall returns the storm's duration.
func (r ExecResult) Wall() time.Duration { return time.Duration(r.End - r.Start) }

// ProcsConfig describes a stream of processes with chosen lifetimes, each
// carrying a marker in its argv so that a recorder's rows can be matched to
// it.
type ProcsConfig struct {
	// Path is a program taking argv [path, marker, microseconds] that lives
	// for that many microseconds and exits 0: [StaticProgram] builds one.
	Path string
	// Lifetimes are the buckets; 0 means "exit at once".
	Lifetimes []time.Duration
	// PerLifetime is how many processes each bucket gets.
	PerLifetime int
	// Rate is the number of processes started per second (they overlap; each
	// is reaped by its own waiter).
	Rate float64
	// Tag goes into every marker so that runs do not match each other.
	Tag string
}

// ProcRecord is one process a [RunProcs] stream started. Times are ns since
// the Unix epoch.
type ProcRecord struct {
	Marker   string        `json:"marker"`
	Lifetime time.Duration `json:"lifetime_ns"`
	PID      int32         `json:"pid"`
	Spawn    int64         `json:"spawn_ns"`
	Reap     int64         `json:"reap_ns"`
	OK       bool          `json:"ok"` // exited 0
}

// ProcsResult is what a [RunProcs] stream did.
type ProcsResult struct {
	Spawner int          `json:"spawner"`
	Procs   []ProcRecord `json:"procs"`
}

// Marker returns the marker for process i of a run tagged tag.
func Marker(tag string, i int) string { return "pofrbench-" + tag + "-" + strconv.Itoa(i) }

// procsPlan returns the lifetime of each process of the stream: every bucket
// PerLifetime times, shuffled within each round of one-per-bucket so that no
// bucket is tied to a phase of a poller. The shuffle is seeded, so runs with
// the same config start the same sequence.
func procsPlan(cfg ProcsConfig) []time.Duration {
	r := rand.New(rand.NewPCG(1, uint64(len(cfg.Lifetimes))))
	plan := make([]time.Duration, 0, cfg.PerLifetime*len(cfg.Lifetimes))
	for range cfg.PerLifetime {
		round := append([]time.Duration(nil), cfg.Lifetimes...)
		r.Shuffle(len(round), func(i, j int) { round[i], round[j] = round[j], round[i] })
		plan = append(plan, round...)
	}
	return plan
}

// staticSource is the program [StaticProgram] compiles: it lives for
// argv[2] microseconds (0: exits at once) and exits 0. Being static, it
// spends no time in ld.so, so its argv is visible for only its lifetime.
const staticSource = `#include <stdlib.h>
#include <time.h>
int main(int argc, char **argv) {
	long us = argc > 2 ? atol(argv[2]) : 0;
	if (us > 0) {
		struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
		while (nanosleep(&ts, &ts) != 0) {}
	}
	return 0;
}
`
