package bench

import (
	"math"
	"strings"
	"testing"
	"time"
)

func res(name string, n int, kv ...any) Result {
	r := Result{Name: name, N: n}
	for i := 0; i < len(kv); i += 2 {
		r.Add(kv[i+1].(float64), kv[i].(string))
	}
	return r
}

func TestRatios(t *testing.T) {
	rs := []Result{
		res("Exec/rate=1000/auditd", 1, "cpu-us/exec", 100.0),
		res("Exec/rate=1000/auditd", 1, "cpu-us/exec", 120.0),
		res("Exec/rate=1000/collector", 1, "cpu-us/exec", 30.0),
		res("Procs/life=1ms/collector", 100, "argv-%", 98.0),
		res("Procs/life=1ms/poller", 100, "argv-%", 0.0),
		res("Procs/life=1s/collector", 100, "argv-%", 100.0),
		res("Procs/life=1s/poller", 100, "argv-%", 100.0),
	}
	got := map[string]float64{}
	for _, r := range Ratios(rs) {
		got[r.Name], _ = r.Get("x")
	}
	// 30 / median(100, 120); 198 captured / 100 captured; no connections.
	want := map[string]float64{"Ratio/cpu-per-exec/rate=1000/collector÷auditd": 30.0 / 110, "Ratio/capture/Procs-argv/collector÷poller": 1.98}
	if len(got) != len(want) {
		t.Errorf("Ratios = %v, want %v", got, want)
	}
	for k, w := range want {
		if math.Abs(got[k]-w) > 1e-9 {
			t.Errorf("%s = %v, want %v", k, got[k], w)
		}
	}
}

func TestWriteMarkdown(t *testing.T) {
	rep := &Report{
		Machine: "Test CPU × 2",
		Results: []Result{
			res("Exec/rate=1000/none", 10000, "exec/s", 1000.0),
			res("Exec/rate=1000/auditd", 10000, "exec/s", 1000.0, "cpu-us/exec", 114.0, "log-B/exec", 1144.0),
			res("Exec/rate=1000/collector", 10000, "exec/s", 1000.0, "cpu-us/exec", 20.0, "rss-MB", 30.0),
			res("Exec/rate=1000/collector", 10000, "exec/s", 990.0, "cpu-us/exec", 24.0, "rss-MB", 31.0),
			res("Procs/life=5ms/collector", 200, "exec-%", 100.0, "argv-%", 99.5, "exe-%", 100.0),
			res("Procs/life=5ms/poller", 200, "argv-%", 1.5),
			res("Conns/tcp4/10ms/collector", 25, "seen-%", 100.0, "close-%", 100.0, "owner-%", 96.0),
			res("Conns/tcp4/10ms/poller", 25, "seen-%", 4.0, "owner-%", 4.0),
			res("Files/op=create/collector", 2000, "seen-%", 100.0),
		},
		Checks: []Check{{Name: "collector peak RSS at 1000 exec/s ≤ 64 MB", Got: 31, Limit: 64, AtMost: true, Unit: "MB"}},
		Notes:  []string{"loader not measured"},
	}
	checkMarkdown(t, rep, time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), "quick",
		"Run 2026-11-25 12:00 UTC (quick mode) on Test CPU × 2.",
		"| 1000 exec/s, auditd | 1000 | – | – | – | – | 114 | – | – | – | – | – | – | 1144 |",
		"| 1000 exec/s, collector | 995 [990–1000] | – | – | – | – | 22.0 [20.0–24.0] | – | – | – | – | 30.5 [30.0–31.0] | – | – |",
		"| 5ms | 100 | 99.5 | 100 | 1.50 |",
		"| tcp4/10ms | 100 | 100 | 96.0 | 4.00 | 4.00 |",
		"| create | 100 |",
		"cpu-per-exec/rate=1000/collector÷auditd: **0.193×**",
		"PASS collector peak RSS at 1000 exec/s ≤ 64 MB: 31 MB (≤ 64 MB)",
		"- loader not measured")
}

// checkMarkdown writes rep with WriteMarkdown as run at now in mode and
// checks that the text has every want.
func checkMarkdown(t *testing.T, rep *Report, now time.Time, mode string, want ...string) {
	t.Helper()
	var b strings.Builder
	if err := WriteMarkdown(&b, rep, now, mode); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, w := range want {
		if !strings.Contains(md, w) {
			t.Errorf("markdown lacks %q:\n%s", w, md)
		}
	}
}

func TestCheckContext(t *testing.T) {
	c := Check{Name: "slowdown ≤ 3 %", Got: 14.72, Limit: 3, AtMost: true, Unit: "%", Context: "the floor: 14.6 %"}
	if got, want := c.String(), "MISS slowdown ≤ 3 %: 14.72 % (≤ 3 %) — the floor: 14.6 %"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	c.Got = math.NaN()
	if got := c.String(); strings.Contains(got, "floor") {
		t.Errorf("a SKIP printed its context: %q", got)
	}
}
