package sockowner

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/pofr/pofr/collector/tracepoint"
	"github.com/pofr/pofr/internal/testutil"
)

// TestPrivCapture records the tracepoints of this kernel for a set of
// connections made by the test itself (the listeners and accepted ends
// too), checks that they decode to what the test did and that the filter
// lets no other transition of the listeners' ports through, and with
// -update stores formats and samples in testdata/.
func TestPrivCapture(t *testing.T) {
	testutil.RequireRoot(t)
	fs, err := tracepoint.OpenFS()
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	names := []string{eventState, eventRoute4, eventRoute6}
	evs := []tracepoint.Event{{Name: eventState, Filter: StateFilter}, {Name: eventRoute4, Filter: RouteFilter},
		{Name: eventRoute6, Filter: RouteFilter}}
	set, err := tracepoint.Open(tracepoint.Options{Events: evs, FS: fs, RingBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	if *update {
		for ev, file := range formatFiles {
			sys, name, _ := cut(ev)
			b, err := fs.ReadFormat(sys, name)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join("testdata", "format", file), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := set.Enable(); err != nil {
		t.Fatal(err)
	}
	// The connections: name → local port, filled in as they are made.
	type conn struct {
		name, network, laddr, raddr string
		port                        uint16
	}
	ln4 := testutil.Listen(t, "tcp4", "127.0.0.1:0")
	ln6 := testutil.Listen(t, "tcp6", "[::1]:0")
	closed, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := closed.Addr().String()
	closed.Close()
	conns := []conn{
		{name: "tcp4", network: "tcp4", raddr: ln4.Addr().String()},
		{name: "tcp6", network: "tcp6", raddr: ln6.Addr().String()},
		{name: "tcp4_refused", network: "tcp4", raddr: refused},
		{name: "udp4", network: "udp4", raddr: "127.0.0.1:53"},
		{name: "udp6", network: "udp6", raddr: "[::1]:53"},
		{name: "udp_mapped", network: "udp6", raddr: "[::ffff:127.0.0.1]:53"},
	}
	for i := range conns {
		if conns[i].name == "udp_mapped" {
			conns[i].port = dialMapped(t)
			continue
		}
		c, err := net.Dial(conns[i].network, conns[i].raddr)
		if err != nil && conns[i].name != "tcp4_refused" {
			t.Fatal(err)
		}
		if err == nil {
			_, p, _ := net.SplitHostPort(c.LocalAddr().String())
			conns[i].port = uint16(atoi(p))
			c.Close()
		}
	}
	_, rp, _ := net.SplitHostPort(refused)
	refusedPort := uint16(atoi(rp))
	lports := map[uint16]string{portOf(ln4.Addr().String()): "tcp4", portOf(ln6.Addr().String()): "tcp6"}
	var got []captured
	keep := func(name string, raw []byte, g golden) {
		if !slices.ContainsFunc(got, func(x captured) bool { return x.name == name }) {
			got = append(got, captured{name, slices.Clone(raw), g})
		}
	}
	set.Flush(func(r *tracepoint.Record) {
		if r.Event < 0 || r.Sample.PID != uint32(os.Getpid()) && r.Event != 0 {
			return
		}
		g, err := decodeSampleWith(t, names[r.Event], r.Sample.Raw, set.Formats()[r.Event])
		if err != nil {
			t.Errorf("%s: %v", names[r.Event], err)
			return
		}
		if ln, ok := lports[g.SPort]; ok && g.Event == eventState && g.Protocol == protoTCP {
			// The listener and the accepted ends (a port of their own). A
			// Go listener is MPTCP: its own records (protocol 262) come
			// beside those of its TCP subflow, which the dumps report.
			switch name := stateName(g); name {
			case "listen", "accepted":
				keep(ln+"_"+name, r.Sample.Raw, g)
			default:
				t.Errorf("%s listener port: transition %d→%d passed the filter", ln, g.OldState, g.NewState)
			}
			return
		}
		for _, c := range conns {
			name := ""
			switch {
			case c.name == "tcp4_refused" && g.Event == eventState && g.DPort == refusedPort:
				name = "tcp4_refused_" + stateName(g)
			case c.port != 0 && g.Event == eventState && (g.SPort == c.port || g.SPort == 0 && g.DPort == portOf(c.raddr)):
				name = c.name + "_" + stateName(g)
			case c.port != 0 && g.Event != eventState && g.SPort == c.port:
				name = c.name + "_route"
				if g.SAddr != "::" && g.SAddr != "::ffff:0.0.0.0" {
					name += "_bound"
				}
			}
			if name != "" {
				keep(name, r.Sample.Raw, g)
			}
		}
	})
	want := []string{"tcp4_connect", "tcp4_established", "tcp6_connect", "tcp6_established", "tcp4_refused_connect",
		"tcp4_refused_failed", "udp4_route", "udp6_route", "udp_mapped_route", "tcp4_listen", "tcp6_listen",
		"tcp4_accepted", "tcp6_accepted"}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(x captured) bool { return x.name == w }) {
			t.Errorf("no %s sample captured", w)
		}
	}
	for _, x := range got {
		t.Logf("%s: %+v", x.name, x.g)
		if !*update {
			continue
		}
		jb, _ := json.MarshalIndent(x.g, "", "  ")
		base := filepath.Join("testdata", "sample", x.name)
		if err := os.WriteFile(base+".bin", x.raw, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(base+".json", append(jb, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// captured is one sample kept by TestPrivCapture.
type captured struct {
	name string
	raw  []byte
	g    golden
}

// dialMapped connects an AF_INET6 UDP socket to ::ffff:127.0.0.1:53 (the
// net package dials v4-mapped addresses on AF_INET sockets) and returns its
// local port.
func dialMapped(t *testing.T) uint16 {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	sa := &unix.SockaddrInet6{Port: 53, Addr: [16]byte{10: 0xff, 11: 0xff, 12: 127, 15: 1}}
	if err := unix.Connect(fd, sa); err != nil {
		t.Fatal(err)
	}
	la, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return uint16(la.(*unix.SockaddrInet6).Port)
}

func stateName(g golden) string {
	switch {
	case g.OldState == TCPClose && g.NewState == TCPSynSent:
		return "connect"
	case g.OldState == TCPSynSent && g.NewState == TCPEstablished:
		return "established"
	case g.OldState == TCPSynSent && g.NewState == TCPClose:
		return "failed"
	case g.OldState == TCPSynRecv && g.NewState == TCPEstablished:
		return "accepted"
	case g.NewState == TCPListen:
		return "listen"
	}
	return "other"
}

func cut(ev string) (sys, name string, ok bool) {
	for i := range len(ev) {
		if ev[i] == ':' {
			return ev[:i], ev[i+1:], true
		}
	}
	return "", ev, false
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func portOf(hostport string) uint16 {
	_, p, _ := net.SplitHostPort(hostport)
	return uint16(atoi(p))
}
