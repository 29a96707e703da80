package sockowner

import (
	"net"
	"os"
	"testing"

	"github.com/pofr/pofr/internal/testutil"
)

// BenchmarkPrivSync is the reader's CPU per outbound TCP connection: the
// ring records of connections made with the timer stopped are drained into
// the tracker and their owners looked up with it running. Run:
//
//	go test ./collector/sockowner/ -run '^$' -bench PrivSync
func BenchmarkPrivSync(b *testing.B) {
	testutil.RequireRoot(b)
	s, err := Open(Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ln := testutil.Listen(b, "tcp4", "127.0.0.1:0")
	testutil.Accept(ln, func(c net.Conn) { c.Close() })
	const batch = 200
	keys := make([]Key, 0, batch)
	laddrs := make([][16]byte, 0, batch)
	s.Sync()
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		keys, laddrs = keys[:0], laddrs[:0]
		for range batch {
			c, err := net.Dial("tcp4", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			la, ra := c.LocalAddr().(*net.TCPAddr), c.RemoteAddr().(*net.TCPAddr)
			k, l := KeyOf(protoTCP, la.IP.To4(), uint16(la.Port), ra.IP.To4(), uint16(ra.Port))
			keys, laddrs = append(keys, k), append(laddrs, l)
			c.Close()
		}
		b.StartTimer()
		s.Sync()
		for i, k := range keys {
			if o, ok := s.Lookup(k, laddrs[i]); !ok || o.PID != int32(os.Getpid()) {
				b.Fatalf("connection %d: owner %+v %v", i, o, ok)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch)/1e3, "µs/conn")
}
