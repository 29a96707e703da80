package bench

import (
	"bytes"
	"math"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// benchLine is the Go benchmark format as benchstat parses it: name with
// the -procs suffix, an iteration count, then value–unit pairs.
var benchLine = regexp.MustCompile(`^Benchmark[^\s]+-2\s+\d+(\s+-?[0-9.]+(e[-+]?\d+)?\s+[^\s]+)+\n$`)

func TestWriteBench(t *testing.T) {
	r := Result{Name: "Exec/rate=1000/auditd", N: 20000}
	r.Add(52.13, "cpu-us/exec")
	r.Add(math.NaN(), "dropped")
	r.Add(0.0042, "lost-%")
	r.Add(1459.7, "exec/s")
	var b bytes.Buffer
	if err := WriteBench(&b, r, 2); err != nil {
		t.Fatal(err)
	}
	line := b.String()
	if !benchLine.MatchString(line) {
		t.Errorf("line %q is not Go benchmark format", line)
	}
	got := strings.Fields(line)
	want := []string{"BenchmarkExec/rate=1000/auditd-2", "20000", "52.1", "cpu-us/exec", "0.0042", "lost-%", "1460", "exec/s"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}
}

func TestFormatValue(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 1234.5: "1234", 52.13: "52.1", 3.14159: "3.14", 0.012345: "0.0123", -7.5: "-7.50"} {
		if got := FormatValue(v); got != want {
			t.Errorf("FormatValue(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestAggregate(t *testing.T) {
	mk := func(name string, v float64) Result {
		r := Result{Name: name, N: 1}
		r.Add(v, "cpu-us/exec")
		return r
	}
	rs := []Result{mk("A", 3), mk("B", 10), mk("A", 1), mk("A", 2), mk("B", 20)}
	got := Aggregate(rs)
	want := []Summary{
		{Name: "A", Unit: "cpu-us/exec", Median: 2, Min: 1, Max: 3, Runs: 3},
		{Name: "B", Unit: "cpu-us/exec", Median: 15, Min: 10, Max: 20, Runs: 2},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Aggregate (-want +got):\n%s", diff)
	}
	if s := got[0].String(); s != "2.00 [1.00–3.00]" {
		t.Errorf("Summary.String() = %q", s)
	}
	if _, ok := Find(got, "B", "cpu-us/exec"); !ok {
		t.Error("Find(B) found nothing")
	}
	if _, ok := Find(got, "C", "cpu-us/exec"); ok {
		t.Error("Find(C) found something")
	}
}

func TestMedianPercentile(t *testing.T) {
	if m := Median(nil); !math.IsNaN(m) {
		t.Errorf("Median(nil) = %v, want NaN", m)
	}
	in := []float64{5, 1, 4, 2, 3}
	if m := Median(in); m != 3 {
		t.Errorf("Median = %v, want 3", m)
	}
	if in[0] != 5 {
		t.Error("Median sorted its argument")
	}
	lat := []int64{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}
	for p, want := range map[float64]int64{50: 50, 99: 100, 0: 10, 10: 10, 11: 20} {
		if got := Percentile(lat, p); got != want {
			t.Errorf("Percentile(%v) = %d, want %d", p, got, want)
		}
	}
	if !math.IsNaN(Ratio(1, 0)) || !math.IsNaN(Percent(1, 0)) || Ratio(1, 4) != 0.25 || Percent(1, 4) != 25 {
		t.Error("Ratio/Percent wrong")
	}
}

func TestCheck(t *testing.T) {
	cases := []struct {
		c    Check
		want Verdict
	}{
		{Check{Got: 30, Limit: 64, AtMost: true}, Pass},
		{Check{Got: 70, Limit: 64, AtMost: true}, Miss},
		{Check{Got: 170, Limit: 100, AtMost: true, Budget: true}, Fail},
		{Check{Got: 99.5, Limit: 99}, Pass},
		{Check{Got: 98, Limit: 99}, Miss},
		{Check{Got: math.NaN(), Limit: 99, Budget: true}, Skip},
	}
	for _, c := range cases {
		if got := c.c.Verdict(); got != c.want {
			t.Errorf("%+v: Verdict() = %s, want %s", c.c, got, c.want)
		}
	}
	var b bytes.Buffer
	failed, err := WriteChecks(&b, []Check{
		{Name: "collector RSS", Got: 31.2, Limit: 64, AtMost: true, Unit: "MB"},
		{Name: "just over", Got: 64.03, Limit: 64, AtMost: true, Unit: "MB"},
		{Name: "budget", Got: 500, Limit: 400, AtMost: true, Unit: "MB", Budget: true},
		{Name: "loader", Got: math.NaN(), Why: "not wired"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !failed {
		t.Error("WriteChecks did not report the FAIL")
	}
	want := "PASS collector RSS: 31.2 MB (≤ 64 MB)\nMISS just over: 64.03 MB (≤ 64 MB)\nFAIL budget: 500 MB (≤ 400 MB)\nSKIP loader: not wired\n"
	if got := b.String(); got != want {
		t.Errorf("WriteChecks wrote\n%s\nwant\n%s", got, want)
	}
}
