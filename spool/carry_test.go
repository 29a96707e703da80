package spool

import (
	"regexp"
	"strconv"
	"testing"

	"github.com/pofr/pofr/internal/event"
)

var evictionRE = regexp.MustCompile(`^quota eviction of segments? ([0-9]+)(?:-([0-9]+))? \(`)

// explainedSeqs adds the seqs that the eviction rows among gs name to into.
func explainedSeqs(t *testing.T, gs []event.Gap, into map[uint64]bool) {
	t.Helper()
	for _, g := range gs {
		m := evictionRE.FindStringSubmatch(g.Reason)
		if m == nil {
			continue
		}
		first, _ := strconv.ParseUint(m[1], 10, 64)
		last := first
		if m[2] != "" {
			last, _ = strconv.ParseUint(m[2], 10, 64)
		}
		for s := first; s <= last; s++ {
			into[s] = true
		}
	}
}

// evictingWriter opens a writer in dir, seals a first segment of 50 rows
// about path and sets a quota of about keep such segments, so that every
// further seal evicts. seal(rows) seals a segment of rows more.
func evictingWriter(t *testing.T, dir, path string, keep int64) (*Writer, func(rows int)) {
	t.Helper()
	c := newClock()
	w := openWriter(t, dir, testOptions(c))
	seal := func(rows int) {
		t.Helper()
		sealFiles(t, w, c, rows, path)
	}
	seal(50)
	infos, _ := List(dir)
	w.sealMu.Lock()
	w.opts.Quota = keep*infos[0].Size + infos[0].Size/2
	w.sealMu.Unlock()
	return w, seal
}

// TestEvictionGapsSurviveEviction: with the server unreachable and a quota
// that evicts at every seal, the segments holding eviction rows are evicted
// too. Every evicted seq must still be named by an eviction row in a
// segment left in the spool or in the rows waiting in the state.
func TestEvictionGapsSurviveEviction(t *testing.T) {
	dir := t.TempDir()
	w, seal := evictingWriter(t, dir, "/var/log/syslog", 3)
	for range 100 {
		seal(50)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	infos, _ := List(dir)
	present := map[uint64]bool{}
	for _, in := range infos {
		present[in.Seq] = true
	}
	named := map[uint64]bool{}
	for _, seg := range verifyDir(t, dir) {
		gs, err := seg.Gaps()
		if err != nil {
			t.Fatal(err)
		}
		explainedSeqs(t, gs, named)
	}
	st, err := readState(dir)
	if err != nil {
		t.Fatal(err)
	}
	explainedSeqs(t, gapsOf(fromStateGaps(st.Pending)), named)
	last := st.NextSeq - 1
	var unexplained []uint64
	for s := uint64(1); s <= last; s++ {
		if !present[s] && !named[s] {
			unexplained = append(unexplained, s)
		}
	}
	if len(unexplained) > 0 {
		t.Errorf("segments 1-%d: %d left, %d evicted without an eviction row anywhere: %v", last, len(infos), len(unexplained), unexplained)
	}
	for s := range named {
		if present[s] {
			t.Errorf("segment %d is present but named evicted", s)
		}
	}
	// Merged: the rows waiting or carried stay few however long the outage.
	if n := len(st.Pending) + len(st.Carried); n > maxCarriedGaps+1 {
		t.Errorf("%d gap rows pending or carried after 100 evictions, want at most %d", n, maxCarriedGaps+1)
	}
}

// TestCarriedGapsDroppedOnceUploaded: once the segment holding an eviction
// row leaves the spool by upload, the row is not recorded again.
func TestCarriedGapsDroppedOnceUploaded(t *testing.T) {
	dir := t.TempDir()
	w, seal := evictingWriter(t, dir, "/x", 2)
	seal(50)
	seal(50) // evicts 1
	seal(50) // holds the eviction of 1; evicts 2
	w.sealMu.Lock()
	carried := append([]spoolGap(nil), w.carried...)
	w.sealMu.Unlock()
	if len(carried) != 1 || carried[0].in != 4 || carried[0].first != 1 {
		t.Fatalf("carried = %+v, want the eviction of 1 held by segment 4", carried)
	}
	// The uplink sends segments 3 and 4.
	infos, _ := List(dir)
	for _, in := range infos {
		if in.Seq <= 4 {
			if err := Remove(dir, in.Name); err != nil {
				t.Fatal(err)
			}
		}
	}
	seal(50)
	w.sealMu.Lock()
	for _, g := range w.carried {
		if g.first == 1 {
			t.Errorf("eviction of 1 still carried after segment 4 was uploaded: %+v", g)
		}
	}
	for _, g := range w.pending {
		if g.first == 1 {
			t.Errorf("eviction of 1 to be recorded again after segment 4 was uploaded: %+v", g)
		}
	}
	w.sealMu.Unlock()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func gapsOf(gs []spoolGap) []event.Gap {
	out := make([]event.Gap, len(gs))
	for i, g := range gs {
		out[i] = g.Gap
	}
	return out
}
