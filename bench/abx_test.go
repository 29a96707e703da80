package bench

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestABOrderRotates(t *testing.T) {
	conds := []string{"a", "b", "c", "d"}
	first := map[string]int{}
	for rep := range 8 {
		o := abOrder(conds, rep)
		if got := slices.Sorted(slices.Values(o)); !slices.Equal(got, conds) {
			t.Fatalf("rep %d: order %v is not a permutation of %v", rep, o, conds)
		}
		first[o[0]]++
	}
	// Every condition leads equally often.
	for _, c := range conds {
		if first[c] != 2 {
			t.Errorf("%s first in %d of 8 repetitions, want 2", c, first[c])
		}
	}
	if got := abOrder(conds, 1); !slices.Equal(got, []string{"b", "c", "d", "a"}) {
		t.Errorf("abOrder(rep 1) = %v", got)
	}
}

func TestPairedDelta(t *testing.T) {
	nan := math.NaN()
	base := []float64{100, 110, 90, 200, 100, nan}
	// Deltas per repetition: 10, 5, 30, 0 (the 200 µs outlier cancels in
	// its pair), 20; the last repetition has no base and does not count.
	cond := []float64{110, 115, 120, 200, 120, 500}
	d := PairedDelta(base, cond)
	if d.N != 5 || d.Median != 10 || d.Q1 != 5 || d.Q3 != 20 || d.IQR() != 15 {
		t.Errorf("PairedDelta = %+v, want N 5, median 10, Q1 5, Q3 20", d)
	}
	if got, want := d.String(), "+10.0 [+5.0 … +20.0]"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	// Interpolated quartiles of an even count: 1, 2, 3, 4.
	d = PairedDelta([]float64{0, 0, 0, 0}, []float64{4, 1, 3, 2})
	if d.Median != 2.5 || d.Q1 != 1.75 || d.Q3 != 3.25 {
		t.Errorf("PairedDelta(1..4) = %+v, want median 2.5, Q1 1.75, Q3 3.25", d)
	}
	if d := PairedDelta([]float64{nan}, []float64{1}); d.N != 0 || !math.IsNaN(d.Median) || d.String() != "–" {
		t.Errorf("PairedDelta with no pair = %+v (%s), want N 0 and NaN", d, d)
	}
	if d := PairedDelta([]float64{1, 2}, []float64{-3}); d.N != 1 || d.Median != -4 || d.Q1 != -4 {
		t.Errorf("PairedDelta of one pair = %+v, want all -4", d)
	}
}

func TestExecABCheck(t *testing.T) {
	auditd := DeltaStats{N: 6, Median: 60, Q1: 50, Q3: 70}
	cnproc := DeltaStats{N: 6, Median: 30, Q1: 25, Q3: 35}
	quiet := DeltaStats{N: 6, Median: 0.5, Q1: -3, Q3: 4}
	for _, tc := range []struct {
		name              string
		collector, auditd DeltaStats
		control           DeltaStats
		want              Verdict
		got               float64
		why               string
	}{
		{"pass", DeltaStats{N: 6, Median: 6, Q1: 2, Q3: 9}, auditd, quiet, Pass, 0.1, ""},
		{"miss", DeltaStats{N: 6, Median: 30, Q1: 20, Q3: 40}, auditd, quiet, Miss, 0.5, ""},
		{"exactly at the bar", DeltaStats{N: 6, Median: 15}, auditd, quiet, Pass, 0.25, ""},
		// A collector that costs nothing measurable passes: a negative
		// ratio is noise around zero.
		{"collector below noise", DeltaStats{N: 6, Median: -2, Q1: -8, Q3: 4}, auditd, quiet, Pass, -2.0 / 60, ""},
		{"auditd around zero", DeltaStats{N: 6, Median: 6}, DeltaStats{N: 6, Median: 20, Q1: -5, Q3: 40}, quiet, Undecided, 0.3, "not clearly above noise"},
		{"auditd spread too wide", DeltaStats{N: 6, Median: 1}, DeltaStats{N: 6, Median: 20, Q1: 5, Q3: 40}, quiet, Undecided, 0.05, "not clearly above noise"},
		{"too few pairs", DeltaStats{N: 3, Median: 6}, DeltaStats{N: 3, Median: 60, Q1: 50, Q3: 70}, quiet, Undecided, 0.1, "fewer than 4"},
		{"auditd within the A/A control's noise", DeltaStats{N: 6, Median: 1}, DeltaStats{N: 6, Median: 12, Q1: 8, Q3: 14},
			DeltaStats{N: 6, Median: 2, Q1: -6, Q3: 9}, Undecided, 1.0 / 12, "overlaps the A/A control's +2.0 [-6.0 … +9.0]"},
		{"no A/A control", DeltaStats{N: 6, Median: 6, Q1: 3, Q3: 12}, auditd, DeltaStats{}, Pass, 0.1, "quartiles give 0.05 … 0.2 ×"},
		{"collector not measured", DeltaStats{}, auditd, quiet, Skip, math.NaN(), ""},
		{"auditd not measured", DeltaStats{N: 6, Median: 6}, DeltaStats{}, quiet, Skip, math.NaN(), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ExecABCheck(tc.collector, cnproc, tc.auditd, tc.control)
			if v := c.Verdict(); v != tc.want {
				t.Errorf("verdict %s, want %s: %s", v, tc.want, c)
			}
			if math.IsNaN(tc.got) != math.IsNaN(c.Got) || !math.IsNaN(tc.got) && math.Abs(c.Got-tc.got) > 1e-9 {
				t.Errorf("ratio %v, want %v", c.Got, tc.got)
			}
			s := c.String()
			if !strings.HasPrefix(s, string(tc.want)+" ") || !strings.Contains(s, tc.why) {
				t.Errorf("line %q: want verdict %s and %q", s, tc.want, tc.why)
			}
			if hasControl := strings.Contains(s, "A/A control (no observer in either block): "); tc.want != Skip && hasControl != (tc.control.N > 0) {
				t.Errorf("line %q: A/A control shown %v, want %v", s, hasControl, tc.control.N > 0)
			}
			if tc.want != Skip && !strings.Contains(s, "cn_proc): +30.0 [+25.0 … +35.0] µs/exec, "+checkValue(30/tc.auditd.Median)+" ×") {
				t.Errorf("line %q lacks the cn_proc collector's ratio", s)
			}
		})
	}
}

func TestIdleCheck(t *testing.T) {
	for _, tc := range []struct {
		name         string
		core         float64
		execs, files int
		want         Verdict
		context      string
	}{
		{"idle host, pass", 0.04, 2, 5, Pass, "2 exec + 5 file events in 30.0 s (0.233/s)"},
		{"idle host, miss", 0.5, 0, 0, Miss, "0 exec + 0 file events"},
		{"busy host, undecided even when over the bar", 2.5, 78, 1195, Undecided, "the host was not idle: 42.4 events/s > 1.00/s"},
		{"busy host, undecided even when under the bar", 0.05, 60, 0, Undecided, "not idle"},
		{"not measured", math.NaN(), 0, 0, Skip, "not measured"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := IdleCheck(tc.core, tc.execs, tc.files, 30)
			if v := c.Verdict(); v != tc.want {
				t.Errorf("verdict %s, want %s: %s", v, tc.want, c)
			}
			if s := c.String(); !strings.Contains(s, tc.context) {
				t.Errorf("line %q lacks %q", s, tc.context)
			}
		})
	}
	// The bar is "≤": at 30 events in 30 s the host still counts as idle.
	if v := IdleCheck(0.1, 10, 20, 30).Verdict(); v != Pass {
		t.Errorf("0.1 %%core at 1 event/s: %s, want PASS", v)
	}
}

// A report that measured only the A/B and idle sections prints their
// tables and leaves out the tables of sections it did not run.
func TestWriteMarkdownABOnly(t *testing.T) {
	rep := &Report{Machine: "Test CPU × 2", Results: []Result{
		res("ExecAB/none", 6, "us/exec", 214.0, "exec/s", 3323.0),
		res("ExecAB/collector", 6, "us/exec", 229.0, "exec/s", 2990.0, "delta-us/exec", 14.8, "delta-q1-us/exec", 2.28, "delta-q3-us/exec", 27.2),
		res("Idle/collector", 10, "cpu-%core", 0.05, "exec/s", 0.1, "file-events/s", 0.2, "rss-MB", 19.9),
	}}
	checkMarkdown(t, rep, time.Date(2026, 12, 3, 20, 0, 0, 0, time.UTC), "quick",
		"| collector | 229 | 14.8 | 2.28 | 27.2 | 2990 |", "| none | 214 | – | – | – | 3323 |",
		"| collector | 0.05 | 0.1 | 0.2 | 19.9 |")
	var b strings.Builder
	if err := WriteMarkdown(&b, rep, time.Now(), "quick"); err != nil {
		t.Fatal(err)
	}
	for _, absent := range []string{"**Exec storm**", "**Costs**"} {
		if strings.Contains(b.String(), absent) {
			t.Errorf("markdown has the unmeasured table %s:\n%s", absent, b.String())
		}
	}
}
