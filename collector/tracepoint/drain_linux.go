package tracepoint

import (
	"encoding/binary"
	"sync/atomic"
)

// Drain hands every record older than Now() − Settle to h, samples of all
// CPUs merged by time, then frees their ring space. It returns the number of
// records handed out. h must not keep the slices of a Record. Once disabled,
// and every CPUCheckEvery, a drain also hands out, after the records, the
// losses that the events' lost counters count and no lost record reported
// yet (a ring writes its lost record only with its next sample), so that
// every dropped sample comes out as a Lost exactly once. A ring that the
// CPU check replaces (its CPU went offline) hands out all it still holds
// before it is closed, whatever the cutoff.
func (s *Set) Drain(h func(*Record)) int { return s.drain(Now()-uint64(Settle), h) }

// DrainBefore is Drain with the cutoff given: records at or before t (a
// Now() time) are handed out, later ones stay in the rings. A caller that
// merges other time-stamped sources with the rings uses one cutoff for all.
func (s *Set) DrainBefore(t uint64, h func(*Record)) int { return s.drain(t, h) }

// Flush is Drain without the settle margin: everything in the rings now
// (after Disable, to empty them for good).
func (s *Set) Flush(h func(*Record)) int { return s.drain(^uint64(0), h) }

// Peek hands h every record the rings hold now that a drain left there
// (newer than its cutoff), per CPU, without freeing them: the next drain
// hands them out again, merged. A caller that must know of a fork before
// it is merged (to attribute other sources' events of the new process) can
// look ahead with it; records in the rings are complete, the cutoff is only
// for the order across CPUs.
func (s *Set) Peek(h func(*Record)) {
	st := s.st
	rec := &s.rec
	*rec = Record{}
	for _, r := range s.rings {
		tail, last, lost := r.tail, r.last, r.lost
		r.head = atomic.LoadUint64(&r.meta.Data_head)
		for s.next(r, ^uint64(0)) {
			if s.emit(r, rec) {
				h(rec)
			}
			r.tail += uint64(len(r.rec))
		}
		r.tail, r.last, r.lost = tail, last, lost
	}
	s.st = st
}

func (s *Set) drain(cutoff uint64, h func(*Record)) int {
	s.st.Drains++
	s.heap = s.heap[:0]
	for i, r := range s.rings {
		r.head = atomic.LoadUint64(&r.meta.Data_head)
		if s.next(r, cutoff) {
			s.heap = append(s.heap, i)
		}
	}
	n := 0
	rec := &s.rec
	*rec = Record{}
	for len(s.heap) > 0 {
		// Few CPUs: a linear scan for the oldest is cheaper than a heap.
		best := 0
		for j := 1; j < len(s.heap); j++ {
			if s.rings[s.heap[j]].recTime < s.rings[s.heap[best]].recTime {
				best = j
			}
		}
		r := s.rings[s.heap[best]]
		if s.emit(r, rec) {
			h(rec)
			n++
		}
		r.tail += uint64(len(r.rec))
		s.st.Bytes += uint64(len(r.rec))
		if !s.next(r, cutoff) {
			s.heap[best] = s.heap[len(s.heap)-1]
			s.heap = s.heap[:len(s.heap)-1]
		}
	}
	now := Now()
	if !s.enabled || now-s.lastCheck >= uint64(s.cpuCheckEvery) {
		// Disabled (the last drain), or the drains that run checkCPUs
		// below (every CPUCheckEvery): losses no lost record said yet,
		// from the events' counters.
		n += s.unreported(now, h)
	}
	for _, r := range s.rings {
		atomic.StoreUint64(&r.meta.Data_tail, r.tail)
	}
	// After the records are handed out: a dropped ring still holds what
	// its CPU wrote before it went offline.
	n += s.checkCPUs(now, h)
	return n
}

// unreported hands out, as one Lost per ring, the samples the events' lost
// counters (PERF_FORMAT_LOST) count and no lost record reported yet: a
// ring writes its lost record only when it next writes a sample, which a
// quiet CPU may not do for long and a disabled ring never does. The lost
// record that comes later counts only what is new (lostLedger).
func (s *Set) unreported(now uint64, h func(*Record)) int {
	n := 0
	for _, r := range s.rings {
		n += s.counted(r, now, h)
	}
	return n
}

// counted hands out, as one Lost, what r's lost counters count and no lost
// record or earlier read handed out; it returns 1 if it did.
func (s *Set) counted(r *ring, now uint64, h func(*Record)) int {
	if !r.lostFmt {
		return 0
	}
	total, err := r.lostCounters()
	if err != nil {
		return 0
	}
	d := r.lost.counters(total)
	if d == 0 {
		return 0
	}
	rec := &s.rec
	*rec = Record{Event: -1, Lost: Lost{CPU: r.cpu, Count: d, From: r.last, To: now}}
	s.st.Lost += d
	s.st.Unreported += d
	h(rec)
	return 1
}

// next reads the record at r.tail into r.rec, and reports whether there is
// one older than cutoff.
func (s *Set) next(r *ring, cutoff uint64) bool {
	for r.tail < r.head {
		off := r.tail & r.mask
		size := uint64(len(r.data))
		var hdr [headerLen]byte
		if off+headerLen <= size {
			copy(hdr[:], r.data[off:])
		} else {
			n := copy(hdr[:], r.data[off:])
			copy(hdr[n:], r.data)
		}
		typ, sz, err := ParseHeader(hdr[:])
		if err != nil || uint64(sz) > r.head-r.tail {
			// The ring is corrupt (cannot happen with a sane kernel): drop
			// what is there.
			s.st.Bad++
			r.tail = r.head
			return false
		}
		if off+uint64(sz) <= size {
			r.rec = r.data[off : off+uint64(sz)]
		} else {
			r.scratch = append(r.scratch[:0], r.data[off:]...)
			r.scratch = append(r.scratch, r.data[:uint64(sz)-(size-off)]...)
			r.rec = r.scratch
		}
		r.recType = typ
		switch typ {
		case recordSample:
			if len(r.rec) < headerLen+16 {
				r.recTime = r.last
			} else {
				r.recTime = binary.NativeEndian.Uint64(r.rec[headerLen+8:])
			}
		case recordLost:
			if _, t, err := ParseLost(r.rec); err == nil {
				r.recTime = t
			} else {
				r.recTime = r.last
			}
		default:
			r.recTime = r.last
		}
		if r.recTime > cutoff {
			return false
		}
		return true
	}
	return false
}

// emit decodes r.rec into rec; false for records that are skipped.
func (s *Set) emit(r *ring, rec *Record) bool {
	switch r.recType {
	case recordSample:
		if err := ParseSample(r.rec, s.layout, &rec.Sample); err != nil {
			s.st.Bad++
			return false
		}
		id, _ := rec.Sample.TypeID()
		rec.Event = -1
		for i, x := range s.ids {
			if x == id {
				rec.Event = i
			}
		}
		if rec.Event < 0 {
			s.st.Bad++
			return false
		}
		rec.Bytes = r.rec
		if rec.Sample.Time > r.last {
			r.last = rec.Sample.Time
		}
		s.st.Samples++
		return true
	case recordLost:
		n, t, err := ParseLost(r.rec)
		if err != nil {
			s.st.Bad++
			return false
		}
		s.st.LostRecords++
		// What the lost counters said already is not counted again.
		n = r.lost.record(n)
		from := r.last
		if t > r.last {
			r.last = t
		}
		if n == 0 {
			return false
		}
		*rec = Record{Event: -1, Lost: Lost{CPU: r.cpu, Count: n, From: from, To: t}, Bytes: r.rec}
		s.st.Lost += n
		return true
	}
	return false
}

// layout returns the layout of tracepoint id.
func (s *Set) layout(id uint16) Layout {
	for i, x := range s.ids {
		if x == id {
			return s.layouts[i]
		}
	}
	return Layout{}
}
