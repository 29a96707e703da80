package bench

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseServeBanner(t *testing.T) {
	for _, tc := range []struct {
		name string
		out  string
		want ServeBanner
		ok   bool
	}{
		{"banner", "pofr-server listening on 127.0.0.1:40123\nhost key SHA256:abcDEF+/09\n",
			ServeBanner{"127.0.0.1:40123", "SHA256:abcDEF+/09"}, true},
		{"log lines around", "time=… level=INFO msg=\"generated host key\"\npofr-server listening on [::1]:2222\n" +
			"time=… level=INFO msg=ready\nhost key SHA256:xyz\npofr-server listening on 10.0.0.1:1\n",
			ServeBanner{"[::1]:2222", "SHA256:xyz"}, true},
		{"no key yet", "pofr-server listening on 127.0.0.1:1\n", ServeBanner{Addr: "127.0.0.1:1"}, false},
		{"key not a fingerprint", "pofr-server listening on 127.0.0.1:1\nhost key generated\n", ServeBanner{Addr: "127.0.0.1:1"}, false},
		{"empty", "", ServeBanner{}, false},
	} {
		got, ok := ParseServeBanner([]byte(tc.out))
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: ParseServeBanner = %+v, %v; want %+v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestMarkerIndex(t *testing.T) {
	const prefix = "pofrbench-lat-0a1b2c3d-"
	for _, tc := range []struct {
		argv string
		want int
		ok   bool
	}{
		{prefix + "0\x000.1\x00", 0, true},
		{prefix + "17\x000.1\x00", 17, true},
		{prefix + "17", 17, true}, // cut argv without a trailing NUL
		{prefix + "\x000.1\x00", 0, false},
		{prefix + "1x\x00", 0, false},
		{prefix + "-1\x00", 0, false},
		{prefix + "1234567890\x00", 0, false}, // more digits than any run spawns
		{"pofrbench-lat-ffffffff-3\x00", 0, false},
		{"/bin/sleep\x00" + prefix + "3\x00", 0, false}, // the marker must be argv[0]
		{"", 0, false},
	} {
		got, ok := MarkerIndex([]byte(tc.argv), prefix)
		if got != tc.want || ok != tc.ok {
			t.Errorf("MarkerIndex(%q) = %d, %v; want %d, %v", tc.argv, got, ok, tc.want, tc.ok)
		}
	}
	if got, ok := MarkerIndex([]byte(latencyMarker(prefix, 42)+"\x000.1\x00"), prefix); got != 42 || !ok {
		t.Errorf("MarkerIndex(latencyMarker(42)) = %d, %v; want 42, true", got, ok)
	}
}

func TestLatencyResult(t *testing.T) {
	s := time.Second
	r, cs := LatencyResult([]time.Duration{12 * s, 3 * s, 30 * s, 9 * s})
	want := Result{Name: latencyResult, N: 4, Metrics: []Metric{{9, "p50-s"}, {30, "p99-s"}, {30, "max-s"}, {100, "queryable-%"}}}
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("LatencyResult (-want +got):\n%s", diff)
	}
	if got := verdicts(cs); got != "PASS PASS" {
		t.Errorf("verdicts = %s, want PASS PASS: %v", got, cs)
	}

	// One exec never became queryable: p99 and max are infinite, so they
	// are left out of the benchmark line, and both checks miss.
	r, cs = LatencyResult([]time.Duration{2 * s, -1, 4 * s})
	want = Result{Name: latencyResult, N: 3, Metrics: []Metric{{4, "p50-s"}, {100 * 2.0 / 3, "queryable-%"}}}
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("LatencyResult with a missing exec (-want +got):\n%s", diff)
	}
	if got := verdicts(cs); got != "MISS MISS" {
		t.Errorf("verdicts = %s, want MISS MISS: %v", got, cs)
	}

	// Over the bar.
	_, cs = LatencyResult([]time.Duration{59 * s, 61 * s})
	if got := verdicts(cs); got != "MISS PASS" {
		t.Errorf("verdicts = %s, want MISS PASS: %v", got, cs)
	}

	// Nothing spawned: SKIP, not PASS.
	r, cs = LatencyResult(nil)
	if len(r.Metrics) != 0 {
		t.Errorf("LatencyResult(nil) metrics = %v, want none", r.Metrics)
	}
	if got := verdicts(cs); got != "SKIP SKIP" {
		t.Errorf("verdicts = %s, want SKIP SKIP: %v", got, cs)
	}
}

func TestLoaderResults(t *testing.T) {
	rs, cs := LoaderResults([]LoaderMeasurement{
		{Workers: 1, Rows: 400000, LoaderRowsPerSec: 90000, CeilingRowsPerSec: 100000, LoaderCPUPerMRows: 4.5, CeilingCPUPerMRows: 1.5},
		{Workers: 2, Rows: 400000, LoaderRowsPerSec: 70000, CeilingRowsPerSec: 100000, LoaderCPUPerMRows: 4.6, CeilingCPUPerMRows: 1.4},
		{Workers: 4, Rows: 400000, LoaderRowsPerSec: 70000, CeilingRowsPerSec: 0},
	})
	want := []Result{
		{Name: "Loader/workers=1", N: 400000, Metrics: []Metric{{90000, "rows/s"}, {100000, "ceiling-rows/s"}, {0.9, "ratio"},
			{4.5, "cpu-s/Mrows"}, {1.5, "ceiling-cpu-s/Mrows"}}},
		{Name: "Loader/workers=2", N: 400000, Metrics: []Metric{{70000, "rows/s"}, {100000, "ceiling-rows/s"}, {0.7, "ratio"},
			{4.6, "cpu-s/Mrows"}, {1.4, "ceiling-cpu-s/Mrows"}}},
		{Name: "Loader/workers=4", N: 400000, Metrics: []Metric{{70000, "rows/s"}, {0, "ceiling-rows/s"}, {0, "cpu-s/Mrows"}, {0, "ceiling-cpu-s/Mrows"}}},
	}
	if diff := cmp.Diff(want, rs); diff != "" {
		t.Errorf("LoaderResults (-want +got):\n%s", diff)
	}
	if got := verdicts(cs); got != "PASS MISS SKIP" {
		t.Errorf("verdicts = %s, want PASS MISS SKIP: %v", got, cs)
	}
	if !strings.Contains(cs[1].String(), "(workers=2): 0.7 × (≥ 0.8 ×)") {
		t.Errorf("check line = %q", cs[1].String())
	}
}

func TestSkipChecks(t *testing.T) {
	cs := skipChecks("a", "b")
	if got := verdicts(cs); got != "SKIP SKIP" {
		t.Fatalf("verdicts = %s", got)
	}
	if cs[0].Why != "a" || cs[1].Why != "b" || !math.IsNaN(cs[1].Got) {
		t.Errorf("skipChecks = %+v", cs)
	}
	if n := len(skipChecks("", "b")); n != 1 {
		t.Errorf("skipChecks without a loader reason: %d checks, want 1", n)
	}
}

func verdicts(cs []Check) string {
	var v []string
	for _, c := range cs {
		v = append(v, string(c.Verdict()))
	}
	return strings.Join(v, " ")
}

func TestWriteMarkdownLoader(t *testing.T) {
	rs, _ := LoaderResults([]LoaderMeasurement{
		{Workers: 1, Rows: 400000, LoaderRowsPerSec: 90000, CeilingRowsPerSec: 100000, LoaderCPUPerMRows: 5, CeilingCPUPerMRows: 1.5},
		{Workers: 2, Rows: 400000, LoaderRowsPerSec: 70000, CeilingRowsPerSec: 100000, LoaderCPUPerMRows: 4.6, CeilingCPUPerMRows: 1.4},
	})
	lat, _ := LatencyResult([]time.Duration{12 * time.Second, 3 * time.Second, 30 * time.Second})
	lat.Add(20, "window-s")
	lat.Add(15, "segment-age-s")
	lat.Add(5, "upload-s")
	lat.Add(10, "load-watch-s")
	st := Result{Name: storageResult, N: 400000}
	for _, m := range []struct {
		v    float64
		unit string
	}{{80, "db-B/row"}, {320, "db-logical-B/row"}, {90, "proc-B/row"}, {370, "proc-logical-B/row"}, {15.7, "spool-B/row"}} {
		st.Add(m.v, m.unit)
	}
	checkMarkdown(t, &Report{Machine: "m", Results: append(rs, st, lat)}, time.Unix(0, 0), "full",
		"**Loader** (400000 rows",
		"| 1 worker | 90000 | 100000 | 0.9 | 5.00 | 1.50 |",
		"| 2 workers | 70000 | 100000 | 0.7 | 4.60 | 1.40 |",
		"At 5.00 CPU s per million rows (1 worker), one core of pofr-server load verifies, decodes and sends 200000 rows/s: ≈ 66.7 busy clients",
		"**Exec → queryable** (3 marked execs spread over 20.0 s, through pofr-server serve, pofr-collector run and "+
			"pofr-server load --watch on this host; the profile's segment age 15.0 s and upload interval 5.00 s, load every 10.0 s)",
		"| exec row visible in MariaDB | 100 | 12.0 | 30.0 | 30.0 |",
		"**Database bytes per row** (400000 rows",
		"| bytes per row | 80.0 | 320 | 90.0 | 370 | – | – | – | – | 15.7 | – |")
}
