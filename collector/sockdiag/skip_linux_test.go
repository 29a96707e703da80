package sockdiag

import (
	"net"
	"os"
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
