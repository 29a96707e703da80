package loader

import (
	"fmt"
	"testing"
	"time"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/servertest"
)

// Segments and rows per segment of BenchmarkLoadDNS, BenchmarkLoadExe and
// BenchmarkLoadProc.
const benchSegs, benchRows = 2, 20_000

// BenchmarkLoadDNS loads segments of DNS rows as a resolving host sends
// them (a query and a response per name, the response with one A address
// in both of answer_addrs' forms; 500 names over and over) and reports
// rows loaded per second, the answers by address (dns_names) included.
// Service tier: a private MariaDB, one for the whole benchmark.
func BenchmarkLoadDNS(b *testing.B) {
	benchLoad(b, func(ds event.Sink, s, i int, ts int64) {
		n := i % 500
		q := event.DNS{TS: ts, Event: event.DNSQuery, Proto: "udp", ClientAddr: []byte{10, 0, 0, 1}, ClientPort: uint16(30000 + i%20000),
			ServerAddr: []byte{10, 0, 0, 53}, ServerPort: 53, PID: event.Some(int32(1000 + i)), ProcStart: event.Some(int64(i)),
			ID: uint16(i), QName: fmt.Appendf(nil, "host%d.example.com.", n), QType: event.Some[uint16](1)}
		if i%2 == 1 {
			q.TS, q.Event, q.RCode = ts+300_000, event.DNSResponse, event.Some[uint8](0)
			q.Answers = fmt.Appendf(nil, "host%d.example.com. A 60 93.184.%d.%d\n", n, n/256, n%256)
			q.AnswerAddrs = fmt.Appendf(nil, ",5DB8%02X%02X,00000000000000000000FFFF5DB8%02X%02X,", n/256, n%256, n/256, n%256)
		}
		ds.(event.DNSSink).AppendDNS(&q)
	})
}

// BenchmarkLoadExe loads segments of executables rows (1,000 identities,
// each sent again and again as a refreshing collector would) and reports
// rows loaded per second, the merge into exe_ids included.
func BenchmarkLoadExe(b *testing.B) {
	benchLoad(b, func(es event.Sink, s, i int, ts int64) {
		id := i % 1000
		sum := make([]byte, 32)
		sum[0], sum[1] = byte(id), byte(id>>8)
		es.(event.ExeSink).AppendExecutable(&event.Executable{TS: ts, LastTS: ts + 1e6, Count: 3, PID: int32(1000 + i),
			Dev: 2049, Inode: uint64(id), Size: 40960, MTimeNS: 1, CTimeNS: 2, SHA256: sum, How: event.ExeByHandle,
			Path: fmt.Appendf(nil, "/usr/bin/prog%d", id)})
	})
}

// benchLoad seals benchSegs segments of benchRows rows made by row for a
// new host per round and times the loader's pass over them.
func benchLoad(b *testing.B, row func(s event.Sink, seg, i int, ts int64)) {
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
		for s := range benchSegs {
			f.Seal(host, func(sink event.Sink) {
				for i := range benchRows {
					row(sink, s, i, base+int64(s*benchRows+i)*1e6)
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
		if err != nil || s.Loaded != benchSegs {
			b.Fatalf("run: %v, %s", err, s)
		}
		rows += benchSegs * benchRows
	}
	b.ReportMetric(float64(rows)/spent.Seconds(), "rows/s")
}

// BenchmarkLoadProc loads segments of proc rows as a busy host sends them
// (fork, exec and exit of short-lived workers; the exec rows naming their
// file by exe_key) and reports rows loaded per second.
func BenchmarkLoadProc(b *testing.B) {
	benchLoad(b, func(ps event.Sink, s, i int, ts int64) {
		pid := int32(10000 + (s*benchRows+i)/3)
		p := event.Proc{TS: ts, Event: []string{event.ProcFork, event.ProcExec, event.ProcExit}[i%3], PID: pid, TID: pid, PPID: 1,
			ProcStart: int64(pid), UID: 1000, EUID: 1000, GID: 1000, EGID: 1000, AUID: 1000, SessionID: 3, Comm: []byte("worker"),
			Exe: []byte("/usr/bin/worker"), Argv: fmt.Appendf(nil, "worker\x00--job\x00%d\x00", i), Cwd: []byte("/srv")}
		if p.Event == event.ProcExec {
			p.ExeKey = event.Some(event.ExeKey(2049, uint64(i%7), 40960, 1, 2))
		}
		ps.AppendProc(&p)
	})
}
