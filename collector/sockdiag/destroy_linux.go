package sockdiag

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/pofr/pofr/internal/mmsg"
)

// The destroy reader's batches: datagrams per recvmmsg(2) (one destroy
// message each, 364 bytes for TCP with tcp_info on Linux 6.18, 80 for UDP)
// and calls per drain of the process reader (bounded: a flood must not
// hold the driver's drain; what is left wakes it again at once).
const (
	destroyBatch      = 32
	destroyMsgMax     = 2 << 10
	destroyDrainCalls = 16
)

// openDestroySocket subscribes to the destroy groups.
func (s *Source) openDestroySocket() (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return -1, fmt.Errorf("open sock_diag destroy socket: %w", err)
	}
	rcvbuf := cmp.Or(s.opts.DestroyRcvBuf, sockDestroyRcvBuf)
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf); err != nil {
		// Without CAP_NET_ADMIN: capped by net.core.rmem_max.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf); err != nil {
			s.log.Warn("set destroy socket receive buffer", "err", err)
		}
	}
	groups := uint32(1<<(unix.SKNLGRP_INET_TCP_DESTROY-1) | 1<<(unix.SKNLGRP_INET6_TCP_DESTROY-1))
	if s.opts.UDP {
		groups |= 1<<(unix.SKNLGRP_INET_UDP_DESTROY-1) | 1<<(unix.SKNLGRP_INET6_UDP_DESTROY-1)
	}
	return sockBind(fd, groups, 200*time.Millisecond, "sock_diag destroy socket")
}

// readDestroys is the reader goroutine: it receives destroy messages, decodes
// them and applies them to the table or queues them for the main loop
// (deliver), never waiting for it, and once ctx ends, what the socket still
// holds. It owns fd.
//
// Messages are read in batches: the first one after a quiet spell wakes the
// reader, which then lets the burst gather in the socket buffer for
// sockDrainDelay and reads it with recvmmsg(2), and applies the batch
// without waking the main loop. A wake-up costs tens of µs of CPU on a
// small VM, more than the handling of a message: per-message wake-ups were
// most of the source's CPU per connection. Driven by the process reader
// (Options.Driver), the same gathering is done by a destroyGate.
func (s *Source) readDestroys(ctx context.Context, fd int) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer unix.Close(fd)
	r := &destroyReader{s: s, fd: fd, mm: mmsg.NewReader(destroyBatch, destroyMsgMax), last: s.now().UnixNano()}
	defer func() { s.enqueue(r.batch) }()
	if s.opts.Driver != nil {
		if done := s.driveDestroys(ctx, r); done {
			return
		}
	}
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		// Once stopped, take what the kernel has queued already, then end.
		stopping := ctx.Err() != nil
		if !stopping {
			// 200 ms: ctx is looked at that often.
			if n, err := unix.Poll(pfd, 200); n <= 0 || err != nil {
				if err != nil && !errors.Is(err, unix.EINTR) {
					s.log.Error("poll sock_diag destroy socket; stopping the destroy reader", "err", err)
					return
				}
				continue
			}
			// The first message after a quiet spell: let the burst gather.
			time.Sleep(sockDrainDelay)
		}
		for {
			_, st := r.read(destroyDrainCalls)
			if st == destroyFailed {
				return
			}
			if st != destroyMore {
				break
			}
		}
		r.handOver()
		if stopping {
			return
		}
	}
}

// driveDestroys has the process reader read the destroy socket at its
// drains (Options.Driver) through a destroyGate, until it stops driving. It
// reports whether the reader is done (a read error, logged), or whether its
// own loop should take over.
func (s *Source) driveDestroys(ctx context.Context, r *destroyReader) (done bool) {
	g, err := newDestroyGate(r.fd)
	if err != nil {
		s.log.Warn("sock_diag destroy socket read by its own thread", "err", err)
		return false
	}
	defer g.close()
	s.opts.Driver.Drive(ctx, g.ep, func() (bool, time.Time) {
		now := time.Now()
		if !g.due(now) {
			return true, time.Time{} // the gate's timer wakes an idle driver
		}
		got, st := r.read(destroyDrainCalls)
		r.handOver()
		if st == destroyFailed {
			done = true
			return false, time.Time{}
		}
		if err := g.after(now, got > 0, st == destroyMore); err != nil {
			s.log.Warn("sock_diag destroy socket read by its own thread", "err", err)
			return false, time.Time{}
		}
		return true, time.Time{}
	})
	return done
}

// destroyGate is what the process reader polls for the destroy socket while
// it is idle (collector.QueueDriver): an epoll set holding either the socket
// or a timer. The first message after a quiet spell makes it readable; a
// read that found messages takes the socket out of the set and sets the
// timer sockDrainDelay ahead, so that while connections keep closing the
// reader is woken (and the socket read) once per sockDrainDelay, not once
// per close or per drain tick; a read that finds nothing puts the socket
// back and stops the timer.
type destroyGate struct {
	ep, timer, sock int
	delay           time.Duration // sockDrainDelay (tests shorten or lengthen it)
	watching        bool          // the socket is in the set, the timer stopped
	dueAt           time.Time     // !watching: the next read (the timer fires then or later)
}

func newDestroyGate(sock int) (*destroyGate, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("destroy gate: %w", err)
	}
	g := &destroyGate{ep: ep, timer: -1, sock: sock, delay: sockDrainDelay}
	if g.timer, err = unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC|unix.TFD_NONBLOCK); err != nil {
		g.close()
		return nil, fmt.Errorf("destroy gate: %w", err)
	}
	if err := g.ctl(unix.EPOLL_CTL_ADD, g.timer); err != nil {
		g.close()
		return nil, err
	}
	if err := g.ctl(unix.EPOLL_CTL_ADD, sock); err != nil {
		g.close()
		return nil, err
	}
	g.watching = true
	return g, nil
}

// due reports whether the socket should be read at now.
func (g *destroyGate) due(now time.Time) bool { return g.watching || !now.Before(g.dueAt) }

// after sets the gate up after a read at now that found messages (got) or
// nothing, or was cut short by its bound (more: read again at once).
func (g *destroyGate) after(now time.Time, got, more bool) error {
	switch {
	case more:
		if !g.watching {
			if err := g.setTimer(0); err != nil {
				return err
			}
			if err := g.ctl(unix.EPOLL_CTL_ADD, g.sock); err != nil {
				return err
			}
			g.watching = true
		}
	case got:
		if g.watching {
			if err := g.ctl(unix.EPOLL_CTL_DEL, g.sock); err != nil {
				return err
			}
			g.watching = false
		}
		// now was read before the timer is set: the timer fires at dueAt
		// or later, so a drain woken by it finds the read due.
		g.dueAt = now.Add(g.delay)
		return g.setTimer(g.delay)
	case !g.watching:
		if err := g.setTimer(0); err != nil {
			return err
		}
		if err := g.ctl(unix.EPOLL_CTL_ADD, g.sock); err != nil {
			return err
		}
		g.watching = true
	}
	return nil
}

// ctl adds or removes fd (raw syscalls: the process reader's thread calls
// them, see mmsg).
func (g *destroyGate) ctl(op, fd int) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
	_, _, e := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(g.ep), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(&ev)), 0, 0)
	if e != 0 {
		return fmt.Errorf("destroy gate: epoll_ctl %d: %w", op, e)
	}
	return nil
}

// setTimer starts the timer for d, or stops it (0); either clears an
// expiry not yet read.
func (g *destroyGate) setTimer(d time.Duration) error {
	its := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
	_, _, e := unix.RawSyscall6(unix.SYS_TIMERFD_SETTIME, uintptr(g.timer), 0, uintptr(unsafe.Pointer(&its)), 0, 0, 0)
	if e != 0 {
		return fmt.Errorf("destroy gate: timerfd_settime: %w", e)
	}
	return nil
}

func (g *destroyGate) close() {
	if g.timer >= 0 {
		unix.Close(g.timer)
	}
	unix.Close(g.ep)
}

// destroyReader receives and decodes destroy messages into a batch.
type destroyReader struct {
	s     *Source
	fd    int
	mm    *mmsg.Reader
	msgs  []sdNlMsg
	batch []sockDestroy
	last  int64 // time of the last datagram or overrun
}

// What one destroyReader.read found.
const (
	destroyEmpty  = iota // the socket is empty (EAGAIN, EINTR)
	destroyMore          // the bound was reached: the socket may hold more
	destroyFailed        // another error, logged: an overrun marker in the batch
)

// read receives what the socket holds, in at most calls recvmmsg(2), and
// decodes it into the batch; ENOBUFS (an overrun) becomes a marker in the
// batch. It returns how many datagrams it read.
func (r *destroyReader) read(calls int) (got int, st int) {
	s := r.s
	for range calls {
		n, err := r.mm.Recv(r.fd)
		now := s.now().UnixNano()
		switch {
		case err == nil:
		case errors.Is(err, unix.ENOBUFS):
			s.overruns.Add(1)
			r.batch = append(r.batch, sockDestroy{ts: now, overrun: true, since: r.last})
			r.last = now
			continue
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
			return got, destroyEmpty
		default:
			s.log.Error("receive sock_diag destroy message; stopping the destroy reader", "err", err)
			r.batch = append(r.batch, sockDestroy{ts: now, overrun: true, since: r.last})
			return got, destroyFailed
		}
		r.last = now
		for i := range n {
			if r.mm.Truncated(i) {
				s.log.Debug("destroy datagram truncated", "bytes", len(r.mm.Msg(i)))
				continue
			}
			r.decode(r.mm.Msg(i), now)
		}
		got += n
		if n < r.mm.Cap() {
			return got, destroyEmpty
		}
	}
	return got, destroyMore
}

// decode adds the destroy messages of one datagram, received at now, to
// the batch.
func (r *destroyReader) decode(b []byte, now int64) {
	s := r.s
	var err error
	r.msgs, err = sdSplitNetlink(b, r.msgs[:0])
	if err != nil {
		s.log.Debug("split destroy datagram", "err", err)
	}
	for _, nm := range r.msgs {
		if nm.Type != sdSockDiagByFamily {
			continue
		}
		m, err := decodeInetDiag(nm.Payload)
		if err != nil {
			s.log.Debug("decode destroy message", "err", err)
			continue
		}
		if m.Protocol == 0 {
			m.Protocol = sdIPProtoTCP
			if !m.HasInfo {
				m.Protocol = sdIPProtoUDP
			}
		}
		r.batch = append(r.batch, sockDestroy{ts: now, msg: m})
	}
}

// handOver gives the batch to the table (Source.deliver) and starts a new
// one.
func (r *destroyReader) handOver() {
	r.s.deliver(r.batch)
	clear(r.batch)
	r.batch = r.batch[:0]
}

// enqueue adds a batch to the queue as far as it has room (the rest is
// counted and becomes a gap row) and wakes the main loop.
func (s *Source) enqueue(batch []sockDestroy) {
	if len(batch) == 0 {
		return
	}
	var dropped int64
	s.qmu.Lock()
	for _, d := range batch {
		if len(s.queue) < sockMaxPending || (d.overrun && len(s.queue) < sockMaxPending+1024) {
			s.queue = append(s.queue, d)
		} else {
			dropped++
		}
	}
	if dropped > 0 && len(s.queue) < sockMaxPending+1024 {
		now := batch[len(batch)-1].ts
		s.queue = append(s.queue, sockDestroy{ts: now, overrun: true, since: batch[0].ts, dropped: dropped})
	}
	s.qmu.Unlock()
	if dropped > 0 {
		s.lost.Add(uint64(dropped))
	}
	select {
	case s.qsignal <- struct{}{}:
	default:
	}
}
