package agent

import (
	"testing"
	"time"

	"github.com/pofr/pofr/spool"
)

// TestRateWindow: samples every 5 s of a counter growing 10/s give the rate
// over exactly the last minute once the collector is older than that, and
// over its whole life before.
func TestRateWindow(t *testing.T) {
	var w rateWindow
	t0 := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	for s := 0; s <= 90; s += 5 {
		now := t0.Add(time.Duration(s) * time.Second)
		seen := uint64(10 * s)
		if s > 60 {
			seen += uint64(20 * (s - 60)) // 30/s after the first minute
		}
		base := w.add(now, map[string]spool.Counter{"proc": {Seen: seen}})
		span := now.Sub(base.at)
		want := min(time.Duration(s)*time.Second, RateWindow)
		if span != want {
			t.Fatalf("at %d s: window %v, want %v", s, span, want)
		}
		if s == 90 {
			// From 30 s (300) to 90 s (900 + 600): 1200 in 60 s.
			if rate := float64(seen-base.c["proc"].Seen) / span.Seconds(); rate != 20 {
				t.Errorf("rate over the last minute at 90 s: %v/s, want 20/s", rate)
			}
		}
	}
	if len(w.samples) != 13 {
		t.Errorf("the window keeps %d samples, want 13 (a minute of 5 s samples and its base)", len(w.samples))
	}
}
