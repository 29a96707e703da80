package sockowner

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/pofr/pofr/collector/tracepoint"
)

// ErrShort is returned for a sample shorter than its layout.
var ErrShort = errors.New("sockowner: sample shorter than its format")

// field is one located field.
type field struct{ off, size int }

// locate looks up an inline field called name of one of the given sizes.
func locate(f *tracepoint.Format, event, name string, sizes ...int) (field, error) {
	fd, err := f.Field(name)
	if err != nil {
		return field{}, fmt.Errorf("format of %s: %w", event, err)
	}
	if fd.Loc == tracepoint.LocInline && fd.Offset >= 0 {
		for _, s := range sizes {
			if fd.Size == s {
				return field{fd.Offset, fd.Size}, nil
			}
		}
	}
	return field{}, fmt.Errorf("format of %s: field %s has size %d at %d, want an inline field of size %v",
		event, name, fd.Size, fd.Offset, sizes)
}

// end is one past the last byte of the fields.
func end(fs ...field) int {
	n := 0
	for _, f := range fs {
		n = max(n, f.off+f.size)
	}
	return n
}

func (f field) u16(b []byte) uint16 { return binary.NativeEndian.Uint16(b[f.off:]) }
func (f field) u32(b []byte) uint32 { return binary.NativeEndian.Uint32(b[f.off:]) }

// addr reads an address field of 4 or 16 bytes as [Mapped] does.
func (f field) addr(b []byte) [16]byte { return Mapped(b[f.off : f.off+f.size]) }

// uint reads an unsigned field of size 1, 2, 4 or 8.
func (f field) uint(b []byte) uint64 {
	switch f.size {
	case 1:
		return uint64(b[f.off])
	case 2:
		return uint64(f.u16(b))
	case 4:
		return uint64(f.u32(b))
	}
	return binary.NativeEndian.Uint64(b[f.off:])
}

// TCP states as the kernel numbers them (include/net/tcp_states.h).
const (
	TCPEstablished = 1
	TCPSynSent     = 2
	TCPSynRecv     = 3
	TCPClose       = 7
	TCPListen      = 10
)

// Address families and protocols.
const (
	afInet   = 2
	afInet6  = 10
	protoTCP = 6
	protoUDP = 17
)

// Tracepoints read, "sys:name".
const (
	eventState  = "sock:inet_sock_set_state"
	eventRoute4 = "fib:fib_table_lookup"
	eventRoute6 = "fib6:fib6_table_lookup"
)

// StateFilter is the kernel-side filter for inet_sock_set_state: the
// connect(2) transition and every transition out of SYN_SENT (2 records per
// outbound connection, joined into its owner), and the accepted end
// becoming ESTABLISHED and a socket becoming a listener (1 record per
// inbound connection, 1 per listen(2); counted only, so that the socket
// source knows when a TCP dump can find something new: [Tracker.Appeared]).
// Without a filter a connection makes about 10 records (every state of both
// ends).
const StateFilter = "(oldstate == 7 && newstate == 2) || oldstate == 2 || (oldstate == 3 && newstate == 1) || newstate == 10"

// RouteFilter is the kernel-side filter for fib_table_lookup and
// fib6_table_lookup: UDP lookups with both ports, which a connect(2) or a
// send on an unconnected socket makes in the sending task.
const RouteFilter = "proto == 17 && sport != 0 && dport != 0"

// StateChange is one decoded sock:inet_sock_set_state sample. Addresses are
// 16 bytes, IPv4 as ::ffff:a.b.c.d; ports are in host order.
type StateChange struct {
	Skaddr             uint64
	OldState, NewState int32
	Family, Protocol   uint16
	SPort, DPort       uint16
	SAddr, DAddr       [16]byte
}

// StateLayout decodes inet_sock_set_state samples of one kernel build.
type StateLayout struct {
	skaddr, oldstate, newstate, sport, dport, family, protocol field
	saddr, daddr, saddr6, daddr6                               field
	min                                                        int
}

// NewStateLayout reads the layout of inet_sock_set_state from its format.
func NewStateLayout(f *tracepoint.Format) (*StateLayout, error) {
	const ev = "sock:inet_sock_set_state"
	var l StateLayout
	var err error
	get := func(dst *field, name string, sizes ...int) {
		if err == nil {
			*dst, err = locate(f, ev, name, sizes...)
		}
	}
	get(&l.skaddr, "skaddr", 4, 8)
	get(&l.oldstate, "oldstate", 4)
	get(&l.newstate, "newstate", 4)
	get(&l.sport, "sport", 2)
	get(&l.dport, "dport", 2)
	get(&l.family, "family", 2)
	get(&l.protocol, "protocol", 2)
	get(&l.saddr, "saddr", 4)
	get(&l.daddr, "daddr", 4)
	get(&l.saddr6, "saddr_v6", 16)
	get(&l.daddr6, "daddr_v6", 16)
	if err != nil {
		return nil, err
	}
	l.min = end(l.skaddr, l.oldstate, l.newstate, l.sport, l.dport, l.family, l.protocol,
		l.saddr, l.daddr, l.saddr6, l.daddr6)
	return &l, nil
}

// Decode decodes one raw sample (PERF_SAMPLE_RAW payload) into c.
func (l *StateLayout) Decode(raw []byte, c *StateChange) error {
	if len(raw) < l.min {
		return ErrShort
	}
	c.Skaddr = l.skaddr.uint(raw)
	c.OldState = int32(l.oldstate.u32(raw))
	c.NewState = int32(l.newstate.u32(raw))
	c.SPort, c.DPort = l.sport.u16(raw), l.dport.u16(raw)
	c.Family, c.Protocol = l.family.u16(raw), l.protocol.u16(raw)
	if c.Family == afInet6 {
		c.SAddr, c.DAddr = l.saddr6.addr(raw), l.daddr6.addr(raw)
	} else {
		c.SAddr, c.DAddr = l.saddr.addr(raw), l.daddr.addr(raw)
	}
	return nil
}

// Route is one decoded fib:fib_table_lookup or fib6:fib6_table_lookup
// sample: the flow key that was looked up (not the result). Addresses as in
// [StateChange]; SAddr is zero when the socket is not bound to an address.
type Route struct {
	Proto        uint8
	SPort, DPort uint16
	SAddr, DAddr [16]byte
	IIf          int32
}

// RouteLayout decodes fib_table_lookup (IPv4) or fib6_table_lookup samples.
type RouteLayout struct {
	proto, sport, dport, src, dst field
	iif                           field
	min                           int
}

// NewRouteLayout reads the layout of fib_table_lookup (v6 false) or
// fib6_table_lookup (v6 true) from its format.
func NewRouteLayout(f *tracepoint.Format, v6 bool) (*RouteLayout, error) {
	ev, asize := "fib:fib_table_lookup", 4
	if v6 {
		ev, asize = "fib6:fib6_table_lookup", 16
	}
	l := RouteLayout{}
	var err error
	get := func(dst *field, name string, sizes ...int) {
		if err == nil {
			*dst, err = locate(f, ev, name, sizes...)
		}
	}
	get(&l.proto, "proto", 1)
	get(&l.sport, "sport", 2)
	get(&l.dport, "dport", 2)
	get(&l.src, "src", asize)
	get(&l.dst, "dst", asize)
	get(&l.iif, "iif", 4)
	if err != nil {
		return nil, err
	}
	l.min = end(l.proto, l.sport, l.dport, l.src, l.dst, l.iif)
	return &l, nil
}

// Decode decodes one raw sample into r.
func (l *RouteLayout) Decode(raw []byte, r *Route) error {
	if len(raw) < l.min {
		return ErrShort
	}
	r.Proto = raw[l.proto.off]
	r.SPort, r.DPort = l.sport.u16(raw), l.dport.u16(raw)
	r.IIf = int32(l.iif.u32(raw))
	r.SAddr, r.DAddr = l.src.addr(raw), l.dst.addr(raw)
	return nil
}

// Mapped returns a 4-byte IPv4 address as ::ffff:a.b.c.d and a 16-byte
// address unchanged, so that an IPv4 connection made on an IPv6 socket and
// one made on an IPv4 socket have the same key.
func Mapped(a []byte) [16]byte {
	var m [16]byte
	if len(a) == 4 {
		m[10], m[11] = 0xff, 0xff
		copy(m[12:], a)
		return m
	}
	copy(m[:], a)
	return m
}
