package cnproc

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pofr/pofr/bench"
	"github.com/pofr/pofr/internal/testutil"
)

// BenchmarkPrivProcFloor puts the Source's cost next to the least any
// cn_proc reader can cost on this machine, in one run, with the conditions
// interleaved so that the VM's noise hits them alike. One op is one round:
// a single spawner execs /bin/true pofr-bench n times under each condition
// in turn:
//
//   - none: no reader (the baseline for slowdown-%);
//   - recv: a reader thread that only receives the datagrams and counts
//     them, at normal priority;
//   - recv-fifo: the same as a SCHED_FIFO thread, as Source runs;
//   - recv-fifo+argv: that, plus what any recorder of argv must do at exec
//     before the process is gone: read /proc/PID/cmdline and readlink
//     /proc/PID/exe through a dirfd, into reused buffers;
//   - poll-1ms+argv: the alternative to a wakeup per event: a normal
//     thread that sleeps 1 ms, then drains the socket without blocking
//     and reads as recv-fifo+argv does;
//   - pofr: Source with its defaults.
//
// The argv readers also report how many execs kept their argv (argv-%):
// the price of not waking up at once.
//
// Per condition: µs of this process's CPU per exec (rusage; the spawner is
// another process), the spawner's slowdown (exec/s) and its extra CPU with
// its children (wl-cpu-%: where the kernel charges the sending of the
// events), each against none in the same round. The readers other than pofr
// are bench.RunProcFloor, the floor of make bench: they decode nothing but
// the event kind and pid; they are floors, not collectors.
func BenchmarkPrivProcFloor(b *testing.B) {
	testutil.RequireRoot(b)
	forRates(b, benchProcFloor)
}

// forRates runs bench with the spawner at its maximum rate, then at 1,000
// execs per second.
func forRates(b *testing.B, bench func(b *testing.B, rate int)) {
	for _, rate := range []int{0, 1000} {
		name := "rate=max"
		if rate > 0 {
			name = fmt.Sprintf("rate=%d", rate)
		}
		b.Run(name, func(b *testing.B) { bench(b, rate) })
	}
}

var procFloorConds = []string{"none", "recv", "recv-fifo", "recv-fifo+argv", "poll-1ms+argv", "pofr"}

func benchProcFloor(b *testing.B, rate int) {
	const n = 2000
	// Per round, each condition's spawner is compared with that round's
	// none: the median of those ratios follows the VM's drift less than a
	// ratio of medians would.
	cpu := map[string][]float64{}   // this process's CPU µs per exec
	rel := map[string][]float64{}   // exec/s ÷ none's
	wlCPU := map[string][]float64{} // the spawner's CPU (with its children) ÷ none's
	argv := map[string][]float64{}
	var base []float64
	for _, r := range floorRounds(b, procFloorConds, n, rate) {
		none := r["none"]
		base = append(base, none.eps)
		for _, c := range procFloorConds[1:] {
			cpu[c] = append(cpu[c], r[c].cpu)
			if strings.HasSuffix(c, "argv") || c == "pofr" {
				argv[c] = append(argv[c], r[c].argv)
			}
			rel[c] = append(rel[c], r[c].eps/none.eps)
			wlCPU[c] = append(wlCPU[c], r[c].wlCPU/none.wlCPU)
		}
	}
	b.ReportMetric(testutil.Median(base), "none-exec/s")
	for _, c := range procFloorConds[1:] {
		b.ReportMetric(testutil.Median(cpu[c]), c+"-µs/exec")
		b.ReportMetric(100*(1-testutil.Median(rel[c])), c+"-slowdown-%")
		b.ReportMetric(100*(testutil.Median(wlCPU[c])-1), c+"-wl-cpu-%")
		if v, ok := argv[c]; ok {
			b.ReportMetric(testutil.Median(v), c+"-argv-%")
		}
	}
}

type procFloorResult struct {
	eps   float64 // exec/s achieved
	wlCPU float64 // s of CPU of the spawner and its children
	cpu   float64 // µs of this process's CPU per exec
	argv  float64 // % of the spawner's execs seen with argv
}

// floorRounds runs every condition of conds once per b.Loop round,
// interleaved, and returns each round's results by condition.
func floorRounds(b *testing.B, conds []string, n, rate int) []map[string]procFloorResult {
	var rounds []map[string]procFloorResult
	for b.Loop() {
		r := map[string]procFloorResult{}
		for _, c := range testutil.Interleaved(conds, len(rounds)) {
			r[c] = procFloorRun(b, c, n, rate)
		}
		rounds = append(rounds, r)
	}
	return rounds
}

// procFloorRun spawns n execs at rate under reader condition c. (Outside
// the b.Loop body, as tarFloorRun.)
func procFloorRun(b *testing.B, c string, n, rate int) procFloorResult {
	stop := startFloorReader(b, c)
	cpu0 := testutil.ProcessCPU()
	t0 := time.Now()
	cmd := exec.Command(os.Args[0], "-test.run=^TestProcHelperSpawner$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("POFR_PROC_SPAWN=%d,%d", n, rate))
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("spawner: %v: %s", err, out)
	}
	el := time.Since(t0)
	time.Sleep(50 * time.Millisecond) // the last events
	used := testutil.ProcessCPU() - cpu0
	got, withArgv := stop()
	if c != "none" && got < n {
		b.Errorf("%s: saw %d exec events, want at least %d", c, got, n)
	}
	// wait4's rusage of the spawner includes the children it reaped.
	wl := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return procFloorResult{eps: float64(n) / el.Seconds(), wlCPU: wl.Seconds(),
		cpu: float64(used.Microseconds()) / float64(n), argv: 100 * float64(withArgv) / float64(n)}
}

// startFloorReader starts the reader of condition c and returns a function
// that stops it and returns the exec events it saw and how many of the
// spawner's kept their argv.
func startFloorReader(b *testing.B, c string) func() (int, int) {
	b.Helper()
	switch c {
	case "none":
		return func() (int, int) { return 0, 0 }
	case "pofr", "pofr-tracepoint":
		sink := &benchSink{execs: map[int32][2]bool{}}
		s, stop := startBenchSource(b, sink, Options{Tracepoint: c == "pofr-tracepoint"})
		if c == "pofr-tracepoint" && s.Mode() != ModeTracepoint {
			b.Fatalf("%s: mode %s", c, s.Mode())
		}
		return func() (int, int) {
			stop()
			k := 0
			for _, e := range sink.execs {
				if e[0] {
					k++
				}
			}
			return int(s.Stats().Execs), k
		}
	}
	o := bench.ProcFloorOptions{FIFO: strings.HasPrefix(c, "recv-fifo"), Argv: strings.HasSuffix(c, "argv"),
		Marker: []byte("pofr-bench")}
	if c == "poll-1ms+argv" {
		o.Poll = time.Millisecond
	}
	ready := make(chan struct{})
	o.Ready = func() { close(ready) }
	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		r   bench.FloorResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := bench.RunProcFloor(ctx, o)
		done <- result{r, err}
	}()
	select {
	case <-ready:
	case r := <-done:
		cancel()
		b.Fatalf("%s: %v", c, r.err)
	}
	return func() (int, int) {
		cancel()
		r := <-done
		if r.err != nil {
			b.Errorf("%s: %v", c, r.err)
		}
		if o.FIFO && r.r.Priority != "fifo" {
			b.Errorf("%s: priority %s, want fifo", c, r.r.Priority)
		}
		return r.r.Execs, r.r.ArgvMarked
	}
}
