package tracepoint

import (
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// checkCPUs reopens the rings of CPUs whose events the kernel dropped
// (offline and back: their enabled time stopped) and opens rings for CPUs
// that came online, at most once per CPUCheckEvery. Called by drain; a
// replaced ring's rest goes to h (retire), and the count of records handed
// out is returned.
func (s *Set) checkCPUs(now uint64, h func(*Record)) int {
	if !s.enabled || now-s.lastCheck < uint64(s.cpuCheckEvery) {
		return 0
	}
	elapsed := now - s.lastCheck
	s.lastCheck = now
	online, err := onlineCPUs()
	if err != nil {
		return 0
	}
	handed := 0
	have := make(map[int]int, len(s.rings))
	for i, r := range s.rings {
		have[r.cpu] = i
	}
	changed := false
	for _, cpu := range online {
		i, ok := have[cpu]
		if ok {
			r := s.rings[i]
			en, err := r.enabledTime()
			alive := err == nil && en-r.enabled >= elapsed/2
			r.enabled = en
			if alive {
				continue
			}
		}
		nr, err := s.openRing(cpu)
		if err == nil {
			err = nr.enable()
		}
		if err != nil {
			if nr != nil {
				nr.close()
			}
			s.st.CPUErrors++
			continue
		}
		nr.enabled, _ = nr.enabledTime()
		nr.last = now
		if ok {
			handed += s.retire(s.rings[i], now, h)
			s.rings[i].close()
			s.rings[i] = nr
		} else {
			s.rings = append(s.rings, nr)
		}
		if len(s.bells) > 0 {
			if nb, err := s.openBell(cpu); err == nil {
				replaced := false
				for j, b := range s.bells {
					if b.cpu == cpu {
						b.close()
						s.bells[j], replaced = nb, true
					}
				}
				if !replaced {
					s.bells = append(s.bells, nb)
				}
				if s.armed || anyOn(s.bells) {
					nb.on = nb.enableBell() == nil
				}
			}
		}
		s.st.CPUsReopened++
		changed = true
	}
	if changed {
		s.setPollFDs()
		s.Interrupt() // a Wait in progress polls the new rings from now on
	}
	return handed
}

// retire hands out what a ring about to be closed still holds: every
// record, whatever the drain's cutoff (they date from before its CPU went
// offline), then the loss its lost counters say and no lost record or
// earlier read did. The kernel only takes an offline CPU's events off that
// CPU: their ring and counters stay readable until they are closed.
func (s *Set) retire(r *ring, now uint64, h func(*Record)) int {
	n := 0
	rec := &s.rec
	r.head = atomic.LoadUint64(&r.meta.Data_head)
	for s.next(r, ^uint64(0)) {
		if s.emit(r, rec) {
			h(rec)
			n++
		}
		r.tail += uint64(len(r.rec))
		s.st.Bytes += uint64(len(r.rec))
	}
	return n + s.counted(r, now, h)
}

// enabledTime reads the ring's event's total enabled time (ns).
func (r *ring) enabledTime() (uint64, error) {
	en, _, err := r.read(0)
	return en, err
}

// lostCounters returns the sum of the lost counters of the ring's events
// (PERF_FORMAT_LOST): every sample the ring dropped, reported or not.
func (r *ring) lostCounters() (uint64, error) {
	var sum uint64
	for i := range r.fds {
		_, n, err := r.read(i)
		if err != nil {
			return 0, err
		}
		sum += n
	}
	return sum, nil
}

// read reads event i of the ring: its enabled time and, when opened with
// PERF_FORMAT_LOST, its lost samples (value, time_enabled, lost).
func (r *ring) read(i int) (enabled, lost uint64, err error) {
	var b [24]byte
	want := 16
	if r.lostFmt {
		want = 24
	}
	n, err := unix.Read(r.fds[i], b[:want])
	if err != nil {
		return 0, 0, err
	}
	if n < want {
		return 0, 0, fmt.Errorf("read event: %d bytes", n)
	}
	if r.lostFmt {
		lost = binary.NativeEndian.Uint64(b[16:])
	}
	return binary.NativeEndian.Uint64(b[8:]), lost, nil
}

// onlineCPUs lists the online CPUs.
func onlineCPUs() ([]int, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return nil, fmt.Errorf("online CPUs: %w", err)
	}
	cpus, err := ParseCPUList(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("online CPUs: %w", err)
	}
	return cpus, nil
}

// anyOn reports whether a doorbell was enabled (Arm leaves them on).
func anyOn(bells []*ring) bool {
	for _, b := range bells {
		if b.on {
			return true
		}
	}
	return false
}
