package ui

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/query"
)

// bigHost fills a host with n process rows over the day before t0: lives of
// three rows (fork, exec, exit) under a few long-lived parents, each a
// second or so long, and alive processes (snapshots at the start). One fill
// per sealed segment of at most per rows.
func bigHost(n, alive int) []func(event.Sink) {
	const per = 150_000
	start := t0.Add(-24 * time.Hour)
	lives := (n - alive) / 3
	step := 24 * time.Hour / time.Duration(max(lives, 1))
	var fills []func(event.Sink)
	fills = append(fills, func(s event.Sink) {
		s.AppendAccount(&event.Account{TS: start.UnixNano(), Kind: event.AcctUser, ID: 1000, Name: []byte("builder")})
		snapAlive(s, start, alive)
	})
	for first := 0; first < lives; first += per / 3 {
		last := min(first+per/3, lives)
		fills = append(fills, func(s event.Sink) {
			for i := first; i < last; i++ {
				pid := int32(2000 + i%4_000_000)
				ppid := int32(10 + i%(max(alive, 11)-10))
				ts := start.Add(time.Duration(i) * step)
				ps := int64(i+1) * 1000
				parent := event.Some(int64(ppid) * 10)
				s.AppendProc(&event.Proc{TS: ts.UnixNano(), Event: event.ProcFork, PID: pid, TID: pid, PPID: ppid,
					ProcStart: ps, ParentStart: parent, UID: 1000, EUID: 1000, GID: 1000, EGID: 1000, AUID: 1000,
					SessionID: event.NoID, Comm: []byte("make")})
				s.AppendProc(&event.Proc{TS: ts.Add(time.Millisecond).UnixNano(), Event: event.ProcExec, PID: pid, TID: pid,
					PPID: ppid, ProcStart: ps, ParentStart: parent, UID: 1000, EUID: 1000, GID: 1000, EGID: 1000, AUID: 1000,
					SessionID: 3, Exe: []byte("/usr/bin/cc"), Argv: fmt.Appendf(nil, "cc\x00-c\x00file%d.c\x00-o\x00file%d.o\x00", i, i),
					Comm: []byte("cc")})
				s.AppendProc(&event.Proc{TS: ts.Add(step / 2).UnixNano(), Event: event.ProcExit, PID: pid, TID: pid, PPID: ppid,
					ProcStart: ps, ParentStart: parent, UID: 1000, EUID: 1000, GID: 1000, EGID: 1000, AUID: 1000, SessionID: 3,
					ExitCode: event.Some(int32(0))})
			}
		})
	}
	return fills
}

// snapAlive appends snapshot rows of n processes alive from at on: pid 1,
// then pids 10.. in a tree of fan-out 20 (about three levels).
func snapAlive(s event.Sink, at time.Time, n int) {
	if n <= 0 {
		return
	}
	s.AppendProc(&event.Proc{TS: at.UnixNano(), Event: event.ProcSnapshot, PID: 1, TID: 1, PPID: 0, ProcStart: 10,
		ParentStart: event.Some(int64(0)), UID: 0, EUID: 0, GID: 0, EGID: 0, AUID: event.NoID, SessionID: event.NoID,
		Exe: []byte("/usr/lib/systemd/systemd"), Argv: []byte("/sbin/init\x00"), Comm: []byte("systemd")})
	for i := 1; i < n; i++ {
		pid := int32(9 + i)
		ppid := int32(1)
		if i > 20 {
			ppid = int32(9 + i/20)
		}
		s.AppendProc(&event.Proc{TS: at.UnixNano(), Event: event.ProcSnapshot, PID: pid, TID: pid, PPID: ppid,
			ProcStart: int64(pid) * 10, ParentStart: event.Some(int64(ppid) * 10), UID: 1000, EUID: 1000, GID: 1000, EGID: 1000,
			AUID: 1000, SessionID: 3, Exe: []byte("/usr/bin/worker"),
			Argv: fmt.Appendf(nil, "worker\x00--id=%d\x00--queue=<q%d>\x00", i, i%7), Comm: []byte("worker")})
	}
}

// benchServer is a Server over the fixture's reader account.
func benchServer(b *testing.B, f *fixture) http.Handler {
	db, err := OpenReader(f.readerDSN, time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	quick, err := OpenReader(f.readerDSN, DefaultTreeBudget)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { quick.Close() })
	s, err := New(Options{Querier: &query.Querier{DB: db}, Quick: &query.Querier{DB: quick}, TreeBudget: DefaultTreeBudget})
	if err != nil {
		b.Fatal(err)
	}
	return s.Handler()
}

// getPage runs one request through h and checks it answered 200 and that
// body holds want.
func getPage(b *testing.B, h http.Handler, path, want string) int {
	r := httptest.NewRequest("GET", "http://127.0.0.1"+path, nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		b.Fatalf("GET %s: %d\n%s", path, w.Code, w.Body.String())
	}
	if !strings.Contains(w.Body.String(), want) {
		b.Fatalf("GET %s: no %q in the page", path, want)
	}
	return w.Body.Len()
}

// BenchmarkHostPage1M opens the host page of a host with a million process
// rows: its default view (the timeline of the 20 minutes around the end of
// the record, and the tree at that moment within the tree budget, which it
// exceeds here: the page then offers the tree). Bar: under a second.
func BenchmarkHostPage1M(b *testing.B) {
	const rows = 1_000_000
	f := loadFixture(b, map[string][]func(event.Sink){"host-big": bigHost(rows, 200)})
	h := benchServer(b, f)
	for _, c := range []struct{ name, path, want string }{
		{"default", "/host/host-big", "Timeline"},
	} {
		b.Run(c.name, func(b *testing.B) {
			var size int
			b.ReportAllocs()
			for b.Loop() {
				size = getPage(b, h, c.path, c.want)
			}
			b.ReportMetric(float64(size), "html-bytes")
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/page")
		})
	}
}

// BenchmarkTree5000 opens the host page at a moment when 5,000 processes
// are alive (the whole tree rendered, filtered by nothing). Bar: under a
// second.
func BenchmarkTree5000(b *testing.B) {
	const alive = 5000
	f := loadFixture(b, map[string][]func(event.Sink){"host-tree": {func(s event.Sink) { snapAlive(s, t0, alive) }}})
	h := benchServer(b, f)
	v := url.Values{"at": {inputTime(t0.Add(time.Second))}}
	path := hostURL("host-tree", v)
	var size int
	b.ReportAllocs()
	for b.Loop() {
		size = getPage(b, h, path, fmt.Sprintf("%d processes alive", alive))
	}
	b.ReportMetric(float64(size), "html-bytes")
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/page")
}
