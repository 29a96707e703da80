package tracepoint

import "testing"

// TestLostLedger: every lost sample comes out once, whether a lost record or
// the counters say it first, and in whatever order they are read.
func TestLostLedger(t *testing.T) {
	var l lostLedger
	steps := []struct {
		record  bool
		n, want uint64
	}{
		{true, 5, 5},   // a record: 5 lost
		{false, 5, 0},  // the counters agree
		{false, 9, 4},  // 4 more, not reported by a record yet
		{true, 3, 0},   // a record of 3 of those 4
		{false, 9, 0},  // nothing new
		{true, 4, 3},   // the last of the 4 and 3 more
		{false, 12, 0}, // the counters agree again
		{false, 20, 8}, // 8 pending at the end: only the counters say them
		{true, 8, 0},   // a record may still come: not counted twice
		{true, 2, 2},   // and later losses count again
		{false, 23, 1}, // 1 more, pending
		{false, 23, 0}, // read again: not counted twice
	}
	var sum uint64
	for i, s := range steps {
		var got uint64
		if s.record {
			got = l.record(s.n)
		} else {
			got = l.counters(s.n)
		}
		if got != s.want {
			t.Fatalf("step %d (%+v): handed out %d, want %d", i, s, got, s.want)
		}
		sum += got
	}
	if sum != 23 {
		t.Errorf("handed out %d in all, want the counters' 23", sum)
	}
}
