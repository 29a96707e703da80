package query

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pofr/pofr/internal/testutil"
)

// esReceiver is an HTTP server implementing enough of Elasticsearch's
// _bulk: NDJSON action and document lines, an answer with one item per
// document. It can be stopped and started again on the same address, fail
// one item of every failEvery-th request, and take delay per request.
type esReceiver struct {
	t         *testing.T
	addr      string
	srv       *http.Server
	failEvery int
	delay     time.Duration
	// countOnly keeps a count of acknowledged documents instead of their
	// ids, so that a test measuring the follower's heap in this process
	// does not measure what the receiver keeps.
	countOnly bool

	mu        sync.Mutex
	requests  int
	ids       map[string]map[string]bool // row key → _ids
	delivered map[string]int             // _id → acknowledged deliveries
	maxDocs   int                        // most documents in one request
	acked     int                        // acknowledged documents, with countOnly
}

func newESReceiver(t *testing.T) *esReceiver {
	r := &esReceiver{t: t, ids: map[string]map[string]bool{}, delivered: map[string]int{}}
	r.start()
	t.Cleanup(r.stop)
	return r
}

// listenAgain listens on addr, a free port if "", waiting a moment for the
// socket of a server stopped just before to go.
func listenAgain(t *testing.T, addr string) net.Listener {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", addr); err == nil {
			return ln
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal(err)
	return nil
}

func (r *esReceiver) start() {
	ln := listenAgain(r.t, r.addr)
	r.addr = ln.Addr().String()
	r.srv = &http.Server{Handler: http.HandlerFunc(r.bulk)}
	go r.srv.Serve(ln)
}

// stop shuts down gracefully: requests in flight get their answer.
func (r *esReceiver) stop() {
	if r.srv != nil {
		r.srv.Shutdown(context.Background())
		r.srv = nil
	}
}

func (r *esReceiver) bulk(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/_bulk" || req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/x-ndjson" {
		http.Error(w, "not a bulk request", http.StatusBadRequest)
		return
	}
	time.Sleep(r.delay)
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	lines := bytes.Split(bytes.TrimSuffix(body, []byte("\n")), []byte("\n"))
	if len(lines)%2 != 0 {
		http.Error(w, "odd number of lines", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	fail := r.failEvery > 0 && r.requests%r.failEvery == 0
	r.maxDocs = max(r.maxDocs, len(lines)/2)
	type item struct {
		ID     string `json:"_id"`
		Status int    `json:"status"`
		Error  any    `json:"error,omitempty"`
	}
	var items []map[string]item
	var stored []string
	for i := 0; i < len(lines); i += 2 {
		var action map[string]struct {
			Index string `json:"_index"`
			ID    string `json:"_id"`
		}
		var d struct {
			Host string `json:"host_id"`
			Seq  int64  `json:"segment_seq"`
			Row  int64  `json:"row_no"`
		}
		if json.Unmarshal(lines[i], &action) != nil || json.Unmarshal(lines[i+1], &d) != nil || action["index"].ID == "" {
			http.Error(w, "bad line", http.StatusBadRequest)
			return
		}
		id := action["index"].ID
		if fail && i == len(lines)-2 {
			items = append(items, map[string]item{"index": {ID: id, Status: 429, Error: map[string]string{"type": "es_rejected_execution_exception"}}})
			continue
		}
		if r.countOnly {
			items = append(items, map[string]item{"index": {ID: id, Status: 201}})
			r.acked++
			continue
		}
		key := fmt.Sprintf("%s:%d:%d", d.Host, d.Seq, d.Row)
		if r.ids[key] == nil {
			r.ids[key] = map[string]bool{}
		}
		r.ids[key][id] = true
		stored = append(stored, id)
		items = append(items, map[string]item{"index": {ID: id, Status: 201}})
	}
	b, _ := json.Marshal(map[string]any{"took": 1, "errors": fail, "items": items})
	w.Header().Set("Content-Type", "application/json")
	if _, err := w.Write(b); err == nil && !fail && req.Context().Err() == nil {
		for _, id := range stored {
			r.delivered[id]++
		}
	}
}

// check fails unless the index holds every wanted row under one _id, and
// returns the number of documents acknowledged more than once.
func (r *esReceiver) check(want map[string]bool) (again int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range want {
		if len(r.ids[k]) != 1 {
			return 0, fmt.Errorf("row %s indexed under %d _ids", k, len(r.ids[k]))
		}
	}
	if len(r.ids) != len(want) {
		return 0, fmt.Errorf("indexed %d rows, the database has %d", len(r.ids), len(want))
	}
	for _, n := range r.delivered {
		again += n - 1
	}
	return again, nil
}

// followWith runs Follow of the proc table on sink in the background.
func (e *followEnv) followWith(sink FollowSink, cursor string, bulk bool) (stop func() error) {
	ctx, cancel := context.WithCancel(e.t.Context())
	done := make(chan error, 1)
	go func() {
		done <- e.q.Follow(ctx, sink, FollowArgs{Export: ExportArgs{Table: "proc", Bulk: bulk}, CursorFile: cursor,
			Interval: 20 * time.Millisecond, Retry: 10 * time.Millisecond, HoleWait: time.Minute})
	}()
	return func() error {
		cancel()
		return <-done
	}
}

// TestFollowESService: rows reach a _bulk endpoint exactly once across
// restarts of the follower, an outage of the endpoint, and item-level
// failures; an acknowledged document is sent again only if it was in the
// batch in flight when the follower stopped.
func TestFollowESService(t *testing.T) {
	e := newFollowEnv(t)
	e.rows = 400 // 120 proc rows a segment, several batches each
	r := newESReceiver(t)
	r.failEvery = 7
	cursor := filepath.Join(t.TempDir(), "cursor")
	b := Batching{MaxDocs: 16, Backoff: 10 * time.Millisecond, Retries: 2}
	start := func() (*ESSink, func() error) {
		ctx, cancel := context.WithCancel(t.Context())
		s := NewESSink(ctx, "http://"+r.addr, b, nil)
		stop := e.followWith(s, cursor, true)
		return s, func() error { err := stop(); cancel(); return err }
	}
	e.load(3)
	_, stop := start()
	restarts := 0
	for i := range 4 {
		e.load(1)
		time.Sleep(time.Duration(50+30*i) * time.Millisecond)
		if i == 1 {
			r.stop() // outage while the follower runs
			time.Sleep(700 * time.Millisecond)
			r.start()
			continue
		}
		if err := stop(); !errors.Is(err, context.Canceled) {
			t.Fatalf("follow: %v", err)
		}
		restarts++
		_, stop = start()
	}
	want := e.want()
	testutil.WaitFor(t, time.Minute, "every row indexed", func() bool {
		_, err := r.check(want)
		return err == nil
	})
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("follow: %v", err)
	}
	again, err := r.check(want)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d rows, %d requests, %d restarts, %d documents acknowledged twice", len(want), r.requests, restarts, again)
	if again > restarts*b.MaxDocs {
		t.Errorf("%d documents acknowledged again, more than the %d of one batch in flight per restart", again, restarts*b.MaxDocs)
	}
	if r.maxDocs > b.MaxDocs {
		t.Errorf("a request had %d documents, the batch is %d", r.maxDocs, b.MaxDocs)
	}
}

// TestFollowESBackpressureService: with an endpoint taking one batch per
// second and many rows waiting, the follower's live heap grows by about a
// batch, not by the rows waiting (a whole segment here is ~8 MB of JSON).
func TestFollowESBackpressureService(t *testing.T) {
	e := newFollowEnv(t)
	e.rows = 50000 // 15000 proc rows a segment
	e.load(1)
	r := newESReceiver(t)
	r.delay = time.Second
	r.countOnly = true
	b := Batching{MaxDocs: 500, MaxBytes: 256 << 10}
	// Throughput to a fast endpoint first (a ratio of nothing; logged).
	fast := newESReceiver(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	t0 := time.Now()
	stop := e.followWith(NewESSink(ctx, "http://"+fast.addr, b, nil), filepath.Join(t.TempDir(), "cursor"), true)
	want := e.want()
	testutil.WaitFor(t, 2*time.Minute, "every row indexed", func() bool {
		_, err := fast.check(want)
		return err == nil
	})
	t.Logf("fast _bulk endpoint: %d rows in %v, %.0f rows/s", len(want), time.Since(t0), float64(len(want))/time.Since(t0).Seconds())
	stop()
	sl := newSyslogReceiver(t)
	ss, err := NewSyslogSink(ctx, "tcp", sl.addr, "local0", "proc", b, nil)
	if err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	stop = e.followWith(ss, filepath.Join(t.TempDir(), "cursor"), false)
	testutil.WaitFor(t, 2*time.Minute, "every row received", func() bool {
		sl.mu.Lock()
		defer sl.mu.Unlock()
		return len(sl.msgs) >= len(want)
	})
	if got, err := sl.rows(); err != nil || sameRows(got, want) != nil {
		t.Fatalf("syslog: %v %v", err, sameRows(got, want))
	}
	t.Logf("TCP syslog server: %d rows in %v, %.0f rows/s", len(want), time.Since(t0), float64(len(want))/time.Since(t0).Seconds())
	stop()
	ss.Close()

	live := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	base := live()
	stop = e.followWith(NewESSink(ctx, "http://"+r.addr, b, nil), filepath.Join(t.TempDir(), "cursor"), true)
	var peak uint64
	for range 40 { // 4 s: a few batches of the 30000 rows
		time.Sleep(100 * time.Millisecond)
		peak = max(peak, live())
	}
	stop()
	r.mu.Lock()
	got := r.acked
	r.mu.Unlock()
	growth := int64(peak) - int64(base)
	bound := int64(8*b.MaxBytes + 4<<20)
	t.Logf("slow endpoint: %d of %d rows delivered; live heap %d → peak %d (+%d bytes; bound %d = 8 batches + 4 MiB)", got, len(want), base, peak, growth, bound)
	if growth > bound {
		t.Errorf("live heap grew by %d bytes with a slow sink, more than %d", growth, bound)
	}
	if got >= len(want) {
		t.Errorf("the slow endpoint got all %d rows: the test did not hold the follower back", got)
	}
}

// syslogReceiver is a TCP syslog server (RFC 6587 octet counting) that can
// go down and come back on the same address. Going down it stops
// accepting, closes its side of each connection and reads on until the
// sender closes, so it loses nothing the sender wrote.
type syslogReceiver struct {
	t    *testing.T
	addr string
	ln   net.Listener
	wg   sync.WaitGroup

	mu    sync.Mutex
	msgs  []string
	conns map[net.Conn]bool
}

func newSyslogReceiver(t *testing.T) *syslogReceiver {
	r := &syslogReceiver{t: t, conns: map[net.Conn]bool{}}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *syslogReceiver) start() {
	r.ln = listenAgain(r.t, r.addr)
	r.addr = r.ln.Addr().String()
	ln := r.ln
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.conns[c] = true
			r.mu.Unlock()
			r.wg.Add(1)
			go r.read(c)
		}
	}()
}

func (r *syslogReceiver) read(c net.Conn) {
	defer r.wg.Done()
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		c.SetReadDeadline(time.Now().Add(time.Minute))
		n, err := br.ReadString(' ')
		if err != nil {
			return
		}
		size, err := strconv.Atoi(n[:len(n)-1])
		if err != nil || size <= 0 || size > 1<<20 {
			r.t.Errorf("syslog frame length %q", n)
			return
		}
		b := make([]byte, size)
		if _, err := io.ReadFull(br, b); err != nil {
			r.t.Errorf("syslog frame cut: %v", err)
			return
		}
		r.mu.Lock()
		r.msgs = append(r.msgs, string(b))
		r.mu.Unlock()
	}
}

func (r *syslogReceiver) stop() {
	r.beginStop()
	r.wg.Wait()
}

// beginStop closes the listener and its side of each connection; the
// readers go on until the sender closes (when it next has something to send).
func (r *syslogReceiver) beginStop() {
	if r.ln == nil {
		return
	}
	r.ln.Close()
	r.ln = nil
	r.mu.Lock()
	for c := range r.conns {
		c.(*net.TCPConn).CloseWrite()
		delete(r.conns, c)
	}
	r.mu.Unlock()
}

var syslogJSON = regexp.MustCompile(`^<134>1 \S+ \S+ pofr-export \d+ proc - \x{feff}(\{.*\})$`)

// rows counts each row key in the received messages.
func (r *syslogReceiver) rows() (map[string]int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := map[string]int{}
	for _, m := range r.msgs {
		sm := syslogJSON.FindStringSubmatch(m)
		if sm == nil {
			return nil, fmt.Errorf("not the RFC 5424 message expected: %q", m)
		}
		var d struct {
			Host string `json:"host_id"`
			Seq  int64  `json:"segment_seq"`
			Row  int64  `json:"row_no"`
		}
		if err := json.Unmarshal([]byte(sm[1]), &d); err != nil {
			return nil, fmt.Errorf("%q: %v", sm[1], err)
		}
		got[fmt.Sprintf("%s:%d:%d", d.Host, d.Seq, d.Row)]++
	}
	return got, nil
}

// TestFollowSyslogService: rows reach a TCP syslog server exactly once, as
// RFC 5424 messages, across restarts of the follower (in the middle of
// segments) and restarts of the server.
func TestFollowSyslogService(t *testing.T) {
	e := newFollowEnv(t)
	e.rows = 400
	r := newSyslogReceiver(t)
	cursor := filepath.Join(t.TempDir(), "cursor")
	b := Batching{MaxDocs: 16, Backoff: 10 * time.Millisecond, Retries: 2}
	start := func() func() error {
		ctx, cancel := context.WithCancel(t.Context())
		s, err := NewSyslogSink(ctx, "tcp", r.addr, "local0", "proc", b, nil)
		if err != nil {
			t.Fatal(err)
		}
		stop := e.followWith(s, cursor, false)
		return func() error { err := stop(); s.Close(); cancel(); return err }
	}
	e.load(3)
	t0 := time.Now()
	stop := start()
	for i := range 4 {
		e.load(1)
		time.Sleep(time.Duration(50+30*i) * time.Millisecond)
		if i%2 == 1 {
			r.beginStop()
			e.load(1) // the sender finds the connection closed and the server down
			r.wg.Wait()
			time.Sleep(300 * time.Millisecond)
			r.start()
			continue
		}
		if err := stop(); !errors.Is(err, context.Canceled) {
			t.Fatalf("follow: %v", err)
		}
		stop = start()
	}
	want := e.want()
	var last error
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		got, err := r.rows()
		if err == nil {
			err = sameRows(got, want)
		}
		if last = err; err == nil || len(got) >= len(want) {
			break
		}
	}
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("follow: %v", err)
	}
	got, err := r.rows()
	if err == nil {
		err = sameRows(got, want)
	}
	if err != nil {
		t.Fatalf("%v (while waiting: %v)", err, last)
	}
	t.Logf("%d rows in %v across restarts", len(want), time.Since(t0))
}
