package dnspkt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/pofr/pofr/collector"
	"github.com/pofr/pofr/collector/sockowner"
	"github.com/pofr/pofr/internal/defaults"
	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/procfs"
)

// Owners names the process of a client socket. sockowner.Source
// implements it.
type Owners interface {
	// Refresh reads the pending tracepoint records, so that a socket
	// connected just before its first packet is known.
	Refresh()
	Lookup(k sockowner.Key, laddr [16]byte) (sockowner.Owner, bool)
}

// Options configure a [Source].
type Options struct {
	// Sink receives the gap rows of packet socket drops. Required.
	Sink event.Sink
	// DNS receives the dns rows. Required.
	DNS event.DNSSink
	// Owners names client sockets' processes; nil leaves every row's owner
	// unknown.
	Owners Owners
	// Procs gives an owner's proc_start; /proc/PID/stat when it does not know.
	Procs collector.Processes
	// ProcRoot is the procfs mount point; "" means /proc.
	ProcRoot string
	// RcvBuf is the packet socket's receive buffer; zero means 4 MiB.
	RcvBuf int
	// Log receives start-up and drop summaries; nil discards them.
	Log *slog.Logger
	// Driver, if set, reads the packet socket at its own drain ticks for as long as
	// it drives it (the tracepoint process reader: no wakeup of this
	// source's own; docs/design.md, "One drain for every queue"). May be nil.
	Driver collector.QueueDriver
}

// Stats are the counters of a [Source] since it started.
type Stats struct {
	Packets      uint64 // packets read (after the filter)
	Messages     uint64 // DNS messages recorded
	Duplicates   uint64 // packets seen again on another interface within a second (not recorded)
	NotDNS       uint64 // packets the parser refused (no header, bad IP/UDP/TCP header)
	Malformed    uint64 // messages recorded with the malformed flag
	Partial      uint64 // messages recorded with the partial flag
	OwnerUnknown uint64 // messages recorded without an owner
	Drops        uint64 // packets the kernel dropped (PACKET_STATISTICS); each interval is a gap row
}

// Source reads DNS packets from an AF_PACKET socket.
type Source struct {
	o   Options
	fd  int
	fs  procfs.FS
	buf []byte
	// from is the sender's address of the packet read last (recv).
	from    unix.RawSockaddrLinklayer
	fromLen uint32

	mu sync.Mutex
	st Stats

	seen, prev map[dupKey]struct{} // messages of this and the previous second
	tcpRest    map[flowKey]int     // bytes of a TCP message still to come per flow
	lastStats  time.Time
}

type dupKey struct {
	client, server [16]byte
	cport, sport   uint16
	id             uint16
	resp, tcp      bool
	n              int
}

type flowKey struct {
	src, dst     [16]byte
	sport, dport uint16
}

const maxTCPFlows = 4096

// New opens the packet socket with the filter attached before it is bound,
// so no unfiltered packet is ever queued.
func New(o Options) (*Source, error) {
	if o.Sink == nil || o.DNS == nil {
		return nil, errors.New("dnspkt: Sink and DNS are required")
	}
	if o.RcvBuf == 0 {
		o.RcvBuf = 4 << 20
	}
	defaults.Zero(&o.Log, slog.New(slog.DiscardHandler))
	prog, err := Filter()
	if err != nil {
		return nil, fmt.Errorf("dns packet filter: %w", err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dns packet socket: %w", err)
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: (*unix.SockFilter)(unsafe.Pointer(&prog[0]))}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("dns packet socket: attach filter: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, o.RcvBuf); err != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, o.RcvBuf)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL)}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("dns packet socket: bind: %w", err)
	}
	// Packets queued between socket and bind passed no filter: the socket
	// had protocol 0, which receives none.
	s := &Source{o: o, fd: fd, fs: procfs.New(o.ProcRoot), buf: make([]byte, snapLen+1),
		seen: map[dupKey]struct{}{}, prev: map[dupKey]struct{}{}, tcpRest: map[flowKey]int{}, lastStats: time.Now()}
	return s, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Run reads packets until ctx ends.
func (s *Source) Run(ctx context.Context) error {
	pfd := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}}
	tick := time.Now()
	var err error
	if s.o.Driver != nil {
		s.o.Driver.Drive(ctx, s.fd, func() (bool, time.Time) {
			// The dedup window turns before the batch: an idle driver
			// drains seldom, and what was seen two turns ago is forgotten.
			if now := time.Now(); now.Sub(tick) >= time.Second {
				if now.Sub(tick) >= 2*time.Second {
					s.rotate()
				}
				tick = now
				s.rotate()
				s.pollDrops(now)
			}
			if err = s.drain(); err != nil {
				return false, time.Time{}
			}
			return true, time.Time{}
		})
		if err != nil {
			return err
		}
	}
	for ctx.Err() == nil {
		_, err := unix.Poll(pfd, 200)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("dns packet socket: poll: %w", err)
		}
		if err := s.drain(); err != nil {
			return err
		}
		if now := time.Now(); now.Sub(tick) >= time.Second {
			tick = now
			s.rotate()
			s.pollDrops(now)
		}
	}
	s.pollDrops(time.Now())
	return nil
}

// drain reads every queued packet (up to a batch) and records them, with
// one owner refresh per batch.
func (s *Source) drain() error {
	type pkt struct {
		b  []byte
		ts int64
	}
	var batch []pkt
	for len(batch) < 256 {
		n, err := s.recv()
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			break
		}
		if err != nil {
			return fmt.Errorf("dns packet socket: read: %w", err)
		}
		ts := time.Now().UnixNano()
		if ll := &s.from; ll.Family == unix.AF_PACKET && ll.Pkttype == unix.PACKET_OUTGOING && ll.Hatype == unix.ARPHRD_LOOPBACK {
			continue // loopback shows each packet twice: keep the incoming copy
		}
		b := s.buf[:min(n, len(s.buf))]
		if n > len(s.buf) {
			b = b[:len(s.buf)]
		}
		batch = append(batch, pkt{append([]byte(nil), b...), ts})
	}
	if len(batch) == 0 {
		return nil
	}
	if s.o.Owners != nil {
		s.o.Owners.Refresh()
	}
	for _, p := range batch {
		s.handle(p.b, p.ts)
	}
	return nil
}

// recv reads one packet into s.buf without blocking and its sender's
// address into s.from: unix.Recvfrom allocates the address on every call,
// the empty read of each drain included.
func (s *Source) recv() (int, error) {
	s.fromLen = unix.SizeofSockaddrLinklayer
	n, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(s.fd), uintptr(unsafe.Pointer(&s.buf[0])), uintptr(len(s.buf)),
		unix.MSG_DONTWAIT|unix.MSG_TRUNC, uintptr(unsafe.Pointer(&s.from)), uintptr(unsafe.Pointer(&s.fromLen)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// handle records the DNS messages of one packet.
func (s *Source) handle(b []byte, ts int64) {
	s.mu.Lock()
	s.st.Packets++
	s.mu.Unlock()
	p, err := ParsePacket(b)
	if err != nil {
		s.count(func(st *Stats) { st.NotDNS++ })
		return
	}
	if p.Proto == protoUDP {
		s.message(&p, p.Payload, p.Partial, ts)
		return
	}
	if len(p.Payload) == 0 {
		return
	}
	fk := flowKey{src: sockowner.Mapped(p.Src), dst: sockowner.Mapped(p.Dst), sport: p.SPort, dport: p.DPort}
	skip := s.tcpRest[fk]
	rest := splitTCP(p.Payload, skip, func(msg []byte, partial bool) { s.message(&p, msg, partial || p.Partial, ts) })
	if rest > 0 {
		if len(s.tcpRest) >= maxTCPFlows {
			clear(s.tcpRest)
		}
		s.tcpRest[fk] = rest
	} else {
		delete(s.tcpRest, fk)
	}
}

// message records one DNS message of packet p.
func (s *Source) message(p *Packet, msg []byte, partial bool, ts int64) {
	r := event.DNS{TS: ts, Proto: "udp"}
	if p.Proto == protoTCP {
		r.Proto = "tcp"
	}
	if err := Decode(msg, &r); err != nil {
		s.count(func(st *Stats) { st.NotDNS++ })
		return
	}
	if partial {
		r.Flags |= event.DNSFlagPartial
	}
	client, server, cport, sport := p.Src, p.Dst, p.SPort, p.DPort
	if r.Event == event.DNSResponse {
		client, server, cport, sport = p.Dst, p.Src, p.DPort, p.SPort
	}
	r.ClientAddr, r.ServerAddr, r.ClientPort, r.ServerPort = client, server, cport, sport
	k := dupKey{client: sockowner.Mapped(client), server: sockowner.Mapped(server), cport: cport, sport: sport,
		id: r.ID, resp: r.Event == event.DNSResponse, tcp: p.Proto == protoTCP, n: len(msg)}
	if _, dup := s.seen[k]; dup {
		s.count(func(st *Stats) { st.Duplicates++ })
		return
	}
	if _, dup := s.prev[k]; dup {
		s.count(func(st *Stats) { st.Duplicates++ })
		return
	}
	s.seen[k] = struct{}{}
	s.owner(&r, p.Proto, client, cport, server, sport)
	s.count(func(st *Stats) {
		st.Messages++
		if r.Flags&event.DNSFlagMalformed != 0 {
			st.Malformed++
		}
		if r.Flags&event.DNSFlagPartial != 0 {
			st.Partial++
		}
		if r.Flags&event.DNSFlagOwnerUnknown != 0 {
			st.OwnerUnknown++
		}
	})
	s.o.DNS.AppendDNS(&r)
}

// owner fills the row's process key from the client socket's owner.
func (s *Source) owner(r *event.DNS, proto uint8, client []byte, cport uint16, server []byte, sport uint16) {
	if s.o.Owners != nil {
		k, laddr := sockowner.KeyOf(proto, client, cport, server, sport)
		if o, ok := s.o.Owners.Lookup(k, laddr); ok {
			r.PID = event.Some(o.PID)
			if s.o.Procs != nil {
				if pi, ok := s.o.Procs.Lookup(o.PID); ok {
					r.ProcStart = event.Some(pi.Start)
				}
			}
			if !r.ProcStart.Valid {
				if st, err := s.fs.Start(o.PID); err == nil {
					r.ProcStart = event.Some(st)
				}
			}
			return
		}
	}
	r.Flags |= event.DNSFlagOwnerUnknown
}

func (s *Source) count(f func(*Stats)) { s.mu.Lock(); f(&s.st); s.mu.Unlock() }

// rotate ages the duplicate filter: a message is a duplicate of one seen
// in the current or the previous second.
func (s *Source) rotate() {
	s.prev, s.seen = s.seen, s.prev
	clear(s.seen)
}

// pollDrops reads (and so resets) the kernel's drop counter and writes a
// gap row for the interval in which packets were dropped.
func (s *Source) pollDrops(now time.Time) {
	st, err := unix.GetsockoptTpacketStats(s.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	from := s.lastStats
	s.lastStats = now
	if err != nil || st.Drops == 0 {
		return
	}
	s.count(func(x *Stats) { x.Drops += uint64(st.Drops) })
	s.o.Sink.AppendGap(&event.Gap{FromTS: from.UnixNano(), ToTS: now.UnixNano(), Source: event.SourceDNS,
		Lost: event.Some(int64(st.Drops)), Reason: "DNS packet socket receive buffer full"})
	s.o.Log.Warn("DNS packets dropped", "lost", st.Drops)
}

// Stats returns the counters.
func (s *Source) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

// Close releases the socket; call it after Run returned.
func (s *Source) Close() error { return unix.Close(s.fd) }
