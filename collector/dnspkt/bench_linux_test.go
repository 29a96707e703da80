package dnspkt

import (
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/pofr/pofr/collector/cnproc"
	"github.com/pofr/pofr/collector/sockowner"
	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/testutil"
)

// BenchmarkPrivDNSPacket is the reader's CPU per DNS packet on a DNS-heavy
// loop: batches of 200 exchanges (a connected UDP socket, query, answer)
// against a server on 127.0.0.1:53 are made with the timer stopped; the
// reader then drains them (recvfrom, parse, owner lookup from the
// tracepoints, row) with it running. cpu-ns/pkt is the reader thread's
// user+system time per packet. Run:
//
//	go test ./collector/dnspkt/ -run '^$' -bench PrivDNSPacket
func BenchmarkPrivDNSPacket(b *testing.B) {
	testutil.RequireRoot(b)
	owners, err := sockowner.Open(sockowner.Options{UDP: true})
	if err != nil {
		b.Skip(err)
	}
	defer owners.Close()
	// Process keys come from the process source's live table, as in the
	// collector (without it every row would read /proc/PID/stat).
	procs, err := cnproc.New(cnproc.Options{Sink: &event.MemSink{}})
	if err != nil {
		b.Skip(err)
	}
	defer testutil.Go(b, "cnproc.Source.Run", procs.Run)()
	src, err := New(Options{Sink: &event.MemSink{}, DNS: discard{}, Owners: owners, Procs: procs})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:53")
	if err != nil {
		b.Skip(err)
	}
	defer pc.Close()
	resp := answer(b, 1, "bench.pofr.test.", [4]byte{192, 0, 2, 1})
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			resp[0], resp[1] = buf[0], buf[1]
			_ = n
			pc.WriteTo(resp, from)
		}
	}()
	q := query(b, 1, "bench.pofr.test.", dnsmessage.TypeA)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	src.drain()
	const batch = 200
	var pkts uint64
	var cpu time.Duration
	buf := make([]byte, 2048)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		for range batch {
			c, err := net.Dial("udp4", "127.0.0.1:53")
			if err != nil {
				b.Fatal(err)
			}
			c.Write(q)
			c.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := c.Read(buf); err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
		before := src.Stats().Packets
		b.StartTimer()
		t0 := testutil.ThreadCPU()
		for src.Stats().Packets-before < 2*batch {
			if err := src.drain(); err != nil {
				b.Fatal(err)
			}
		}
		cpu += testutil.ThreadCPU() - t0
		pkts += src.Stats().Packets - before
	}
	st := src.Stats()
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(pkts), "cpu-ns/pkt")
	b.ReportMetric(float64(st.OwnerUnknown)/float64(max(st.Messages, 1)), "unowned/msg")
	b.ReportMetric(float64(pkts)/float64(b.N), "pkts/op")
}

type discard struct{}

func (discard) AppendDNS(*event.DNS) {}

// BenchmarkPrivBulkLoopback is a bulk TCP transfer over loopback
// (ephemeral ports, not DNS) without and with the DNS packet socket open: the filter
// runs in the kernel for every packet and must drop them all, so
// throughput and cpu-ns/MiB (user+system of the whole process, which sends,
// receives and, with the socket, filters) should be about the same. Run:
//
//	go test ./collector/dnspkt/ -run '^$' -bench PrivBulkLoopback
func BenchmarkPrivBulkLoopback(b *testing.B) {
	testutil.RequireRoot(b)
	for _, on := range []bool{false, true} {
		name := "filter=off"
		if on {
			name = "filter=on"
		}
		b.Run(name, func(b *testing.B) {
			var src *Source
			if on {
				var err error
				src, err = New(Options{Sink: &event.MemSink{}, DNS: discard{}})
				if err != nil {
					b.Fatal(err)
				}
				stop := testutil.Go(b, "Source.Run", src.Run)
				defer func() { stop(); src.Close() }()
			}
			ln := testutil.Listen(b, "tcp4", "127.0.0.1:0")
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				io.Copy(io.Discard, c)
				c.Close()
			}()
			c, err := net.Dial("tcp4", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			chunk := make([]byte, 1<<20)
			b.SetBytes(int64(len(chunk)))
			t0 := testutil.ProcessCPU()
			for b.Loop() {
				if _, err := c.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((testutil.ProcessCPU()-t0).Nanoseconds())/float64(b.N), "cpu-ns/MiB")
			if src != nil {
				if n := src.Stats().Packets; n != 0 {
					b.Fatalf("the filter passed %d non-DNS packets", n)
				}
			}
		})
	}
}
