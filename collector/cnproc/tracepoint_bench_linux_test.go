package cnproc

import (
	"testing"
	"time"

	"github.com/pofr/pofr/internal/testutil"
)

// BenchmarkPrivTracepointExec puts the tracepoint capture next to the cn_proc
// capture and the cn_proc floor (a SCHED_FIFO reader that only receives the
// datagrams and reads cmdline and exe at each exec, bench.RunProcFloor), in
// one run with the conditions interleaved round by round (see
// BenchmarkPrivProcFloor for the method). One op is one round of 2,000 execs
// of /bin/true per condition. Reported per condition: µs of the collector's
// CPU per exec (this process's rusage), the extra CPU charged to the spawner
// and its children against no reader (wl-cpu-%), argv-% of the spawner's
// execs; and the medians of the per-round ratios tracepoint ÷ floor and
// tracepoint ÷ cn_proc Source.
func BenchmarkPrivTracepointExec(b *testing.B) {
	testutil.RequireRoot(b)
	forRates(b, benchTracepointExec)
}

var tpBenchConds = []string{"none", "recv-fifo+argv", "pofr", "pofr-tracepoint"}

func benchTracepointExec(b *testing.B, rate int) {
	const n = 2000
	cpu := map[string][]float64{}
	wlCPU := map[string][]float64{}
	argv := map[string][]float64{}
	var vsFloor, vsCnproc []float64
	for _, r := range floorRounds(b, tpBenchConds, n, rate) {
		for _, c := range tpBenchConds[1:] {
			cpu[c] = append(cpu[c], r[c].cpu)
			argv[c] = append(argv[c], r[c].argv)
			wlCPU[c] = append(wlCPU[c], r[c].wlCPU/r["none"].wlCPU)
		}
		vsFloor = append(vsFloor, r["pofr-tracepoint"].cpu/r["recv-fifo+argv"].cpu)
		vsCnproc = append(vsCnproc, r["pofr-tracepoint"].cpu/r["pofr"].cpu)
	}
	for _, c := range tpBenchConds[1:] {
		b.ReportMetric(testutil.Median(cpu[c]), c+"-µs/exec")
		b.ReportMetric(100*(testutil.Median(wlCPU[c])-1), c+"-wl-cpu-%")
		b.ReportMetric(testutil.Median(argv[c]), c+"-argv-%")
	}
	b.ReportMetric(testutil.Median(vsFloor), "tracepoint/floor")
	b.ReportMetric(testutil.Median(vsCnproc), "tracepoint/cnproc")
}

// BenchmarkPrivTracepointIdle measures the tracepoint capture's CPU with no
// workload of its own, against the cn_proc capture and no source at all (the
// test process's own floor), interleaved: one op is a 5 s window of each. The host's own background (other processes' forks
// wake the idle reader through the doorbell) is reported beside it.
func BenchmarkPrivTracepointIdle(b *testing.B) {
	testutil.RequireRoot(b)
	const window = 5 * time.Second
	res := map[string][]float64{}
	var bgExecs []float64
	round := 0
	for b.Loop() {
		for _, c := range testutil.Interleaved([]string{"none", "cnproc", "tracepoint"}, round) {
			var s *Source
			stop := func() {}
			if c != "none" {
				s, stop = startBenchSource(b, &benchSink{execs: map[int32][2]bool{}}, Options{Tracepoint: c == "tracepoint"})
				time.Sleep(200 * time.Millisecond) // the start-up snapshot
			}
			var e0 uint64
			if s != nil {
				e0 = s.Stats().Execs
			}
			cpu0, t0 := testutil.ProcessCPU(), time.Now()
			time.Sleep(window)
			used, el := testutil.ProcessCPU()-cpu0, time.Since(t0)
			res[c] = append(res[c], float64(used.Microseconds())/el.Seconds())
			if c == "tracepoint" {
				bgExecs = append(bgExecs, float64(s.Stats().Execs-e0)/el.Seconds())
			}
			stop()
		}
		round++
	}
	for c, v := range res {
		b.ReportMetric(testutil.Median(v), c+"-µs-cpu/s")
	}
	b.ReportMetric(testutil.Median(bgExecs), "background-exec/s")
}
