package dnspkt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/pofr/pofr/collector/sockowner"
	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/procfs"
	"github.com/pofr/pofr/internal/testutil"
)

// childEnv makes the test binary a DNS client: "udp|tcp ADDR NAME" asks
// ADDR for NAME once over that transport and exits.
const childEnv = "POFR_DNSPKT_CHILD"

func TestMain(m *testing.M) {
	if v := os.Getenv(childEnv); v != "" {
		if err := child(strings.Fields(v)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	testutil.Main(m)
}

// child is a resolver's exchange: a connected UDP socket (or a TCP
// connection), one question, one answer.
func child(args []string) error {
	if len(args) != 3 {
		return fmt.Errorf("child: want udp|tcp ADDR NAME, got %q", args)
	}
	q, err := buildQuery(0x5151, args[2], dnsmessage.TypeA)
	if err != nil {
		return err
	}
	c, err := net.DialTimeout(args[0], args[1], 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if args[0] == "tcp" {
		q = append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q...)
	}
	if _, err := c.Write(q); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	if args[0] == "tcp" {
		_, err = io.ReadFull(c, buf[:2])
	} else {
		_, err = c.Read(buf)
	}
	return err
}

// dnsServer answers every A question with addr, over UDP and TCP on
// ip:53, until the test ends.
func dnsServer(t *testing.T, ip string, addr [4]byte) {
	t.Helper()
	pc, err := net.ListenPacket("udp4", ip+":53")
	if err != nil {
		testutil.Skip(t, testutil.TierPriv, fmt.Sprintf("cannot serve DNS on %s:53: %v", ip, err))
	}
	ln, err := net.Listen("tcp4", ip+":53")
	if err != nil {
		pc.Close()
		testutil.Skip(t, testutil.TierPriv, fmt.Sprintf("cannot serve DNS over TCP on %s:53: %v", ip, err))
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { pc.Close(); ln.Close(); wg.Wait() })
	reply := func(q []byte) []byte {
		var p dnsmessage.Parser
		h, err := p.Start(q)
		if err != nil {
			return nil
		}
		qs, err := p.Question()
		if err != nil {
			return nil
		}
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true})
		b.StartQuestions()
		b.Question(qs)
		b.StartAnswers()
		b.AResource(dnsmessage.ResourceHeader{Name: qs.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: addr})
		msg, _ := b.Finish()
		return msg
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		buf := make([]byte, 4096)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if r := reply(buf[:n]); r != nil {
				pc.WriteTo(r, from)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			var l [2]byte
			if _, err := io.ReadFull(c, l[:]); err == nil {
				q := make([]byte, binary.BigEndian.Uint16(l[:]))
				if _, err := io.ReadFull(c, q); err == nil {
					r := reply(q)
					c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(r))), r...))
				}
			}
			c.Close()
		}
	}()
}

// TestPrivLookupIsRecorded: a spawned process asks a DNS server on
// 127.0.0.1 over UDP and over TCP; the source records each query and
// answer with the name, the answer address and the process key of the
// child, owners coming from the connection-owner tracepoints.
func TestPrivLookupIsRecorded(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := testutil.Deadline(t, 30*time.Second)
	owners, err := sockowner.Open(sockowner.Options{UDP: true})
	if err != nil {
		testutil.Skip(t, testutil.TierPriv, fmt.Sprintf("connection owner tracepoints: %v", err))
	}
	defer owners.Close()
	sink := &event.MemSink{}
	src, err := New(Options{Sink: sink, DNS: sink, Owners: owners})
	if err != nil {
		testutil.Skip(t, testutil.TierPriv, fmt.Sprintf("packet socket: %v", err))
	}
	stopOwners := testutil.Go(t, "sockowner.Source.Run", owners.Run)
	stopSrc := testutil.Go(t, "Source.Run", src.Run)
	defer func() { stopSrc(); stopOwners(); src.Close() }()

	answerAddr := [4]byte{192, 0, 2, 77}
	dnsServer(t, "127.0.0.1", answerAddr)
	fs := procfs.New("")
	for _, proto := range []string{"udp", "tcp"} {
		name := proto + "-probe.pofr.test."
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+proto+" 127.0.0.1:53 "+name)
		cmd.Stderr = os.Stderr
		// The child is reaped only once its rows are in: until then its
		// /proc/PID/stat (a zombie's too) names its life, for the test and
		// for the source.
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid := int32(cmd.Process.Pid)
		start, err := fs.Start(pid)
		if err != nil {
			t.Fatalf("start of child %d: %v", pid, err)
		}
		var q, a *event.DNS
		for q == nil || a == nil {
			if ctx.Err() != nil {
				t.Fatalf("%s: query %v answer %v for %s not recorded; stats %+v", proto, q != nil, a != nil, name, src.Stats())
			}
			time.Sleep(20 * time.Millisecond)
			for _, r := range sink.DNS() {
				if string(r.QName) != name {
					continue
				}
				r := r
				if r.Event == event.DNSQuery {
					q = &r
				} else {
					a = &r
				}
			}
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("%s child: %v", proto, err)
		}
		for _, r := range []*event.DNS{q, a} {
			if r.Proto != proto || r.ServerPort != 53 || r.ID != 0x5151 || string(r.ServerAddr) != string([]byte{127, 0, 0, 1}) {
				t.Errorf("%s %s: proto %s server %v:%d id %#x", proto, r.Event, r.Proto, r.ServerAddr, r.ServerPort, r.ID)
			}
			if r.PID != event.Some(pid) || r.ProcStart != event.Some(start) {
				t.Errorf("%s %s: process (%v, %v), want (%d, %d); flags %d", proto, r.Event, r.PID, r.ProcStart, pid, start, r.Flags)
			}
		}
		if a.RCode != event.Some[uint8](0) || string(a.AnswerAddrs) != ",C000024D,00000000000000000000FFFFC000024D," ||
			!strings.Contains(string(a.Answers), " A 60 192.0.2.77") {
			t.Errorf("%s answer: rcode %v addrs %q answers %q", proto, a.RCode, a.AnswerAddrs, a.Answers)
		}
	}
	if st := src.Stats(); st.Messages < 4 {
		t.Errorf("stats %+v: want at least 4 messages", st)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("deadline")
	}
}

// TestPrivDropsBecomeAGap: with a tiny receive buffer and nobody reading,
// a burst of DNS packets overflows the packet socket; the kernel's drop
// count (PACKET_STATISTICS) becomes one gap row of source dns.
func TestPrivDropsBecomeAGap(t *testing.T) {
	testutil.RequireRoot(t)
	sink := &event.MemSink{}
	src, err := New(Options{Sink: sink, DNS: sink, RcvBuf: 1})
	if err != nil {
		testutil.Skip(t, testutil.TierPriv, fmt.Sprintf("packet socket: %v", err))
	}
	defer src.Close()
	src.pollDrops(time.Now()) // reset what the machine's own DNS left
	before := len(sink.Gaps())
	c, err := net.Dial("udp4", "127.0.0.1:53")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	q := query(t, 1, "flood.pofr.test.", dnsmessage.TypeA)
	for range 500 {
		c.Write(q) // no server is needed: the packets cross lo all the same
	}
	src.pollDrops(time.Now())
	gaps := sink.Gaps()[before:]
	if len(gaps) != 1 || gaps[0].Source != event.SourceDNS || !gaps[0].Lost.Valid || gaps[0].Lost.V < 100 {
		t.Fatalf("gaps %+v: want one dns gap with at least 100 lost", gaps)
	}
	var lost int64
	for _, g := range sink.Gaps() {
		lost += g.Lost.V
	}
	if st := src.Stats(); st.Drops != uint64(lost) {
		t.Errorf("stats drops %d, gaps lost %d", st.Drops, lost)
	}
}
