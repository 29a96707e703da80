package dnspkt

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/bpf"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/pofr/pofr/internal/event"
)

// answer builds a response to name with the given A addresses and a CNAME.
func answer(t testing.TB, id uint16, name string, addrs ...[4]byte) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, Response: true, RCode: dnsmessage.RCodeSuccess})
	b.EnableCompression()
	n := dnsmessage.MustNewName(name)
	must(t, b.StartQuestions())
	must(t, b.Question(dnsmessage.Question{Name: n, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}))
	must(t, b.StartAnswers())
	must(t, b.CNAMEResource(dnsmessage.ResourceHeader{Name: n, Class: dnsmessage.ClassINET, TTL: 30}, dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName("edge." + name)}))
	for _, a := range addrs {
		must(t, b.AResource(dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName("edge." + name), Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: a}))
	}
	msg, err := b.Finish()
	must(t, err)
	return msg
}

func query(t testing.TB, id uint16, name string, typ dnsmessage.Type) []byte {
	t.Helper()
	msg, err := buildQuery(id, name, typ)
	must(t, err)
	return msg
}

func buildQuery(id uint16, name string, typ dnsmessage.Type) ([]byte, error) {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true})
	b.StartQuestions()
	n, err := dnsmessage.NewName(name)
	if err != nil {
		return nil, err
	}
	if err := b.Question(dnsmessage.Question{Name: n, Type: typ, Class: dnsmessage.ClassINET}); err != nil {
		return nil, err
	}
	return b.Finish()
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// ipv4 wraps a UDP (proto 17) or TCP (6) payload in an IPv4 header.
func ipv4(proto uint8, src, dst [4]byte, sport, dport uint16, payload []byte) []byte {
	var l4 []byte
	if proto == protoUDP {
		l4 = make([]byte, 8)
		binary.BigEndian.PutUint16(l4[4:], uint16(8+len(payload)))
	} else {
		l4 = make([]byte, 20)
		l4[12] = 5 << 4
	}
	binary.BigEndian.PutUint16(l4, sport)
	binary.BigEndian.PutUint16(l4[2:], dport)
	l4 = append(l4, payload...)
	h := make([]byte, 20)
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(l4)))
	h[8], h[9] = 64, proto
	copy(h[12:], src[:])
	copy(h[16:], dst[:])
	return append(h, l4...)
}

func ipv6(proto uint8, src, dst [16]byte, sport, dport uint16, payload []byte) []byte {
	l4 := make([]byte, 8)
	binary.BigEndian.PutUint16(l4, sport)
	binary.BigEndian.PutUint16(l4[2:], dport)
	binary.BigEndian.PutUint16(l4[4:], uint16(8+len(payload)))
	l4 = append(l4, payload...)
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(l4)))
	h[6], h[7] = proto, 64
	copy(h[8:], src[:])
	copy(h[24:], dst[:])
	return append(h, l4...)
}

var (
	cli4 = [4]byte{10, 0, 0, 7}
	srv4 = [4]byte{10, 0, 0, 53}
)

// TestFilter runs the socket filter in x/net/bpf's VM: DNS over UDP and TCP,
// IPv4 and IPv6, either direction passes whole; other ports, other
// protocols, later fragments and garbage are dropped.
func TestFilter(t *testing.T) {
	vm, err := bpf.NewVM(filterProgram)
	if err != nil {
		t.Fatal(err)
	}
	q := query(t, 1, "example.com.", dnsmessage.TypeA)
	frag := ipv4(protoUDP, cli4, srv4, 4000, 53, q)
	binary.BigEndian.PutUint16(frag[6:], 10) // fragment offset 10
	var v6c, v6s [16]byte
	v6c[15], v6s[15] = 1, 2
	opts := ipv4(protoUDP, cli4, srv4, 4000, 53, q)
	opts = append(append(opts[:20:20], 0x45, 0, 0, 0), opts[20:]...) // 4 bytes of IP options
	opts[0] = 0x46
	for _, c := range []struct {
		name string
		pkt  []byte
		want bool
	}{
		{"udp4 query", ipv4(protoUDP, cli4, srv4, 4000, 53, q), true},
		{"udp4 response", ipv4(protoUDP, srv4, cli4, 53, 4000, q), true},
		{"tcp4", ipv4(protoTCP, cli4, srv4, 4000, 53, q), true},
		{"udp4 with options", opts, true},
		{"udp6", ipv6(protoUDP, v6c, v6s, 4000, 53, q), true},
		{"tcp6 response", ipv6(protoTCP, v6s, v6c, 53, 4000, q), true},
		{"udp4 other port", ipv4(protoUDP, cli4, srv4, 4000, 5353, q), false},
		{"tcp4 https", ipv4(protoTCP, cli4, srv4, 4000, 443, q), false},
		{"icmp", ipv4(1, cli4, srv4, 53, 53, q), false},
		{"later fragment", frag, false},
		{"udp6 other port", ipv6(protoUDP, v6c, v6s, 4000, 853, q), false},
		{"empty", nil, false},
		{"arp-ish", []byte{0x00, 0x01, 0x08, 0x00}, false},
	} {
		n, err := vm.Run(c.pkt)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := n > 0; got != c.want {
			t.Errorf("%s: accepted %v (%d bytes), want %v", c.name, got, n, c.want)
		}
		if c.want && n < len(c.pkt) {
			t.Errorf("%s: kept %d of %d bytes", c.name, n, len(c.pkt))
		}
	}
	if _, err := Filter(); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeResponse(t *testing.T) {
	pkt := ipv4(protoUDP, srv4, cli4, 53, 4000, answer(t, 0xbeef, "example.com.", [4]byte{93, 184, 216, 34}, [4]byte{1, 2, 3, 4}))
	p, err := ParsePacket(pkt)
	if err != nil {
		t.Fatal(err)
	}
	var r event.DNS
	if err := Decode(p.Payload, &r); err != nil {
		t.Fatal(err)
	}
	want := event.DNS{Event: event.DNSResponse, ID: 0xbeef, QName: []byte("example.com."), QType: event.Some[uint16](1),
		RCode:       event.Some[uint8](0),
		Answers:     []byte("example.com. CNAME 30 edge.example.com.\nedge.example.com. A 60 93.184.216.34\nedge.example.com. A 60 1.2.3.4\n"),
		AnswerAddrs: []byte(",5DB8D822,00000000000000000000FFFF5DB8D822,01020304,00000000000000000000FFFF01020304,")}
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestDecodeQueryAndHostile(t *testing.T) {
	var r event.DNS
	if err := Decode(query(t, 7, "a\\.b.example.", dnsmessage.TypeAAAA), &r); err != nil {
		t.Fatal(err)
	}
	if r.Event != event.DNSQuery || r.RCode.Valid || r.QType != event.Some[uint16](28) || r.Answers != nil {
		t.Errorf("query: %+v", r)
	}
	// A name with a byte outside printable ASCII comes back exactly as
	// dnsmessage renders it.
	raw := query(t, 8, "x.example.", dnsmessage.TypeA)
	raw[13] = 0xff // the label "x"
	r = event.DNS{}
	if err := Decode(raw, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.QName) == 0 || r.Flags&event.DNSFlagMalformed != 0 {
		t.Errorf("hostile label: %q flags %d", r.QName, r.Flags)
	}
	// Cut in the middle of the answers: what was read stays, flagged.
	full := answer(t, 9, "example.com.", [4]byte{1, 1, 1, 1}, [4]byte{2, 2, 2, 2})
	r = event.DNS{}
	if err := Decode(full[:len(full)-3], &r); err != nil {
		t.Fatal(err)
	}
	if r.Flags&event.DNSFlagMalformed == 0 || string(r.QName) != "example.com." {
		t.Errorf("cut response: flags %d qname %q", r.Flags, r.QName)
	}
	if err := Decode(full[:11], &event.DNS{}); err == nil {
		t.Error("11 bytes decoded without error")
	}
}

func TestDecodeLimits(t *testing.T) {
	var addrs [][4]byte
	for i := range 200 {
		addrs = append(addrs, [4]byte{10, 1, byte(i >> 8), byte(i)})
	}
	var r event.DNS
	if err := Decode(answer(t, 1, "many.example.", addrs...), &r); err != nil {
		t.Fatal(err)
	}
	if r.Flags&event.DNSFlagAnswersCut == 0 || len(r.Answers) > maxAnswerBytes || len(r.AnswerAddrs) > maxAddrBytes {
		t.Errorf("flags %d, %d answer bytes, %d addr bytes", r.Flags, len(r.Answers), len(r.AnswerAddrs))
	}
}

// TestSplitTCP: two messages in one segment, then one split over two.
func TestSplitTCP(t *testing.T) {
	a, b := query(t, 1, "a.example.", dnsmessage.TypeA), query(t, 2, "b.example.", dnsmessage.TypeA)
	framed := func(m []byte) []byte { return append(binary.BigEndian.AppendUint16(nil, uint16(len(m))), m...) }
	seg := append(framed(a), framed(b)...)
	var got []string
	rest := splitTCP(seg, 0, func(m []byte, partial bool) {
		var r event.DNS
		if Decode(m, &r) == nil {
			got = append(got, string(r.QName))
		}
	})
	if rest != 0 || !cmp.Equal(got, []string{"a.example.", "b.example."}) {
		t.Errorf("two messages: %q rest %d", got, rest)
	}
	f := framed(a)
	var parts []bool
	rest = splitTCP(f[:10], 0, func(m []byte, partial bool) { parts = append(parts, partial) })
	if rest != len(f)-10 || !cmp.Equal(parts, []bool{true}) {
		t.Fatalf("first half: rest %d parts %v", rest, parts)
	}
	parts = nil
	rest = splitTCP(append(f[10:], framed(b)...), rest, func(m []byte, partial bool) { parts = append(parts, partial) })
	if rest != 0 || !cmp.Equal(parts, []bool{false}) {
		t.Errorf("second half: rest %d parts %v", rest, parts)
	}
}

func TestParsePacketRefuses(t *testing.T) {
	q := query(t, 1, "example.com.", dnsmessage.TypeA)
	good := ipv4(protoUDP, cli4, srv4, 4000, 53, q)
	for _, c := range []struct {
		name string
		b    []byte
	}{
		{"short", good[:19]},
		{"ihl<5", append([]byte{0x44}, good[1:]...)},
		{"udp header cut", good[:25]},
		{"not port 53", ipv4(protoUDP, cli4, srv4, 4000, 54, q)},
		{"version 5", append([]byte{0x55}, good[1:]...)},
	} {
		if _, err := ParsePacket(c.b); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
	p, err := ParsePacket(good[:len(good)-4])
	if err != nil || !p.Partial {
		t.Errorf("cut packet: %v partial %v", err, p.Partial)
	}
	if a, _ := netip.AddrFromSlice(p.Dst); a != netip.AddrFrom4(srv4) {
		t.Errorf("dst %v", a)
	}
}

// FuzzDecode feeds arbitrary packets to the packet and message parsers: no
// panic, and the limits of every column hold.
func FuzzDecode(f *testing.F) {
	f.Add(ipv4(protoUDP, srv4, cli4, 53, 4000, answer(f, 1, "example.com.", [4]byte{1, 2, 3, 4})))
	f.Add(ipv4(protoTCP, cli4, srv4, 4000, 53, append([]byte{0, 29}, query(f, 2, "example.com.", dnsmessage.TypeA)...)))
	var v6 [16]byte
	f.Add(ipv6(protoUDP, v6, v6, 53, 53, answer(f, 3, "x.", [4]byte{9, 9, 9, 9})))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePacket(b)
		if err != nil {
			return
		}
		check := func(msg []byte, _ bool) {
			var r event.DNS
			if Decode(msg, &r) != nil {
				return
			}
			if len(r.QName) > maxNameBytes || len(r.Answers) > maxAnswerBytes || len(r.AnswerAddrs) > maxAddrBytes {
				t.Fatalf("limits: %d %d %d", len(r.QName), len(r.Answers), len(r.AnswerAddrs))
			}
		}
		if p.Proto == protoTCP {
			splitTCP(p.Payload, 0, check)
		} else {
			check(p.Payload, p.Partial)
		}
	})
}
