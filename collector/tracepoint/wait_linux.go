package tracepoint

import (
	"fmt"
	"runtime"
	"slices"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// setPollFDs rebuilds what Wait polls: rings, doorbells, the eventfd.
func (s *Set) setPollFDs() {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	s.pfds = s.pfds[:0]
	for _, r := range s.rings {
		s.pfds = append(s.pfds, unix.PollFd{Fd: int32(r.fd), Events: unix.POLLIN})
	}
	for _, b := range s.bells {
		s.pfds = append(s.pfds, unix.PollFd{Fd: int32(b.fd), Events: unix.POLLIN})
	}
	s.pfds = append(s.pfds, unix.PollFd{Fd: int32(s.efd), Events: unix.POLLIN})
	s.nmain, s.nring = len(s.rings), len(s.rings)+len(s.bells)
}

// Wait blocks until a ring holds at least the watermark, Interrupt is
// called, or timeout passes (negative: no timeout). It reports whether a
// ring reached its watermark.
func (s *Set) Wait(timeout time.Duration) (bool, error) {
	ms := -1
	if timeout >= 0 {
		ms = int((timeout + time.Millisecond - 1) / time.Millisecond)
	}
	s.pmu.Lock()
	s.wpfds = append(s.wpfds[:0], s.pfds[:s.nmain]...)
	if s.armed {
		s.wpfds = append(s.wpfds, s.pfds[s.nmain:s.nring]...)
		for _, fd := range s.extra {
			s.wpfds = append(s.wpfds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
		}
	}
	nring := len(s.wpfds)
	s.wpfds = append(s.wpfds, s.pfds[s.nring:]...)
	s.pmu.Unlock()
	pfds := s.wpfds
	var n int
	var err error
	if timeout >= 0 && timeout <= RawWaitMax && runtime.GOMAXPROCS(0) >= 2 {
		// A signal (the runtime's preemption of this goroutine, every
		// 10 ms of a raw wait) does not end the wait early: that would
		// be a drain more.
		deadline := Now() + uint64(timeout)
		for {
			n, err = pollRaw(pfds, timeout)
			if err != unix.EINTR {
				break
			}
			if now := Now(); now < deadline {
				timeout = time.Duration(deadline - now)
				continue
			}
			n, err = 0, nil
			break
		}
	} else {
		n, err = unix.Poll(pfds, ms)
	}
	if err == unix.EINTR {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("poll rings: %w", err)
	}
	if n == 0 {
		return false, nil
	}
	woken := false
	for _, p := range pfds[:nring] {
		if p.Revents&unix.POLLIN != 0 {
			woken = true
		}
	}
	if pfds[len(pfds)-1].Revents != 0 {
		var b [8]byte
		unix.Read(s.efd, b[:])
	}
	if woken {
		s.wakeups.Add(1)
	}
	return woken, nil
}

// Watch adds fd to what Wait polls while the doorbell is armed (Arm): the
// queue of another source that the caller reads at each drain, which
// should wake an idle caller at its first event like a fork does, but never
// a busy one (the caller reads it at its next drain anyway). A readable fd
// counts as a wakeup. Unwatch removes it; call it before closing fd.
func (s *Set) Watch(fd int) {
	s.pmu.Lock()
	s.extra = append(s.extra, fd)
	s.pmu.Unlock()
}

// Unwatch undoes Watch(fd).
func (s *Set) Unwatch(fd int) {
	s.pmu.Lock()
	s.extra = slices.DeleteFunc(s.extra, func(x int) bool { return x == fd })
	s.pmu.Unlock()
}

// Arm arms the doorbell (Options.Doorbell): the next hit of its tracepoint
// on any CPU makes Wait return. It reports whether the rings already hold
// records, in which case the caller should not sleep long.
//
// The doorbell events stay enabled once armed: enabling and disabling a
// per-CPU event is an ioctl that interrupts the event's CPU (an IPI, dear
// in a VM), twice per idle period. Instead, arming empties each doorbell's
// one-page ring and puts the doorbells among the fds Wait polls; disarmed,
// they are not polled and their rings fill up after a few dozen forks,
// after which the kernel only counts what it drops (no sample, no wakeup).
func (s *Set) Arm() (bool, error) {
	if !s.armed && len(s.bells) > 0 {
		for _, b := range s.bells {
			// Forget earlier hits: only hits from now on count.
			atomic.StoreUint64(&b.meta.Data_tail, atomic.LoadUint64(&b.meta.Data_head))
			if !b.on {
				if err := b.enableBell(); err != nil {
					return false, fmt.Errorf("arm doorbell: %w", err)
				}
				b.on = true
			}
		}
		// Clear the wakeups of hits while disarmed (a perf fd reports
		// POLLIN once per wakeup, whoever reads the ring).
		s.pmu.Lock()
		s.bpfds = append(s.bpfds[:0], s.pfds[s.nmain:s.nring]...)
		s.pmu.Unlock()
		pollRaw(s.bpfds, 0)
		s.armed = true
	}
	for _, r := range s.rings {
		if atomic.LoadUint64(&r.meta.Data_head) != r.tail {
			return true, nil
		}
	}
	return false, nil
}

// Disarm stops Wait from waking at the doorbell's hits.
func (s *Set) Disarm() error {
	s.armed = false
	return nil
}

// ioctlRaw is a perf event ioctl without an argument as a raw syscall: the
// reader thread keeps its P (see pollRaw).
func ioctlRaw(fd int, req uint) error {
	if _, _, e := unix.RawSyscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), 0); e != 0 {
		return e
	}
	return nil
}

// pollRaw is ppoll(2) as a raw syscall.
func pollRaw(fds []unix.PollFd, timeout time.Duration) (int, error) {
	ts := unix.NsecToTimespec(int64(timeout))
	n, _, e := unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), uintptr(len(fds)),
		uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// Interrupt makes a blocked Wait return.
func (s *Set) Interrupt() {
	b := [8]byte{1}
	unix.Write(s.efd, b[:])
}
