package custody

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestSplitMissing: a missing range is cut into the intervals the
// explanations cover (evicted, pending) and the holes between them;
// adjacent pending seqs merge into one interval.
func TestSplitMissing(t *testing.T) {
	for _, tc := range []struct {
		name      string
		lo, hi    uint64
		explained []interval
		want      []interval
	}{
		{"nothing explained", 3, 7, nil, []interval{{lo: 3, hi: 7, kind: FindHole}}},
		{"all evicted", 3, 7, []interval{{lo: 1, hi: 9, kind: FindEvicted, detail: "quota"}},
			[]interval{{lo: 3, hi: 7, kind: FindEvicted, detail: "quota"}}},
		{"hole, evicted, hole", 3, 9, []interval{{lo: 5, hi: 6, kind: FindEvicted}},
			[]interval{{lo: 3, hi: 4, kind: FindHole}, {lo: 5, hi: 6, kind: FindEvicted}, {lo: 7, hi: 9, kind: FindHole}}},
		{"pending seqs merge", 3, 5, []interval{{lo: 3, hi: 3, kind: FindPending, detail: "a"}, {lo: 4, hi: 4, kind: FindPending, detail: "b"}, {lo: 5, hi: 5, kind: FindPending, detail: "c"}},
			[]interval{{lo: 3, hi: 5, kind: FindPending, detail: "in the inbox"}}},
		{"explanations outside the range", 10, 12, []interval{{lo: 1, hi: 2, kind: FindEvicted}, {lo: 20, hi: 30, kind: FindEvicted}},
			[]interval{{lo: 10, hi: 12, kind: FindHole}}},
	} {
		got := splitMissing(tc.lo, tc.hi, tc.explained)
		if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(interval{})); diff != "" {
			t.Errorf("%s: splitMissing(%d, %d) (-want +got):\n%s", tc.name, tc.lo, tc.hi, diff)
		}
	}
}

func TestHoleDetail(t *testing.T) {
	q := map[uint64][]string{4: {"bad_signature"}, 6: {"corrupt", "name"}, 9: {"fork"}}
	if got, want := holeDetail(3, 7, q), "never loaded; quarantined: 4 (bad_signature); 6 (corrupt, name)"; got != want {
		t.Errorf("holeDetail(3, 7) = %q, want %q", got, want)
	}
	if got, want := holeDetail(10, 12, q), "never loaded"; got != want {
		t.Errorf("holeDetail(10, 12) = %q, want %q", got, want)
	}
}

func TestParseArchiveKeep(t *testing.T) {
	keep := 90 * 24 * time.Hour
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{{"", keep}, {"0", 0}, {"forever", 0}, {"30d", 30 * 24 * time.Hour}, {"2w", 14 * 24 * time.Hour}} {
		if got, err := ParseArchiveKeep(tc.in, keep); err != nil || got != tc.want {
			t.Errorf("ParseArchiveKeep(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	if _, err := ParseArchiveKeep("1h", keep); err == nil {
		t.Error("ParseArchiveKeep(1h) accepted less than a day")
	}
}
