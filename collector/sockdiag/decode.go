package sockdiag

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/pofr/pofr/internal/procfs"
)

// This file holds the pure part of the socket source: decoders and encoders of
// sock_diag (inet_diag) netlink messages and of /proc/net/{tcp,udp}{,6}. They
// never touch a socket, so tests and FuzzDecodeInetDiag feed them frames
// captured from the kernel into testdata/.

// errSockDecode is wrapped by every decoding error of this file.
var errSockDecode = errors.New("collector: malformed sock_diag message")

// Netlink and inet_diag constants (linux/netlink.h, linux/inet_diag.h,
// linux/sock_diag.h). They are spelled out so that the decoders build on every
// platform.
const (
	sdNlmsgHdrLen        = 16
	sdNlmsgDone          = 3
	sdNlmsgError         = 2
	sdNlmsgOverrun       = 4
	sdNlmFRequest        = 0x1
	sdNlmFDump           = 0x300
	sdSockDiagByFamily   = 20
	sdTCPDiagGetSock     = 18 // TCPDIAG_GETSOCK: the inet_diag_req (v1) dump, both families
	sdInetDiagReqLen     = 60 // struct inet_diag_req
	sdInetDiagMsgLen     = 72
	sdInetDiagReqV2Len   = 56
	sdInetDiagInfo       = 2  // INET_DIAG_INFO: struct tcp_info
	sdInetDiagProtocol   = 10 // INET_DIAG_PROTOCOL: u8 IPPROTO_*
	sdIPProtoTCP         = 6
	sdIPProtoUDP         = 17
	sdAFInet             = 2
	sdAFInet6            = 10
	sdTCPInfoBytesAcked  = 120 // offsetof(struct tcp_info, tcpi_bytes_acked)
	sdTCPInfoBytesRecv   = 128 // tcpi_bytes_received (Linux ≥ 4.1)
	sdTCPInfoSegsOut     = 136 // tcpi_segs_out
	sdTCPInfoSegsIn      = 140 // tcpi_segs_in
	sdTCPInfoBytesSent   = 200 // tcpi_bytes_sent (Linux ≥ 4.19)
	sdTCPInfoBytesSentHi = sdTCPInfoBytesSent + 8
)

// TCP states as numbered by the kernel (include/net/tcp_states.h).
const (
	sdTCPEstablished = 1
	sdTCPSynSent     = 2
	sdTCPSynRecv     = 3
	sdTCPFinWait1    = 4
	sdTCPFinWait2    = 5
	sdTCPTimeWait    = 6
	sdTCPClose       = 7
	sdTCPCloseWait   = 8
	sdTCPLastAck     = 9
	sdTCPListen      = 10
	sdTCPClosing     = 11
	sdTCPNewSynRecv  = 12
)

// sockStateNames are the state column's values, indexed by kernel state.
var sockStateNames = [...]string{
	sdTCPEstablished: "ESTABLISHED",
	sdTCPSynSent:     "SYN_SENT",
	sdTCPSynRecv:     "SYN_RECV",
	sdTCPFinWait1:    "FIN_WAIT1",
	sdTCPFinWait2:    "FIN_WAIT2",
	sdTCPTimeWait:    "TIME_WAIT",
	sdTCPClose:       "CLOSE",
	sdTCPCloseWait:   "CLOSE_WAIT",
	sdTCPLastAck:     "LAST_ACK",
	sdTCPListen:      "LISTEN",
	sdTCPClosing:     "CLOSING",
	sdTCPNewSynRecv:  "NEW_SYN_RECV",
}

// sockStateName returns the state column value for kernel state s.
func sockStateName(s uint8) string {
	if int(s) < len(sockStateNames) && sockStateNames[s] != "" {
		return sockStateNames[s]
	}
	return fmt.Sprintf("STATE_%d", s)
}

// sockDumpStates is the idiag_states filter of every dump: all states but
// TIME_WAIT (mini-sockets with no owner and no inode, the noise of a busy
// host), SYN_RECV and NEW_SYN_RECV (request sockets not yet accepted).
const sockDumpStates uint32 = 0xfff &^ (1<<sdTCPTimeWait | 1<<sdTCPSynRecv | 1<<sdTCPNewSynRecv)

// inetDiag is one decoded inet_diag message: a socket seen in a dump or in a
// destroy notification.
type inetDiag struct {
	Family   uint8 // AF_INET or AF_INET6
	Protocol uint8 // IPPROTO_TCP or IPPROTO_UDP; 0 if the message did not say
	State    uint8
	SrcPort  uint16
	DstPort  uint16
	Src      [16]byte // first 4 bytes for AF_INET
	Dst      [16]byte
	IfIndex  uint32
	Cookie   uint64
	UID      uint32
	Inode    uint32
	// TCP counters from INET_DIAG_INFO (tcp_info); HasInfo reports that the
	// attribute was present. HasBytesSent is false on kernels before 4.19,
	// whose tcp_info ends before tcpi_bytes_sent.
	HasInfo       bool
	HasBytesSent  bool
	BytesSent     uint64
	BytesAcked    uint64
	BytesReceived uint64
	SegsOut       uint32
	SegsIn        uint32
}

// addrLen returns the length of the family's address.
func (m *inetDiag) addrLen() int {
	if m.Family == sdAFInet6 {
		return 16
	}
	return 4
}

// decodeInetDiag decodes the payload of one SOCK_DIAG_BY_FAMILY message (the
// bytes after the nlmsghdr): struct inet_diag_msg followed by rtattr
// attributes, of which INET_DIAG_INFO and INET_DIAG_PROTOCOL are read and the
// rest skipped.
func decodeInetDiag(b []byte) (inetDiag, error) {
	var m inetDiag
	if len(b) < sdInetDiagMsgLen {
		return m, fmt.Errorf("inet_diag_msg of %d bytes, want ≥ %d: %w", len(b), sdInetDiagMsgLen, errSockDecode)
	}
	m.Family = b[0]
	if m.Family != sdAFInet && m.Family != sdAFInet6 {
		return m, fmt.Errorf("inet_diag_msg family %d: %w", m.Family, errSockDecode)
	}
	m.State = b[1]
	// b[2] timer, b[3] retrans; struct inet_diag_sockid at 4.
	m.SrcPort = binary.BigEndian.Uint16(b[4:])
	m.DstPort = binary.BigEndian.Uint16(b[6:])
	copy(m.Src[:], b[8:24])
	copy(m.Dst[:], b[24:40])
	m.IfIndex = binary.NativeEndian.Uint32(b[40:])
	m.Cookie = uint64(binary.NativeEndian.Uint32(b[44:])) | uint64(binary.NativeEndian.Uint32(b[48:]))<<32
	// expires 52, rqueue 56, wqueue 60.
	m.UID = binary.NativeEndian.Uint32(b[64:])
	m.Inode = binary.NativeEndian.Uint32(b[68:])
	for a := b[sdInetDiagMsgLen:]; len(a) > 0; {
		if len(a) < 4 {
			return m, fmt.Errorf("truncated rtattr header: %w", errSockDecode)
		}
		l := int(binary.NativeEndian.Uint16(a))
		typ := binary.NativeEndian.Uint16(a[2:]) & 0x3fff // strip NLA_F_NESTED, NLA_F_NET_BYTEORDER
		if l < 4 || l > len(a) {
			return m, fmt.Errorf("rtattr %d length %d of %d bytes left: %w", typ, l, len(a), errSockDecode)
		}
		v := a[4:l]
		switch typ {
		case sdInetDiagProtocol:
			if len(v) < 1 {
				return m, fmt.Errorf("empty INET_DIAG_PROTOCOL: %w", errSockDecode)
			}
			m.Protocol = v[0]
		case sdInetDiagInfo:
			sdDecodeTCPInfo(&m, v)
		}
		l = (l + 3) &^ 3
		if l >= len(a) {
			break
		}
		a = a[l:]
	}
	return m, nil
}

// sdDecodeTCPInfo reads the counters pofr stores from a struct tcp_info of any
// kernel version: fields beyond the end of v are left unset.
func sdDecodeTCPInfo(m *inetDiag, v []byte) {
	if len(v) < sdTCPInfoSegsIn+4 {
		return
	}
	m.HasInfo = true
	m.BytesAcked = binary.NativeEndian.Uint64(v[sdTCPInfoBytesAcked:])
	m.BytesReceived = binary.NativeEndian.Uint64(v[sdTCPInfoBytesRecv:])
	m.SegsOut = binary.NativeEndian.Uint32(v[sdTCPInfoSegsOut:])
	m.SegsIn = binary.NativeEndian.Uint32(v[sdTCPInfoSegsIn:])
	if len(v) >= sdTCPInfoBytesSentHi {
		m.HasBytesSent = true
		m.BytesSent = binary.NativeEndian.Uint64(v[sdTCPInfoBytesSent:])
	}
}

// sdNlMsg is one netlink message of a datagram: its header fields and payload.
type sdNlMsg struct {
	Type    uint16
	Flags   uint16
	Seq     uint32
	Payload []byte
}

// sdSplitNetlink splits a datagram into netlink messages. The payloads alias b.
func sdSplitNetlink(b []byte, out []sdNlMsg) ([]sdNlMsg, error) {
	for len(b) > 0 {
		if len(b) < sdNlmsgHdrLen {
			return out, fmt.Errorf("truncated nlmsghdr (%d bytes): %w", len(b), errSockDecode)
		}
		l := int(binary.NativeEndian.Uint32(b))
		if l < sdNlmsgHdrLen || l > len(b) {
			return out, fmt.Errorf("nlmsg length %d of %d bytes left: %w", l, len(b), errSockDecode)
		}
		out = append(out, sdNlMsg{
			Type:    binary.NativeEndian.Uint16(b[4:]),
			Flags:   binary.NativeEndian.Uint16(b[6:]),
			Seq:     binary.NativeEndian.Uint32(b[8:]),
			Payload: b[sdNlmsgHdrLen:l],
		})
		l = (l + 3) &^ 3
		if l >= len(b) {
			break
		}
		b = b[l:]
	}
	return out, nil
}

// sdNlError decodes the errno of an NLMSG_ERROR payload (0 is an ack).
func sdNlError(p []byte) (int32, error) {
	if len(p) < 4 {
		return 0, fmt.Errorf("truncated NLMSG_ERROR: %w", errSockDecode)
	}
	return -int32(binary.NativeEndian.Uint32(p)), nil
}

// sdDumpHeader returns a dump request of type typ with a zero payload of n
// bytes, and the payload.
func sdDumpHeader(typ uint16, seq uint32, n int) (b, payload []byte) {
	b = make([]byte, sdNlmsgHdrLen+n)
	binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint16(b[6:], sdNlmFRequest|sdNlmFDump)
	binary.NativeEndian.PutUint32(b[8:], seq)
	return b, b[sdNlmsgHdrLen:]
}

// sdDumpRequest encodes a SOCK_DIAG_BY_FAMILY dump request (nlmsghdr +
// struct inet_diag_req_v2) for one family and protocol with the state filter
// sockDumpStates. TCP requests ask for INET_DIAG_INFO.
func sdDumpRequest(family, proto uint8, seq uint32) []byte {
	b, r := sdDumpHeader(sdSockDiagByFamily, seq, sdInetDiagReqV2Len)
	r[0] = family
	r[1] = proto
	if proto == sdIPProtoTCP {
		r[2] = 1 << (sdInetDiagInfo - 1) // idiag_ext
	}
	binary.NativeEndian.PutUint32(r[4:], sockDumpStates)
	// struct inet_diag_sockid stays zero: no address filter; the cookie
	// INET_DIAG_NOCOOKIE is only needed for exact lookups.
	return b
}

// sdExactRequest encodes a SOCK_DIAG_BY_FAMILY request for the one socket m
// names (nlmsghdr + struct inet_diag_req_v2, no NLM_F_DUMP): its family,
// protocol, tuple and cookie, any state. The kernel answers with that
// socket's inet_diag_msg after a hash lookup, or an NLMSG_ERROR (ENOENT, or
// ESTALE when another socket holds the tuple now).
func sdExactRequest(m *inetDiag, seq uint32) []byte {
	b, r := sdDumpHeader(sdSockDiagByFamily, seq, sdInetDiagReqV2Len)
	binary.NativeEndian.PutUint16(b[6:], sdNlmFRequest)
	r[0] = m.Family
	r[1] = m.Protocol
	binary.NativeEndian.PutUint32(r[4:], ^uint32(0))
	// struct inet_diag_sockid at 8, laid out as in inet_diag_msg (at 4).
	binary.BigEndian.PutUint16(r[8:], m.SrcPort)
	binary.BigEndian.PutUint16(r[10:], m.DstPort)
	copy(r[12:28], m.Src[:])
	copy(r[28:44], m.Dst[:])
	binary.NativeEndian.PutUint32(r[44:], m.IfIndex)
	binary.NativeEndian.PutUint32(r[48:], uint32(m.Cookie))
	binary.NativeEndian.PutUint32(r[52:], uint32(m.Cookie>>32))
	return b
}

// sdCompatTCPDumpRequest encodes a TCPDIAG_GETSOCK dump request (nlmsghdr +
// struct inet_diag_req, the interface before SOCK_DIAG_BY_FAMILY), with the
// state filter sockDumpStates and INET_DIAG_INFO. The kernel answers it
// with the TCP sockets of both families from one walk of its hash tables
// (the family is AF_UNSPEC on this path), where SOCK_DIAG_BY_FAMILY takes
// one walk per family; the walk is most of a dump's cost (an established
// table of 262,144 buckets on the project VM).
func sdCompatTCPDumpRequest(seq uint32) []byte {
	b, r := sdDumpHeader(sdTCPDiagGetSock, seq, sdInetDiagReqLen)
	r[0] = sdAFInet                                       // idiag_family: not used by a dump
	r[3] = 1 << (sdInetDiagInfo - 1)                      // idiag_ext
	binary.NativeEndian.PutUint32(r[52:], sockDumpStates) // after the 48-byte inet_diag_sockid
	return b
}

// sockParseProcNet parses one /proc/net/{tcp,tcp6,udp,udp6} file into the same
// form as a dump. proto is IPPROTO_TCP or IPPROTO_UDP, family AF_INET or
// AF_INET6. Sockets in states excluded by sockDumpStates and rows without an
// inode (TIME_WAIT, orphans) are skipped. Cookie stays 0 (the file has none).
func sockParseProcNet(b []byte, family, proto uint8, out []inetDiag) ([]inetDiag, error) {
	first := true
	for len(b) > 0 {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		if first { // header
			first = false
			continue
		}
		var f [10][]byte
		n := sockFields(line, f[:])
		if n == 0 {
			continue
		}
		if n < 10 {
			return out, fmt.Errorf("/proc/net line %q: %d fields: %w", line, n, errSockDecode)
		}
		m := inetDiag{Family: family, Protocol: proto}
		var err error
		if m.SrcPort, err = sockParseProcNetAddr(f[1], family, m.Src[:]); err != nil {
			return out, err
		}
		if m.DstPort, err = sockParseProcNetAddr(f[2], family, m.Dst[:]); err != nil {
			return out, err
		}
		st, ok := sockParseHex(f[3])
		if !ok || st > 0xff {
			return out, fmt.Errorf("/proc/net state %q: %w", f[3], errSockDecode)
		}
		m.State = uint8(st)
		uid, ok := procfs.ParseDecimal(f[7])
		if !ok {
			return out, fmt.Errorf("/proc/net uid %q: %w", f[7], errSockDecode)
		}
		m.UID = uint32(uid)
		ino, ok := procfs.ParseDecimal(f[9])
		if !ok {
			return out, fmt.Errorf("/proc/net inode %q: %w", f[9], errSockDecode)
		}
		m.Inode = uint32(ino)
		if m.Inode == 0 || sockDumpStates&(1<<m.State) == 0 {
			continue
		}
		out = append(out, m)
	}
	return out, nil
}

// sockParseProcNetAddr parses "0100007F:1F90": the address as 32-bit words each
// printed in host byte order, then the port. It writes the address in network
// order into dst.
func sockParseProcNetAddr(s []byte, family uint8, dst []byte) (uint16, error) {
	n := 4
	if family == sdAFInet6 {
		n = 16
	}
	if len(s) != 2*n+5 || s[2*n] != ':' {
		return 0, fmt.Errorf("/proc/net address %q: %w", s, errSockDecode)
	}
	for w := 0; w < n/4; w++ {
		v, ok := sockParseHex(s[8*w : 8*w+8])
		if !ok {
			return 0, fmt.Errorf("/proc/net address %q: %w", s, errSockDecode)
		}
		binary.NativeEndian.PutUint32(dst[4*w:], uint32(v))
	}
	p, ok := sockParseHex(s[2*n+1:])
	if !ok || p > 0xffff {
		return 0, fmt.Errorf("/proc/net port %q: %w", s, errSockDecode)
	}
	return uint16(p), nil
}

// fields splits line at spaces into f and returns how many fields it found
// (at most len(f)).
func sockFields(line []byte, f [][]byte) int {
	n := 0
	for i := 0; i < len(line) && n < len(f); {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		j := i
		for j < len(line) && line[j] != ' ' && line[j] != '\t' {
			j++
		}
		if j > i {
			f[n] = line[i:j]
			n++
		}
		i = j
	}
	return n
}

func sockParseHex(s []byte) (uint64, bool) {
	if len(s) == 0 || len(s) > 16 {
		return 0, false
	}
	var v uint64
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | uint64(c-'A'+10)
		default:
			return 0, false
		}
	}
	return v, true
}
