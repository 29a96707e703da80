package loader

import (
	"fmt"
	"testing"
	"time"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/servertest"
)

// BenchmarkLoadDNS loads segments of DNS rows as a resolving host sends
// them (a query and a response per name, the response with one A address
// in both of answer_addrs' forms; 500 names over and over) and reports
// dns_events rows loaded per second, the DNS answers by address included.
// Service tier: a private MariaDB, one for the whole benchmark.
func BenchmarkLoadDNS(b *testing.B) {
	const segs, pairs = 2, 10_000
	db, _ := newDB(b)
	var rows int64
	var spent time.Duration
	round := 0
	for b.Loop() {
		b.StopTimer()
		round++
		host := fmt.Sprintf("b%d", round)
		f := servertest.NewFixture(b, host)
		base := servertest.HostileBase()
		for s := range segs {
			f.Seal(host, func(sink event.Sink) {
				ds := sink.(event.DNSSink)
				for i := range pairs {
					n := i % 500
					ts := base + int64(s*pairs+i)*1e6
					q := event.DNS{TS: ts, Event: event.DNSQuery, Proto: "udp", ClientAddr: []byte{10, 0, 0, 1}, ClientPort: uint16(30000 + i%20000),
						ServerAddr: []byte{10, 0, 0, 53}, ServerPort: 53, PID: event.Some(int32(1000 + i)), ProcStart: event.Some(int64(i)),
						ID: uint16(i), QName: fmt.Appendf(nil, "host%d.example.com.", n), QType: event.Some[uint16](1)}
					ds.AppendDNS(&q)
					r := q
					r.TS, r.Event, r.RCode = ts+300_000, event.DNSResponse, event.Some[uint8](0)
					r.Answers = fmt.Appendf(nil, "host%d.example.com. A 60 93.184.%d.%d\n", n, n/256, n%256)
					r.AnswerAddrs = fmt.Appendf(nil, ",5DB8%02X%02X,00000000000000000000FFFF5DB8%02X%02X,", n/256, n%256, n/256, n%256)
					ds.AppendDNS(&r)
				}
			})
		}
		l, err := New(Options{DB: db, StateDir: f.State, Workers: 1})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		s, err := l.Run(b.Context())
		spent += time.Since(start)
		l.Close()
		if err != nil || s.Loaded != segs {
			b.Fatalf("run: %v, %s", err, s)
		}
		rows += int64(segs * pairs * 2)
	}
	b.ReportMetric(float64(rows)/spent.Seconds(), "dns-rows/s")
}
