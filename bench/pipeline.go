package bench

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// LoaderMeasurement is one worker count of the loader benchmark (the fields
// of LoadResult the report uses): the loader against the ceiling,
// a plain LOAD DATA LOCAL of the same rows pre-rendered as text into the
// same tables with the same indexes.
type LoaderMeasurement struct {
	Workers           int
	Rows              int64
	LoaderRowsPerSec  float64
	CeilingRowsPerSec float64
	// LoaderCPUPerMRows and CeilingCPUPerMRows are CPU seconds (user +
	// system) of the loading process per million rows.
	LoaderCPUPerMRows, CeilingCPUPerMRows float64
}

// LoaderRatioTarget is the loader's target: ≥ 0.8× the plain LOAD DATA.
const LoaderRatioTarget = 0.8

// loaderCheckName names the ratio check of one worker count.
func loaderCheckName(workers int) string {
	return fmt.Sprintf("loader rows/s ≥ 0.8× plain LOAD DATA (workers=%d)", workers)
}

// LoaderResults turns loader measurements into results
// ("Loader/workers=N") and one ratio check per worker count.
func LoaderResults(ms []LoaderMeasurement) ([]Result, []Check) {
	var rs []Result
	var cs []Check
	for _, m := range ms {
		r := Result{Name: fmt.Sprintf("Loader/workers=%d", m.Workers), N: int(m.Rows)}
		ratio := Ratio(m.LoaderRowsPerSec, m.CeilingRowsPerSec)
		r.Add(m.LoaderRowsPerSec, "rows/s")
		r.Add(m.CeilingRowsPerSec, "ceiling-rows/s")
		r.Add(ratio, "ratio")
		r.Add(m.LoaderCPUPerMRows, "cpu-s/Mrows")
		r.Add(m.CeilingCPUPerMRows, "ceiling-cpu-s/Mrows")
		rs = append(rs, r)
		cs = append(cs, Check{Name: loaderCheckName(m.Workers), Got: ratio, Limit: LoaderRatioTarget, Unit: "×",
			Why: "the ceiling was not measured"})
	}
	return rs, cs
}

// LatencyTarget is the bar for exec → queryable at the 99th percentile.
const LatencyTarget = 60 * time.Second

// Latency names of the pipeline result and checks.
const (
	latencyResult    = "Pipeline/exec-to-queryable"
	latencyCheckName = "exec → queryable p99 ≤ 60 s (default intervals)"
	queryableCheck   = "marked execs queryable in MariaDB = 100 %"
)

// storageResult names the database bytes per row result (LoaderBench.storage).
const storageResult = "Loader/storage"

// LatencyResult summarises exec → queryable latencies: one per marked exec,
// negative for an exec whose row never became visible before the deadline.
// An unseen exec counts as infinitely late, so that p99 is a miss when any
// exec is missing from a small sample.
func LatencyResult(lat []time.Duration) (Result, []Check) {
	r := Result{Name: latencyResult, N: len(lat)}
	secs := make([]float64, 0, len(lat))
	seen := 0
	for _, d := range lat {
		if d < 0 {
			secs = append(secs, math.Inf(1))
			continue
		}
		seen++
		secs = append(secs, d.Seconds())
	}
	p50, p99, worst := math.NaN(), math.NaN(), math.NaN()
	if len(secs) > 0 {
		p50, p99, worst = Percentile(secs, 50), Percentile(secs, 99), Percentile(secs, 100)
	}
	r.Add(p50, "p50-s")
	r.Add(p99, "p99-s")
	r.Add(worst, "max-s")
	r.Add(Percent(seen, len(lat)), "queryable-%")
	return r, []Check{
		{Name: latencyCheckName, Got: p99, Limit: LatencyTarget.Seconds(), AtMost: true, Unit: "s", Why: "no marked exec was spawned"},
		{Name: queryableCheck, Got: Percent(seen, len(lat)), Limit: 100, Unit: "%", Why: "no marked exec was spawned"},
	}
}

// skipChecks returns the loader and latency checks as SKIPs with a reason,
// for a run where they could not be measured.
func skipChecks(loader, latency string) []Check {
	var cs []Check
	if loader != "" {
		cs = append(cs, Check{Name: "loader rows/s ≥ 0.8× plain LOAD DATA", Got: math.NaN(), Why: loader})
	}
	if latency != "" {
		cs = append(cs, Check{Name: latencyCheckName, Got: math.NaN(), Why: latency})
	}
	return cs
}

// ServeBanner is what pofr-server serve prints when it listens:
//
//	pofr-server listening on 127.0.0.1:40123
//	host key SHA256:…
type ServeBanner struct {
	Addr        string
	Fingerprint string
}

// ParseServeBanner reads the listening address and the host key
// fingerprint from pofr-server serve's output (log lines may be mixed in).
// ok is false until both have been printed.
func ParseServeBanner(out []byte) (b ServeBanner, ok bool) {
	for line := range strings.SplitSeq(string(out), "\n") {
		line = strings.TrimSpace(line)
		if v, found := strings.CutPrefix(line, "pofr-server listening on "); found && b.Addr == "" {
			b.Addr = strings.TrimSpace(v)
		}
		if v, found := strings.CutPrefix(line, "host key "); found && b.Fingerprint == "" && strings.HasPrefix(v, "SHA256:") {
			b.Fingerprint = strings.TrimSpace(v)
		}
	}
	return b, b.Addr != "" && b.Fingerprint != ""
}

// latencyMarker returns the argv[0] of the i-th marked exec of a run: a
// prefix unique to the run and the index.
func latencyMarker(prefix string, i int) string {
	return prefix + strconv.Itoa(i)
}

// MarkerIndex returns the index of a marked exec from an argv as stored
// (each argument followed by a NUL byte), when argv[0] is prefix followed by
// a decimal index.
func MarkerIndex(argv []byte, prefix string) (int, bool) {
	arg0, _, _ := bytes.Cut(argv, []byte{0})
	rest, ok := bytes.CutPrefix(arg0, []byte(prefix))
	if !ok || len(rest) == 0 || len(rest) > 9 {
		return 0, false
	}
	n := 0
	for _, c := range rest {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
