package query

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
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
	// keys, when not nil, maps the Authorization values the receiver
	// knows to the status they get (200: allowed, 403: not allowed to
	// index); any other value gets 401, as Elasticsearch with security on.
	keys map[string]int
	// tls, when not nil, makes the receiver serve HTTPS.
	tls *tls.Config

	mu        sync.Mutex
	requests  int
	ids       map[string]map[string]bool // row key → _ids
	delivered map[string]int             // _id → acknowledged deliveries
	maxDocs   int                        // most documents in one request
	acked     int                        // acknowledged documents, with countOnly
	refused   int                        // requests answered 401 or 403
}

// newESReceiver starts a receiver, after setup (keys, tls) when given.
func newESReceiver(t *testing.T, setup ...func(*esReceiver)) *esReceiver {
	r := &esReceiver{t: t, ids: map[string]map[string]bool{}, delivered: map[string]int{}}
	for _, f := range setup {
		f(r)
	}
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
	if r.tls != nil {
		ln = tls.NewListener(ln, r.tls)
	}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.bulk), ErrorLog: log.New(io.Discard, "", 0)}
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
	if r.keys != nil {
		if status := r.keys[req.Header.Get("Authorization")]; status != http.StatusOK {
			r.mu.Lock()
			r.refused++
			r.mu.Unlock()
			if status == 0 {
				status = http.StatusUnauthorized
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"error":{"type":"security_exception","reason":"refused"},"status":%d}`, status)
			return
		}
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

// waitIndexed waits until the index holds every wanted row, then stops
// the follower, which must end by being stopped.
func (r *esReceiver) waitIndexed(want map[string]bool, stop func() error) {
	r.t.Helper()
	testutil.WaitFor(r.t, time.Minute, "every row indexed", func() bool {
		_, err := r.check(want)
		return err == nil
	})
	if err := stop(); !errors.Is(err, context.Canceled) {
		r.t.Fatalf("follow: %v", err)
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
	r.waitIndexed(want, stop)
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

	base := liveHeap()
	stop = e.followWith(NewESSink(ctx, "http://"+r.addr, b, nil), filepath.Join(t.TempDir(), "cursor"), true)
	var peak uint64
	for range 40 { // 4 s: a few batches of the 30000 rows
		time.Sleep(100 * time.Millisecond)
		peak = max(peak, liveHeap())
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

// liveHeap is the heap after a garbage collection: what the process holds.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// countWriter counts the bytes written to it.
type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

// TestFollowESBackpressureLoadingService: segments keep being loaded while
// an endpoint taking one 500-row batch every two seconds holds the
// follower back; the follower's live heap stays within a few batches while
// the rows waiting in the database grow to many times that bound. The
// loads use a connection pool of their own, closed after each, and the
// heap is sampled between loads, so what is measured is the follower (the
// receiver keeps a count only; the spool writers' buffers are in the base).
func TestFollowESBackpressureLoadingService(t *testing.T) {
	e := newFollowEnv(t)
	e.rows = 50000 // 15000 proc rows a segment
	e.loaderPool = true
	e.load(1)
	r := newESReceiver(t, func(r *esReceiver) { r.delay = 2 * time.Second; r.countOnly = true })
	b := Batching{MaxDocs: 500, MaxBytes: 256 << 10}
	acked := func() int {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.acked
	}
	base := liveHeap()
	stop := e.followWith(NewESSink(t.Context(), "http://"+r.addr, b, nil), filepath.Join(t.TempDir(), "cursor"), true)
	var peak uint64
	var firstAcked int
	const loads = 6
	for i := range loads {
		e.load(1)
		for range 5 {
			time.Sleep(100 * time.Millisecond)
			peak = max(peak, liveHeap())
		}
		if i == 0 {
			firstAcked = acked()
		}
	}
	lastAcked := acked()
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("follow: %v", err)
	}
	var rows int
	if err := e.q.DB.QueryRow("SELECT COUNT(*) FROM proc_events").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	// Bytes per document in bulk format, from one whole segment.
	var seg uint64
	if err := e.q.DB.QueryRow("SELECT MIN(segment_id) FROM segments").Scan(&seg); err != nil {
		t.Fatal(err)
	}
	var cw countWriter
	docs, err := e.q.Export(t.Context(), &cw, ExportArgs{Table: "proc", Segment: seg, Bulk: true})
	if err != nil || docs == 0 {
		t.Fatalf("export of segment %d: %d documents, %v", seg, docs, err)
	}
	waiting := rows - lastAcked
	waitingBytes := int64(waiting) * int64(cw) / docs
	growth := int64(peak) - int64(base)
	bound := int64(8*b.MaxBytes + 4<<20)
	t.Logf("%d loads of 2 segments while following: %d rows, %d delivered (%d after the first load), %d waiting (~%d MB of bulk JSON, %d B/row); live heap %d → peak %d (+%d bytes; bound %d = 8 batches + 4 MiB)",
		loads+1, rows, lastAcked, firstAcked, waiting, waitingBytes>>20, int64(cw)/docs, base, peak, growth, bound)
	if growth > bound {
		t.Errorf("live heap grew by %d bytes while %d rows waited behind a slow sink, more than %d", growth, waiting, bound)
	}
	if waitingBytes < 8*bound {
		t.Errorf("only %d bytes of rows waited, less than 8× the bound %d: the test did not hold the follower back", waitingBytes, bound)
	}
	if lastAcked <= firstAcked {
		t.Errorf("the follower delivered nothing while segments were loaded (%d rows after the first load, %d at the end)", firstAcked, lastAcked)
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

// testCA returns a CA's PEM certificate and the TLS configuration of a
// server at 127.0.0.1 whose certificate that CA signed.
func testCA(t *testing.T) (caPEM []byte, server *tls.Config) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pofr test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		&tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// TestESAuthorization: the forms of an --es-auth-file's first line and
// the Authorization value each gives; a refused one's error does not quote
// the secret.
func TestESAuthorization(t *testing.T) {
	key := "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="
	for _, c := range []struct{ in, want string }{
		{"ApiKey " + key + "\n", "ApiKey " + key},
		{key, "ApiKey " + key},
		{"apikey  abc\r\nsecond line ignored\n", "apikey abc"},
		{"Bearer eyJhbGciOi.x.y\n", "Bearer eyJhbGciOi.x.y"},
		{"pofr:pa:ss\n", "Basic " + base64.StdEncoding.EncodeToString([]byte("pofr:pa:ss"))},
		{"pofr:pa:ss w\n", ""}, // a space: neither a token nor user:password
		{"", ""},
		{"\n", ""},
		{"pofr:\n", ""},
		{":secret\n", ""},
		{"ApiKey a secret\n", ""},
		{"Token secret\n", ""},
		{"ApiKey \x01secret\n", ""},
		{"user:pa\x1bss\n", ""},
	} {
		got, err := ESAuthorization([]byte(c.in))
		if c.want == "" {
			if err == nil {
				t.Errorf("%q: %q, want an error", c.in, got)
			} else if strings.Contains(err.Error(), "pa:ss") || strings.Contains(err.Error(), "secret") {
				t.Errorf("%q: the error quotes the secret: %v", c.in, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

// TestFollowESAuthService: over HTTPS with a private CA, the credentials
// (an API key, then basic auth) arrive in the Authorization header and
// every row is indexed once. Refused credentials (none or a wrong key:
// 401; a key without the index privilege: 403) end Follow with
// ErrCredentials after one request, not retried, with nothing delivered
// and the cursor file unchanged. A client without the CA refuses the
// server (retried: a certificate can be fixed on the server's side).
func TestFollowESAuthService(t *testing.T) {
	e := newFollowEnv(t)
	e.rows = 400 // 120 proc rows a segment, several batches each
	e.load(2)
	caPEM, serverTLS := testCA(t)
	auth := func(line string) string {
		v, err := ESAuthorization([]byte(line + "\n"))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	apiKey, basic, readOnly := auth("ApiKey Z29vZDprZXk="), auth("pofr:s3cret"), auth("cmVhZDpvbmx5")
	r := newESReceiver(t, func(r *esReceiver) {
		r.tls = serverTLS
		r.keys = map[string]int{apiKey: http.StatusOK, basic: http.StatusOK, readOnly: http.StatusForbidden}
	})
	cursor := filepath.Join(t.TempDir(), "cursor")
	b := Batching{MaxDocs: 16, Backoff: 10 * time.Millisecond, Retries: 2}
	sink := func(authorization string, trust bool) *ESSink {
		s := NewESSink(t.Context(), "https://"+r.addr, b, nil)
		if authorization != "" {
			s.Header.Set("Authorization", authorization)
		}
		if trust {
			tr, err := ESTransport(caPEM)
			if err != nil {
				t.Fatal(err)
			}
			s.Client.Transport = tr
		}
		return s
	}
	args := func(log func(string, error)) FollowArgs {
		return FollowArgs{Export: ExportArgs{Table: "proc", Bulk: true}, CursorFile: cursor,
			Interval: 20 * time.Millisecond, Retry: 10 * time.Millisecond, HoleWait: time.Minute, Log: log}
	}
	state := func() (refused, docs int, cur string) {
		r.mu.Lock()
		refused, docs = r.refused, len(r.delivered)
		r.mu.Unlock()
		b, err := os.ReadFile(cursor)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		return refused, docs, string(b)
	}
	refusedRun := func(name, authorization, status string) {
		t.Helper()
		refused0, docs0, cur0 := state()
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		err := e.q.Follow(ctx, sink(authorization, true), args(nil))
		if !errors.Is(err, ErrCredentials) || !strings.Contains(err.Error(), status) {
			t.Fatalf("%s: Follow ended with %v, want ErrCredentials and HTTP %s", name, err, status)
		}
		refused, docs, cur := state()
		if refused != refused0+1 || docs != docs0 || cur != cur0 {
			t.Errorf("%s: %d requests refused (want 1), %d documents delivered (want 0), cursor %q → %q (want unchanged)",
				name, refused-refused0, docs-docs0, cur0, cur)
		}
		t.Logf("%s: %v", name, err)
	}
	// followAll follows with authorization until every row is indexed.
	followAll := func(authorization string) {
		t.Helper()
		r.waitIndexed(e.want(), e.followWith(sink(authorization, true), cursor, true))
	}

	// Without the CA the server's certificate is refused, and retried.
	logged := make(chan error, 100)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	logErr := func(_ string, err error) {
		select {
		case logged <- err:
		default:
		}
	}
	go func() { done <- e.q.Follow(ctx, sink(apiKey, false), args(logErr)) }()
	select {
	case err := <-logged:
		if !strings.Contains(err.Error(), "certificate") {
			t.Errorf("without the CA: %v, want a certificate error", err)
		}
	case err := <-done:
		t.Fatalf("without the CA Follow ended: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("without the CA: no error logged in a minute")
	}
	cancel()
	<-done

	refusedRun("no credentials", "", "401")
	refusedRun("wrong API key", auth("d3Jvbmc6a2V5"), "401")
	followAll(apiKey)
	e.load(1)
	refusedRun("read-only key", readOnly, "403")
	refusedRun("wrong password", auth("pofr:wrong"), "401")
	followAll(basic)
	again, err := r.check(e.want())
	if err != nil {
		t.Fatal(err)
	}
	if again != 0 {
		t.Errorf("%d documents acknowledged twice; the follower stopped only when idle", again)
	}
	t.Logf("%d rows indexed once over HTTPS, %d requests, %d refused", len(e.want()), r.requests, r.refused)
}
