package spool

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"time"

	"github.com/pofr/pofr/internal/durable"
	"github.com/pofr/pofr/internal/event"
)

// enforceQuota evicts the oldest sealed segments while the spool exceeds the
// quota, never the one just sealed. The eviction is recorded in the state
// (as a gap row for the next segment) before any file is deleted, so a crash
// cannot lose it; the state is written in any case, as the seal advanced it.
//
// It also settles the carried gap rows: a row whose segment left the spool
// otherwise (uploaded) is done; a row whose segment is evicted now goes back
// to the pending rows, merged with adjacent evictions, so that the next
// segment records it again.
func (w *Writer) enforceQuota(sealed string, now time.Time) {
	infos, err := List(w.dir)
	listed := err == nil
	if err != nil {
		w.log.Error("quota: list spool", "err", err)
		infos = nil
	}
	var total int64
	for _, in := range infos {
		total += in.Size
	}
	var evict []Info
	for len(infos) > 1 && total > w.opts.Quota && infos[0].Name != sealed {
		evict = append(evict, infos[0])
		total -= infos[0].Size
		infos = infos[1:]
	}
	prevEvicted, prevPending, prevCarried := w.st.EvictedThrough, w.pending, w.carried
	present := make(map[uint64]bool, len(infos)+len(evict))
	for _, in := range infos {
		present[in.Seq] = true
	}
	evicted := make(map[uint64]bool, len(evict))
	for _, in := range evict {
		present[in.Seq], evicted[in.Seq] = true, true
	}
	var carried, again []spoolGap
	for _, g := range w.carried {
		switch {
		case evicted[g.in]:
			g.in = 0
			again = append(again, g)
		case present[g.in] || !listed:
			carried = append(carried, g)
		}
		// Neither: uploaded, and the row with it.
	}
	if len(w.pending)+len(again)+len(carried) > maxCarriedGaps {
		// A long outage: rather than carry ever more rows, take every
		// carried eviction into one row per contiguous range. A segment
		// still in the spool may then hold an older row naming part of it;
		// if that one is uploaded too, the rows overlap.
		kept := carried[:0]
		for _, g := range carried {
			if g.first != 0 {
				g.in = 0
				again = append(again, g)
			} else {
				kept = append(kept, g)
			}
		}
		carried = kept
	}
	if len(evict) > 0 || len(again) > 0 {
		pending := slices.Concat(w.pending, again)
		if len(evict) > 0 {
			pending = append(pending, w.evictionGap(evict, now))
		}
		w.pending = mergeEvictions(pending)
		w.pendingSince = now
	}
	w.carried = carried
	if len(evict) > 0 {
		w.st.EvictedThrough = evict[len(evict)-1].Seq
	}
	w.st.Pending = toStateGaps(w.pending)
	w.st.Carried = toStateGaps(w.carried)
	if err := writeState(w.dir, &w.st); err != nil {
		w.log.Error("spool state not saved; eviction postponed", "err", err)
		w.pending, w.carried, w.st.EvictedThrough = prevPending, prevCarried, prevEvicted
		return
	}
	if len(again) > 0 {
		w.log.Warn("gap rows evicted before upload; recording them again", "rows", len(again))
	}
	for _, in := range evict {
		if err := os.Remove(in.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			w.log.Error("quota: remove segment", "segment", in.Name, "err", err)
		}
	}
	if len(evict) > 0 {
		w.mu.Lock()
		w.evictedN += uint64(len(evict))
		w.mu.Unlock()
		durable.SyncDir(w.dir)
		w.log.Warn("spool quota exceeded: oldest unsent segments evicted",
			"first_seq", evict[0].Seq, "last_seq", evict[len(evict)-1].Seq, "quota", w.opts.Quota)
	}
}

// evictionGap describes evicted segments as one gap row: their time range
// and row count as their manifests state (lost is null if one is unreadable).
func (w *Writer) evictionGap(evict []Info, now time.Time) spoolGap {
	var bytes, rows int64
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	known := true
	for _, in := range evict {
		bytes += in.Size
		m, _, err := ReadManifestFile(in.Path)
		if err != nil {
			known = false
			continue
		}
		rows += m.Rows()
		lo, hi = min(lo, m.MinTS), max(hi, m.MaxTS)
	}
	if lo > hi {
		lo, hi = now.UnixNano(), now.UnixNano()
	}
	g := event.Gap{FromTS: lo, ToTS: hi, Source: event.SourceSpool}
	if known {
		g.Lost = event.Some(rows)
	}
	first, last := evict[0].Seq, evict[len(evict)-1].Seq
	g.Reason = evictionReason(first, last, bytes)
	return spoolGap{Gap: g, first: first, last: last, bytes: bytes}
}

// maxCarriedGaps bounds the gap rows pending and carried before carried
// evictions are merged (enforceQuota).
const maxCarriedGaps = 32

func evictionReason(first, last uint64, bytes int64) string {
	if first == last {
		return fmt.Sprintf("quota eviction of segment %d (%d bytes)", first, bytes)
	}
	return fmt.Sprintf("quota eviction of segments %d-%d (%d bytes)", first, last, bytes)
}

// mergeEvictions merges eviction rows of adjacent seq ranges into one, so
// that rows recorded again and again during a long outage stay few. Other
// rows keep their order, before the evictions (ordered by seq).
func mergeEvictions(gs []spoolGap) []spoolGap {
	var out, ev []spoolGap
	for _, g := range gs {
		if g.first == 0 {
			out = append(out, g)
		} else {
			ev = append(ev, g)
		}
	}
	slices.SortStableFunc(ev, func(a, b spoolGap) int { return cmp.Compare(a.first, b.first) })
	for _, g := range ev {
		if n := len(out); n > 0 && out[n-1].first != 0 && out[n-1].last+1 == g.first {
			p := &out[n-1]
			p.last = g.last
			p.bytes += g.bytes
			p.FromTS, p.ToTS = min(p.FromTS, g.FromTS), max(p.ToTS, g.ToTS)
			if p.Lost.Valid && g.Lost.Valid {
				p.Lost = event.Some(p.Lost.V + g.Lost.V)
			} else {
				p.Lost = event.Opt[int64]{}
			}
			p.Reason = evictionReason(p.first, p.last, p.bytes)
			continue
		}
		out = append(out, g)
	}
	return out
}
