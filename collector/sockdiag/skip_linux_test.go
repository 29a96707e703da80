package sockdiag

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/pofr/pofr/collector/sockowner"
	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/testutil"
)

// serverSide is ConnOwners over the tracepoint source whose change count
// leaves out the connects: the test's client is on this host, and its
// connect alone would bring the TCP dump back. With it, only the accepted
// end and the listener can.
type serverSide struct{ *sockowner.Source }

func (o serverSide) Changes() (uint64, bool) {
	_, settled := o.Source.Changes()
	st := o.Source.Stats()
	return st.Tracker.Accepts + st.Tracker.Listens + st.Lost, settled
}

// sockWaitSkips waits until the source left TCP out of two dumps in a row.
func sockWaitSkips(t *testing.T, src *Source) {
	t.Helper()
	prev := src.Stats()
	testutil.WaitFor(t, 30*time.Second, "two dumps in a row without TCP (is the host's TCP never quiet?)", func() bool {
		cur := src.Stats()
		if cur.Dumps-cur.TCPSkips != prev.Dumps-prev.TCPSkips {
			prev = cur // a TCP dump: start again
			return false
		}
		return cur.TCPSkips >= prev.TCPSkips+2
	})
}

// TestPrivSockSkipTCP: with connection owners from tracepoints a quiet host
// gets dumps without TCP, and a new listener and an accepted connection
// still get their rows within the backed-off interval (400 ms here), not
// at the next safety-net dump (sockTCPWalkMax): the listen record and the
// accepted end's record bring the TCP dump back, also when the connect of
// the client is not counted (serverSide).
func TestPrivSockSkipTCP(t *testing.T) {
	testutil.RequireRoot(t)
	co := openConnOwners(t, false)
	for _, tc := range []struct {
		name   string
		owners ConnOwners
	}{{"all", co}, {"server_side", serverSide{co}}} {
		t.Run(tc.name, func(t *testing.T) {
			src, sink := startSock(t, Options{DumpInterval: 50 * time.Millisecond, UDP: true, ConnOwners: tc.owners})
			sockWaitSkips(t, src)
			walks := func() uint64 { st := src.Stats(); return st.Dumps - st.TCPSkips }
			w0 := walks()
			ln := testutil.Listen(t, "tcp4", "127.0.0.1:0")
			lport := sockPortOf(ln.Addr())
			testutil.WaitFor(t, 5*time.Second, "listen row", func() bool {
				return len(sockRows(sink, func(r *event.Sock) bool {
					return r.Event == event.SockListen && r.Proto == "tcp" && r.LocalPort == lport
				})) == 1
			})
			if walks() == w0 {
				t.Fatal("listen row without a TCP dump")
			}

			sockWaitSkips(t, src)
			ch := make(chan net.Conn, 1)
			testutil.Accept(ln, func(c net.Conn) { ch <- c })
			c, err := net.Dial("tcp4", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			select {
			case a := <-ch:
				defer a.Close()
			case <-time.After(5 * time.Second):
				t.Fatal("no accept")
			}
			cport := sockPortOf(c.LocalAddr())
			var rows []event.Sock
			testutil.WaitFor(t, 5*time.Second, "open row of the accepted end", func() bool {
				rows = sockRows(sink, func(r *event.Sock) bool {
					return r.Event == event.SockOpen && r.LocalPort == lport && r.RemotePort == cport
				})
				return len(rows) == 1
			})
			if r := rows[0]; r.Direction != event.DirIn || r.PID != event.Some(int32(os.Getpid())) {
				t.Errorf("accepted end: direction %s, pid %v; want in, %d", r.Direction, r.PID, os.Getpid())
			}
		})
	}
}

// BenchmarkPrivSockIdle is the socket source's CPU on a quiet host, with
// connection owners from tracepoints (TCP left out of dumps while nothing
// appears; the rings' reads included) and without (every dump walks the
// kernel's TCP hash), alternated in each round: the process's rusage over
// 30 s, after 16 s in which the dump interval backs off to its longest
// (default interval 1 s, UDP on). The source records a network namespace
// of its own with no socket (a helper process holds it), so that the
// host's sockets send it no destroy messages; its dumps still walk the
// whole TCP hash, which the namespaces share, and the tracepoint still
// sees every TCP transition of the host (they bring walks back, counted in
// tcp-walks). Run:
//
//	go test ./collector/sockdiag/ -run '^$' -bench PrivSockIdle -benchtime=3x
func BenchmarkPrivSockIdle(b *testing.B) {
	testutil.RequireRoot(b)
	holder := exec.Command("unshare", "--net", "sleep", "3600")
	if err := holder.Start(); err != nil {
		b.Skip("unshare: ", err)
	}
	defer func() { holder.Process.Kill(); holder.Wait() }()
	ns := fmt.Sprintf("/proc/%d/ns/net", holder.Process.Pid)
	testutil.WaitFor(b, 5*time.Second, "helper in its namespace", func() bool {
		self, err1 := os.Readlink("/proc/self/ns/net")
		other, err2 := os.Readlink(ns)
		return err1 == nil && err2 == nil && self != other
	})
	var cpu, walks, dumps [2]float64
	round := 0
	for b.Loop() {
		round++
		for i, tp := range []bool{true, false} {
			opts := Options{Sink: &event.MemSink{}, UDP: true, Netns: ns}
			var co *sockowner.Source
			stopCo := func() {}
			if tp {
				var err error
				if co, err = sockowner.Open(sockowner.Options{}); err != nil {
					b.Fatal(err)
				}
				opts.ConnOwners, stopCo = co, testutil.Go(b, "sockowner.Source.Run", co.Run)
			}
			src, err := New(opts)
			if err != nil {
				b.Fatal(err)
			}
			stop := testutil.Go(b, "Source.Run", src.Run)
			time.Sleep(16 * time.Second)
			st0, cpu0, t0 := src.Stats(), testutil.ProcessCPU(), time.Now()
			time.Sleep(30 * time.Second)
			st1, cpu1, t1 := src.Stats(), testutil.ProcessCPU(), time.Now()
			stop()
			stopCo()
			if co != nil {
				co.Close()
			}
			c := float64(cpu1-cpu0) / 1e6 / t1.Sub(t0).Seconds()
			d := float64(st1.Dumps - st0.Dumps)
			w := float64((st1.Dumps - st1.TCPSkips) - (st0.Dumps - st0.TCPSkips))
			b.Logf("round %d tracepoints=%v: %.3f ms/s, %.0f dumps, %.0f with TCP", round, tp, c, d, w)
			cpu[i], dumps[i], walks[i] = cpu[i]+c, dumps[i]+d, walks[i]+w
		}
	}
	n := float64(round)
	b.ReportMetric(cpu[0]/n, "tp-cpu-ms/s")
	b.ReportMetric(cpu[1]/n, "scan-cpu-ms/s")
	b.ReportMetric(walks[0]/n, "tp-tcp-walks")
	b.ReportMetric(walks[1]/n, "scan-tcp-walks")
	b.ReportMetric(dumps[0]/n, "tp-dumps")
}
