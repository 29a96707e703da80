package tracepoint

import (
	"encoding/binary"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// checkCPUs reopens the rings of CPUs whose events the kernel dropped
// (offline and back: their enabled time stopped) and opens rings for CPUs
// that came online, at most once per CPUCheckEvery. Called by drain.
func (s *Set) checkCPUs(now uint64) {
	if !s.enabled || now-s.lastCheck < uint64(s.cpuCheckEvery) {
		return
	}
	elapsed := now - s.lastCheck
	s.lastCheck = now
	online, err := onlineCPUs()
	if err != nil {
		return
	}
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
}

// enabledTime reads the ring's event's total enabled time (ns).
func (r *ring) enabledTime() (uint64, error) {
	var b [16]byte
	n, err := unix.Read(r.fds[0], b[:])
	if err != nil {
		return 0, err
	}
	if n < 16 {
		return 0, fmt.Errorf("read event: %d bytes", n)
	}
	return binary.NativeEndian.Uint64(b[8:]), nil
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
