package dnspkt

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/netip"
	"strconv"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/pofr/pofr/internal/event"
)

// Limits of one message's record (the SQL columns hold these).
const (
	maxAnswers     = 64   // answer records rendered per message
	maxAnswerBytes = 4096 // bytes of the answers column
	maxAddrBytes   = 4096 // bytes of the answer_addrs column
	maxNameBytes   = 1024 // bytes of qname
)

// ErrNotDNS reports a packet that is not IPv4/IPv6 UDP or TCP to or from
// port 53, or is too short to say.
var ErrNotDNS = errors.New("dnspkt: not a DNS packet")

const (
	protoTCP = 6
	protoUDP = 17
)

// Packet is the transport view of one captured packet: slices into the
// packet's bytes.
type Packet struct {
	Proto        uint8 // protoTCP or protoUDP
	Src, Dst     []byte
	SPort, DPort uint16
	Payload      []byte
	Partial      bool   // the packet was cut (a first fragment, a short capture)
	Seq          uint32 // TCP sequence number
}

// ParsePacket reads the IP and UDP/TCP headers of b (starting at the network
// header). It never reads beyond b.
func ParsePacket(b []byte) (Packet, error) {
	var p Packet
	if len(b) < 1 {
		return p, ErrNotDNS
	}
	var l4 []byte
	switch b[0] >> 4 {
	case 4:
		if len(b) < 20 {
			return p, ErrNotDNS
		}
		ihl := int(b[0]&0xf) * 4
		total := int(binary.BigEndian.Uint16(b[2:]))
		if ihl < 20 || total < ihl || len(b) < ihl {
			return p, ErrNotDNS
		}
		if total < len(b) {
			b = b[:total] // link padding
		} else if total > len(b) {
			p.Partial = true
		}
		if binary.BigEndian.Uint16(b[6:])&0x1fff != 0 {
			return p, ErrNotDNS // a later fragment
		}
		if b[6]&0x20 != 0 {
			p.Partial = true // more fragments follow
		}
		p.Proto, p.Src, p.Dst, l4 = b[9], b[12:16], b[16:20], b[ihl:]
	case 6:
		if len(b) < 40 {
			return p, ErrNotDNS
		}
		plen := int(binary.BigEndian.Uint16(b[4:]))
		if 40+plen < len(b) {
			b = b[:40+plen]
		} else if 40+plen > len(b) {
			p.Partial = true
		}
		p.Proto, p.Src, p.Dst, l4 = b[6], b[8:24], b[24:40], b[40:]
	default:
		return p, ErrNotDNS
	}
	switch p.Proto {
	case protoUDP:
		if len(l4) < 8 {
			return p, ErrNotDNS
		}
		p.SPort, p.DPort = binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
		ulen := int(binary.BigEndian.Uint16(l4[4:]))
		if ulen >= 8 && ulen < len(l4) {
			l4 = l4[:ulen]
		} else if ulen > len(l4) {
			p.Partial = true
		}
		p.Payload = l4[8:]
	case protoTCP:
		if len(l4) < 20 {
			return p, ErrNotDNS
		}
		p.SPort, p.DPort = binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
		p.Seq = binary.BigEndian.Uint32(l4[4:])
		off := int(l4[12]>>4) * 4
		if off < 20 || off > len(l4) {
			return p, ErrNotDNS
		}
		p.Payload = l4[off:]
	default:
		return p, ErrNotDNS
	}
	if p.SPort != 53 && p.DPort != 53 {
		return p, ErrNotDNS
	}
	return p, nil
}

// Decode parses one DNS message msg into r: header, first question and
// answers. The transport fields (addresses, ports, proto, ts, owner) are
// the caller's. A message that cannot be parsed to its end keeps what was
// read and is flagged malformed; fewer than 12 bytes (no header) is an error.
func Decode(msg []byte, r *event.DNS) error {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return err
	}
	r.ID = h.ID
	r.Event = event.DNSQuery
	if h.Response {
		r.Event = event.DNSResponse
		r.RCode = event.Some(uint8(h.RCode))
	}
	if h.Truncated {
		r.Flags |= event.DNSFlagTruncated
	}
	q, err := p.Question()
	switch {
	case err == nil:
		name := q.Name.Data[:q.Name.Length]
		r.QName = append(r.QName[:0], name[:min(len(name), maxNameBytes)]...)
		r.QType = event.Some(uint16(q.Type))
	case errors.Is(err, dnsmessage.ErrSectionDone):
	default:
		r.Flags |= event.DNSFlagMalformed
		return nil
	}
	if !h.Response {
		return nil
	}
	if err := p.SkipAllQuestions(); err != nil {
		r.Flags |= event.DNSFlagMalformed
		return nil
	}
	ans, addrs := r.Answers[:0], r.AnswerAddrs[:0]
	cut := false
	for n := 0; ; n++ {
		ah, err := p.AnswerHeader()
		if errors.Is(err, dnsmessage.ErrSectionDone) {
			break
		}
		if err != nil {
			r.Flags |= event.DNSFlagMalformed
			break
		}
		if n >= maxAnswers {
			cut = true
			break
		}
		line := append([]byte(nil), ah.Name.Data[:ah.Name.Length]...)
		line = append(line, ' ')
		line = append(line, typeName(ah.Type)...)
		line = append(line, ' ')
		line = strconv.AppendUint(line, uint64(ah.TTL), 10)
		line = append(line, ' ')
		line, ip, err := appendData(line, &p, ah)
		if err != nil {
			r.Flags |= event.DNSFlagMalformed
		}
		line = append(line, '\n')
		if len(ans)+len(line) > maxAnswerBytes {
			cut = true
		} else {
			ans = append(ans, line...)
		}
		if ip != nil {
			addrs = appendAddr(addrs, ip, &cut)
		}
		if r.Flags&event.DNSFlagMalformed != 0 {
			break
		}
	}
	if cut {
		r.Flags |= event.DNSFlagAnswersCut
	}
	if len(ans) > 0 {
		r.Answers = ans
	}
	if len(addrs) > 0 {
		r.AnswerAddrs = addrs
	}
	return nil
}

// appendData appends the data of the answer p is at, whose header is ah,
// to line as text: the address of an A or AAAA record (also returned as ip,
// 4 or 16 bytes), the target name of a CNAME or PTR, the length of any
// other. On an error, line is returned as it came.
func appendData(line []byte, p *dnsmessage.Parser, ah dnsmessage.ResourceHeader) (_, ip []byte, err error) {
	switch ah.Type {
	case dnsmessage.TypeA:
		a, err := p.AResource()
		if err != nil {
			return line, nil, err
		}
		return netip.AddrFrom4(a.A).AppendTo(line), a.A[:], nil
	case dnsmessage.TypeAAAA:
		a, err := p.AAAAResource()
		if err != nil {
			return line, nil, err
		}
		return netip.AddrFrom16(a.AAAA).AppendTo(line), a.AAAA[:], nil
	case dnsmessage.TypeCNAME:
		c, err := p.CNAMEResource()
		if err != nil {
			return line, nil, err
		}
		return append(line, c.CNAME.Data[:c.CNAME.Length]...), nil, nil
	case dnsmessage.TypePTR:
		c, err := p.PTRResource()
		if err != nil {
			return line, nil, err
		}
		return append(line, c.PTR.Data[:c.PTR.Length]...), nil, nil
	}
	line = append(line, "len="...)
	line = strconv.AppendUint(line, uint64(ah.Length), 10)
	return line, nil, p.SkipAnswer()
}

// appendAddr adds ip in upper-case hex to a ",A,B," list, and an IPv4
// address also in its IPv4-mapped form (what an AF_INET6 socket shows).
func appendAddr(dst, ip []byte, cut *bool) []byte {
	forms := [][]byte{ip}
	if len(ip) == 4 {
		m := make([]byte, 16)
		m[10], m[11] = 0xff, 0xff
		copy(m[12:], ip)
		forms = append(forms, m)
	}
	for _, f := range forms {
		if len(dst)+2*len(f)+2 > maxAddrBytes {
			*cut = true
			return dst
		}
		if len(dst) == 0 {
			dst = append(dst, ',')
		}
		n := len(dst)
		dst = hex.AppendEncode(dst, f)
		for i := n; i < len(dst); i++ {
			if c := dst[i]; c >= 'a' && c <= 'f' {
				dst[i] = c - 'a' + 'A'
			}
		}
		dst = append(dst, ',')
	}
	return dst
}

// typeName is the mnemonic of a record type ("A", "AAAA"), or TYPEnnn.
func typeName(t dnsmessage.Type) string {
	switch t {
	case dnsmessage.TypeA:
		return "A"
	case dnsmessage.TypeAAAA:
		return "AAAA"
	case dnsmessage.TypeCNAME:
		return "CNAME"
	case dnsmessage.TypePTR:
		return "PTR"
	case dnsmessage.TypeNS:
		return "NS"
	case dnsmessage.TypeMX:
		return "MX"
	case dnsmessage.TypeTXT:
		return "TXT"
	case dnsmessage.TypeSRV:
		return "SRV"
	case dnsmessage.TypeSOA:
		return "SOA"
	case dnsmessage.TypeOPT:
		return "OPT"
	}
	return "TYPE" + strconv.Itoa(int(t))
}

// splitTCP returns the DNS messages of one TCP segment's payload, each after
// its 2-byte length prefix (RFC 1035 4.2.2), skip bytes of a message begun
// in an earlier segment first; rest is how many bytes of the last message
// are still to come (it is returned cut, and partial is set).
func splitTCP(payload []byte, skip int, fn func(msg []byte, partial bool)) (rest int) {
	if skip >= len(payload) {
		return skip - len(payload)
	}
	p := payload[skip:]
	for len(p) >= 2 {
		n := int(binary.BigEndian.Uint16(p))
		p = p[2:]
		if n > len(p) {
			fn(p, true)
			return n - len(p)
		}
		fn(p[:n], false)
		p = p[n:]
	}
	return 0
}
