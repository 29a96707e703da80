package sockdiag

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// updateSock re-captures the frames of testdata from the running kernel
// (needs root and Linux): go test ./collector/sockdiag/ -run TestSockFrames -update-sock
var updateSock = flag.Bool("update-sock", false, "capture collector/sockdiag/testdata frames from the kernel")

// sockFrame describes what one captured frame must decode to. Ports and
// cookies differ per capture and are only checked for being set.
type sockFrame struct {
	Family, Protocol, State uint8
	Src, Dst                string // addresses (netip text)
	HasInfo, HasBytesSent   bool
	BytesSent               uint64
	MinBytesReceived        uint64
	NonzeroInode, ZeroDport bool
}

// sockFrames are the files of testdata: payloads (after the nlmsghdr) of
// SOCK_DIAG_BY_FAMILY messages captured by captureSockFrames.
var sockFrames = map[string]sockFrame{
	// A client that connected to 127.0.0.1, wrote 1 KiB and closed: destroy.
	"tcp4_client_destroy.bin": {Family: sdAFInet, Protocol: sdIPProtoTCP, State: sdTCPClose,
		Src: "127.0.0.1", Dst: "127.0.0.1", HasInfo: true, HasBytesSent: true, BytesSent: 1024},
	// The accepted side of that connection: it read 1 KiB and the FIN.
	"tcp4_server_destroy.bin": {Family: sdAFInet, Protocol: sdIPProtoTCP, State: sdTCPClose,
		Src: "127.0.0.1", Dst: "127.0.0.1", HasInfo: true, HasBytesSent: true, MinBytesReceived: 1025},
	// The same on ::1.
	"tcp6_client_destroy.bin": {Family: sdAFInet6, Protocol: sdIPProtoTCP, State: sdTCPClose,
		Src: "::1", Dst: "::1", HasInfo: true, HasBytesSent: true, BytesSent: 1024},
	// A connected UDP socket: state ESTABLISHED (1), no tcp_info.
	"udp4_connected_destroy.bin": {Family: sdAFInet, Protocol: sdIPProtoUDP, State: sdTCPEstablished,
		Src: "127.0.0.1", Dst: "127.0.0.1"},
	// A bound unconnected UDP socket: state CLOSE, remote port 0.
	"udp6_unconnected_destroy.bin": {Family: sdAFInet6, Protocol: sdIPProtoUDP, State: sdTCPClose,
		Src: "::1", Dst: "::", ZeroDport: true},
	// A TCP listener from a dump (INET_DIAG_INFO requested): inode set. Dumps
	// carry no INET_DIAG_PROTOCOL: the request says which protocol it is.
	"tcp4_listen_dump.bin": {Family: sdAFInet, Protocol: 0, State: sdTCPListen,
		Src: "127.0.0.1", Dst: "0.0.0.0", HasInfo: true, HasBytesSent: true, NonzeroInode: true, ZeroDport: true},
}

func TestSockFrames(t *testing.T) {
	dir := filepath.Join("testdata")
	if *updateSock {
		captureSockFrames(t, dir)
	}
	for name, want := range sockFrames {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			m, err := decodeInetDiag(b)
			if err != nil {
				t.Fatalf("decodeInetDiag: %v", err)
			}
			n := m.addrLen()
			src, _ := netip.AddrFromSlice(m.Src[:n])
			dst, _ := netip.AddrFromSlice(m.Dst[:n])
			got := sockFrame{
				Family: m.Family, Protocol: m.Protocol, State: m.State,
				Src: src.String(), Dst: dst.String(),
				HasInfo: m.HasInfo, HasBytesSent: m.HasBytesSent, BytesSent: m.BytesSent,
				MinBytesReceived: want.MinBytesReceived,
				NonzeroInode:     m.Inode != 0, ZeroDport: m.DstPort == 0,
			}
			if want.MinBytesReceived > 0 && m.BytesReceived < want.MinBytesReceived {
				t.Errorf("bytes_received = %d, want ≥ %d", m.BytesReceived, want.MinBytesReceived)
			}
			if !want.HasBytesSent {
				got.BytesSent = want.BytesSent
			}
			if want.BytesSent == 0 {
				got.BytesSent = 0
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("decoded frame (-want +got):\n%s", diff)
			}
			if m.Cookie == 0 {
				t.Error("cookie = 0, want the kernel's socket cookie")
			}
			if m.SrcPort == 0 {
				t.Error("local port = 0")
			}
		})
	}
}

// TestSockDecodeErrors feeds truncated and inconsistent messages.
func TestSockDecodeErrors(t *testing.T) {
	good, err := os.ReadFile(filepath.Join("testdata", "tcp4_client_destroy.bin"))
	if err != nil {
		t.Fatal(err)
	}
	badLen := bytes.Clone(good)
	binary.NativeEndian.PutUint16(badLen[sdInetDiagMsgLen:], 0xffff)
	badFam := bytes.Clone(good)
	badFam[0] = 99
	for name, b := range map[string][]byte{
		"short":       good[:sdInetDiagMsgLen-1],
		"attr header": good[:sdInetDiagMsgLen+2],
		"attr length": badLen,
		"family":      badFam,
	} {
		if _, err := decodeInetDiag(b); !errors.Is(err, errSockDecode) {
			t.Errorf("%s: err = %v, want errSockDecode", name, err)
		}
	}
	// tcp_info cut before bytes_sent (a kernel older than 4.19): bytes
	// received known, bytes sent unknown.
	m, err := decodeInetDiag(good)
	if err != nil {
		t.Fatal(err)
	}
	old := sockWithInfo(t, good, sdTCPInfoBytesSent)
	mo, err := decodeInetDiag(old)
	if err != nil {
		t.Fatal(err)
	}
	if !mo.HasInfo || mo.HasBytesSent || mo.BytesReceived != m.BytesReceived {
		t.Errorf("short tcp_info: HasInfo %v HasBytesSent %v bytes_received %d, want true false %d",
			mo.HasInfo, mo.HasBytesSent, mo.BytesReceived, m.BytesReceived)
	}
}

// sockWithInfo rebuilds a message with only its INET_DIAG_INFO attribute, cut
// to n bytes.
func sockWithInfo(t *testing.T, b []byte, n int) []byte {
	t.Helper()
	for a := b[sdInetDiagMsgLen:]; len(a) >= 4; {
		l := int(binary.NativeEndian.Uint16(a))
		if binary.NativeEndian.Uint16(a[2:]) == sdInetDiagInfo {
			out := bytes.Clone(b[:sdInetDiagMsgLen])
			out = binary.NativeEndian.AppendUint16(out, uint16(4+n))
			out = binary.NativeEndian.AppendUint16(out, sdInetDiagInfo)
			return append(out, a[4:4+n]...)
		}
		a = a[(l+3)&^3:]
	}
	t.Fatal("no INET_DIAG_INFO in frame")
	return nil
}

// sockOneRequest checks that b is one dump request of type typ with seq and
// returns its payload.
func sockOneRequest(t *testing.T, b []byte, typ uint16, seq uint32) []byte {
	t.Helper()
	msgs, err := sdSplitNetlink(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].Type != typ || msgs[0].Flags != sdNlmFRequest|sdNlmFDump || msgs[0].Seq != seq {
		t.Fatalf("header %+v, want one dump request of type %d, seq %d", msgs, typ, seq)
	}
	return msgs[0].Payload
}

func TestSockDumpRequest(t *testing.T) {
	p := sockOneRequest(t, sdDumpRequest(sdAFInet6, sdIPProtoTCP, 7), sdSockDiagByFamily, 7)
	if p[0] != sdAFInet6 || p[1] != sdIPProtoTCP || p[2] != 1<<(sdInetDiagInfo-1) {
		t.Errorf("family/proto/ext = %d/%d/%#x", p[0], p[1], p[2])
	}
	states := binary.NativeEndian.Uint32(p[4:])
	for s, want := range map[uint8]bool{sdTCPEstablished: true, sdTCPListen: true, sdTCPClose: true, sdTCPCloseWait: true,
		sdTCPTimeWait: false, sdTCPSynRecv: false, sdTCPNewSynRecv: false} {
		if got := states&(1<<s) != 0; got != want {
			t.Errorf("state %s in filter = %v, want %v", sockStateName(s), got, want)
		}
	}
	if u := sdDumpRequest(sdAFInet, sdIPProtoUDP, 1); u[sdNlmsgHdrLen+2] != 0 {
		t.Errorf("UDP request asks for extensions %#x, want none", u[sdNlmsgHdrLen+2])
	}
}

// TestSockCompatDumpRequest checks the TCPDIAG_GETSOCK request against the
// layout of struct inet_diag_req: the same states and extensions as the
// per-family request.
func TestSockCompatDumpRequest(t *testing.T) {
	p := sockOneRequest(t, sdCompatTCPDumpRequest(9), sdTCPDiagGetSock, 9)
	if len(p) != 4+48+4+4 {
		t.Fatalf("payload of %d bytes, want struct inet_diag_req (60)", len(p))
	}
	v2 := sdDumpRequest(sdAFInet, sdIPProtoTCP, 9)[sdNlmsgHdrLen:]
	if p[3] != v2[2] {
		t.Errorf("idiag_ext %#x, want %#x as in the per-family request", p[3], v2[2])
	}
	if got, want := binary.NativeEndian.Uint32(p[52:]), binary.NativeEndian.Uint32(v2[4:]); got != want {
		t.Errorf("idiag_states %#x, want %#x as in the per-family request", got, want)
	}
	if !bytes.Equal(p[4:52], make([]byte, 48)) || binary.NativeEndian.Uint32(p[56:]) != 0 {
		t.Errorf("socket id or idiag_dbs set: % x", p[4:])
	}
}

func TestSockParseProcNet(t *testing.T) {
	tcp := []byte(`  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:D2F0 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 4243 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:D2F2 0100007F:1F90 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000
`)
	got, err := sockParseProcNet(tcp, sdAFInet, sdIPProtoTCP, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []inetDiag{
		{Family: sdAFInet, Protocol: sdIPProtoTCP, State: sdTCPListen, SrcPort: 8080, Src: sockAddr16("127.0.0.1"), Inode: 4242},
		{Family: sdAFInet, Protocol: sdIPProtoTCP, State: sdTCPEstablished, SrcPort: 0xd2f0, DstPort: 8080,
			Src: sockAddr16("127.0.0.1"), Dst: sockAddr16("127.0.0.1"), UID: 1000, Inode: 4243},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tcp (-want +got):\n%s", diff)
	}
	udp6 := []byte(`  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  1: 00000000000000000000000001000000:0035 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 777 2 0000000000000000 0
`)
	got, err = sockParseProcNet(udp6, sdAFInet6, sdIPProtoUDP, nil)
	if err != nil {
		t.Fatal(err)
	}
	want = []inetDiag{{Family: sdAFInet6, Protocol: sdIPProtoUDP, State: sdTCPClose, SrcPort: 53, Src: sockAddr16("::1"), UID: 101, Inode: 777}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("udp6 (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"h\n 0: 0100007F:1F90 00000000:0000 0A", "h\n 0: 0100007F 00000000:0000 0A 0 0 0 0 0 1", "h\n 0: 0100007F:1F90 00000000:0000 ZZ 0 0 0 0 0 1"} {
		if _, err := sockParseProcNet([]byte(bad), sdAFInet, sdIPProtoTCP, nil); !errors.Is(err, errSockDecode) {
			t.Errorf("%q: err = %v, want errSockDecode", bad, err)
		}
	}
}

// sockAddr16 returns a in the [16]byte form of inetDiag.
func sockAddr16(a string) [16]byte {
	var b [16]byte
	ip := netip.MustParseAddr(a)
	if ip.Is4() {
		x := ip.As4()
		copy(b[:], x[:])
	} else {
		b = ip.As16()
	}
	return b
}

// FuzzDecodeInetDiag feeds the decoders captured kernel frames and their
// mutations: they must never panic, and a decoded message must have a valid
// family.
func FuzzDecodeInetDiag(f *testing.F) {
	for name := range sockFrames {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeInetDiag(b)
		if err == nil && m.Family != sdAFInet && m.Family != sdAFInet6 {
			t.Fatalf("decoded family %d", m.Family)
		}
		// The same bytes as a datagram of netlink messages.
		msgs, _ := sdSplitNetlink(b, nil)
		for _, nm := range msgs {
			if len(nm.Payload) > len(b) {
				t.Fatalf("payload longer than the datagram")
			}
			_, _ = decodeInetDiag(nm.Payload)
		}
		_, _ = sockParseProcNet(b, sdAFInet6, sdIPProtoTCP, nil)
	})
}

// TestSockExactRequest checks the exact request for one socket: no dump
// flag, every state, and the socket id laid out as inet_diag_msg carries it
// (decoding the id back gives the socket's tuple and cookie).
func TestSockExactRequest(t *testing.T) {
	m := inetDiag{Family: sdAFInet6, Protocol: sdIPProtoTCP, SrcPort: 8080, DstPort: 40001,
		Src: sockAddr16("10.0.0.1"), Dst: sockAddr16("10.0.0.2"), IfIndex: 3, Cookie: 0x1122334455667788}
	b := sdExactRequest(&m, 11)
	msgs, err := sdSplitNetlink(b, nil)
	if err != nil || len(msgs) != 1 || msgs[0].Type != sdSockDiagByFamily || msgs[0].Flags != sdNlmFRequest || msgs[0].Seq != 11 {
		t.Fatalf("header %+v (%v), want one exact request, seq 11", msgs, err)
	}
	p := msgs[0].Payload
	if len(p) != sdInetDiagReqV2Len || p[0] != sdAFInet6 || p[1] != sdIPProtoTCP || binary.NativeEndian.Uint32(p[4:]) != ^uint32(0) {
		t.Fatalf("payload % x: want family, protocol and every state", p)
	}
	msg := make([]byte, sdInetDiagMsgLen)
	msg[0] = m.Family
	copy(msg[4:52], p[8:56])
	got, err := decodeInetDiag(msg)
	if err != nil {
		t.Fatal(err)
	}
	if got.SrcPort != m.SrcPort || got.DstPort != m.DstPort || got.Src != m.Src || got.Dst != m.Dst ||
		got.IfIndex != m.IfIndex || got.Cookie != m.Cookie {
		t.Errorf("socket id decodes to %+v, want the tuple and cookie of %+v", got, m)
	}
}
