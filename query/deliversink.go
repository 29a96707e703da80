package query

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/pofr/pofr/internal/syslog5424"
)

// ErrCredentials is wrapped by a sink's error when the endpoint refused
// its credentials (HTTP 401 or 403 to the request as a whole): the batch
// is not retried, Follow stops with the error and the cursor stays before
// the batch, because only the operator can fix the key or the grant.
var ErrCredentials = errors.New("the endpoint refused the credentials")

// Batching configures a delivery sink: a batch is sent when it has MaxDocs
// documents or MaxBytes bytes, when its first document is older than
// MaxWait, or at the end of a segment. A failed send is tried again
// Retries times, waiting Backoff and twice as long each time (at most a
// minute); then the error goes to Follow, which retries the segment. An
// error wrapping ErrCredentials is not retried.
type Batching struct {
	MaxDocs  int
	MaxBytes int
	MaxWait  time.Duration
	Retries  int
	Backoff  time.Duration
}

func (b *Batching) defaults() {
	if b.MaxDocs <= 0 {
		b.MaxDocs = 1000
	}
	if b.MaxBytes <= 0 {
		b.MaxBytes = 4 << 20
	}
	if b.MaxWait <= 0 {
		b.MaxWait = 5 * time.Second
	}
	if b.Retries <= 0 {
		b.Retries = 5
	}
	if b.Backoff <= 0 {
		b.Backoff = 500 * time.Millisecond
	}
}

// batcher is the common part of the delivery sinks: it cuts the export's
// output into documents (linesPerDoc lines each), drops the ones delivered
// before a restart, and delivers full batches with send. Memory is one
// batch: Write does not return while a full batch is being delivered.
type batcher struct {
	ctx         context.Context
	b           Batching
	linesPerDoc int
	send        func(ctx context.Context, batch []byte, ends []int) error
	log         func(msg string, err error)

	batch     []byte // complete documents, then the current partial one
	ends      []int  // end of each complete document in batch
	docStart  int    // where the current document begins in batch
	lines     int    // complete lines of the current document
	first     time.Time
	skip      int64
	delivered int64
	acked     func(int64) error
}

// BeginSegment implements DeliverySink.
func (s *batcher) BeginSegment(skip int64, acked func(int64) error) {
	s.drop()
	s.skip, s.delivered, s.acked = skip, skip, acked
}

func (s *batcher) drop() {
	s.batch, s.ends, s.docStart, s.lines = s.batch[:0], s.ends[:0], 0, 0
}

// Write cuts p into documents and delivers each full batch before it returns.
func (s *batcher) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.batch = append(s.batch, p...)
			break
		}
		s.batch = append(s.batch, p[:i+1]...)
		p = p[i+1:]
		if s.lines++; s.lines < s.linesPerDoc {
			continue
		}
		s.lines = 0
		if s.skip > 0 {
			s.skip--
			s.batch = s.batch[:s.docStart]
			continue
		}
		if len(s.ends) == 0 {
			s.first = time.Now()
		}
		s.ends = append(s.ends, len(s.batch))
		s.docStart = len(s.batch)
		if len(s.ends) >= s.b.MaxDocs || len(s.batch) >= s.b.MaxBytes || time.Since(s.first) >= s.b.MaxWait {
			if err := s.flush(); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

// flush delivers the complete documents of the batch, retrying.
func (s *batcher) flush() error {
	if len(s.ends) == 0 {
		return nil
	}
	wait := s.b.Backoff
	var err error
	for attempt := 0; attempt <= s.b.Retries; attempt++ {
		if attempt > 0 {
			if s.log != nil {
				s.log("follow: deliver batch", err)
			}
			t := time.NewTimer(wait)
			select {
			case <-s.ctx.Done():
				t.Stop()
				return fmt.Errorf("%w (last: %v)", s.ctx.Err(), err)
			case <-t.C:
			}
			wait = min(2*wait, time.Minute)
		}
		if err = s.send(s.ctx, s.batch[:s.docStart], s.ends); err == nil {
			break
		}
		if s.ctx.Err() != nil || errors.Is(err, ErrCredentials) {
			return err
		}
	}
	if err != nil {
		return fmt.Errorf("%d attempts: %w", s.b.Retries+1, err)
	}
	s.delivered += int64(len(s.ends))
	rest := copy(s.batch, s.batch[s.docStart:])
	s.batch, s.ends, s.docStart = s.batch[:rest], s.ends[:0], 0
	if s.acked != nil {
		return s.acked(s.delivered)
	}
	return nil
}

// Commit delivers what is left of the segment.
func (s *batcher) Commit() error {
	if s.lines != 0 || len(s.batch) != s.docStart {
		return errors.New("delivery sink: segment ends in the middle of a document")
	}
	return s.flush()
}

// Position is empty: what is delivered is in the cursor's segment count.
func (s *batcher) Position() (string, int64) { return "", 0 }

// Rewind drops the batch not delivered yet.
func (s *batcher) Rewind(name string, offset int64) error {
	s.drop()
	return nil
}

// ESSink is a DeliverySink posting the export's bulk lines (ExportArgs.Bulk:
// an action line with a stable _id, then the document) to an Elasticsearch
// (or OpenSearch) _bulk endpoint. A batch is acknowledged only by a 2xx
// answer whose items all succeeded; a document sent again after a crash
// replaces itself (same _id), so the index holds no duplicate. Header is
// sent with every request (Authorization); Client may be replaced (a
// private CA).
type ESSink struct {
	batcher
	URL    string // …/_bulk
	Header http.Header
	Client *http.Client
}

// ESTransport returns an HTTP transport that trusts only the CA
// certificates in caPEM (a private CA of the cluster), for ESSink.Client.
func ESTransport(caPEM []byte) (*http.Transport, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("no PEM certificate in it")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return tr, nil
}

// ESAuthorization returns the Authorization header value for the content
// of an Elasticsearch credentials file (its first line): "ApiKey KEY" or
// "Bearer TOKEN" as it is, "USER:PASSWORD" as basic auth, or a bare API
// key (the "encoded" value Elasticsearch returns, which has no colon) as
// "ApiKey KEY". Errors never quote the content.
func ESAuthorization(content []byte) (string, error) {
	line, _, _ := bytes.Cut(content, []byte("\n"))
	s := strings.TrimSpace(string(line))
	if s == "" {
		return "", errors.New("empty first line")
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return "", errors.New("a control character in the first line")
		}
	}
	scheme, rest, spaced := strings.Cut(s, " ")
	switch {
	case spaced && (strings.EqualFold(scheme, "ApiKey") || strings.EqualFold(scheme, "Bearer")):
		rest = strings.TrimSpace(rest)
		if rest == "" || strings.ContainsAny(rest, " \t") {
			return "", fmt.Errorf("want %s followed by one token", scheme)
		}
		return scheme + " " + rest, nil
	case spaced:
		return "", errors.New("want ApiKey KEY, Bearer TOKEN, USER:PASSWORD or a bare API key")
	case strings.Contains(s, ":"):
		user, pass, _ := strings.Cut(s, ":")
		if user == "" || pass == "" {
			return "", errors.New("USER:PASSWORD with an empty user or password")
		}
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)), nil
	}
	return "ApiKey " + s, nil
}

// NewESSink posts to url (".../_bulk" is appended unless it ends so).
func NewESSink(ctx context.Context, url string, b Batching, log func(string, error)) *ESSink {
	b.defaults()
	if !strings.HasSuffix(url, "/_bulk") {
		url = strings.TrimSuffix(url, "/") + "/_bulk"
	}
	s := &ESSink{URL: url, Header: http.Header{}, Client: &http.Client{Timeout: time.Minute}}
	s.batcher = batcher{ctx: ctx, b: b, linesPerDoc: 2, send: s.post, log: log}
	return s
}

// bulkResponse is the part of the _bulk answer the sink reads.
type bulkResponse struct {
	Errors bool                          `json:"errors"`
	Items  []map[string]bulkResponseItem `json:"items"`
}

type bulkResponseItem struct {
	ID     string          `json:"_id"`
	Status int             `json:"status"`
	Error  json.RawMessage `json:"error"`
}

func (s *ESSink) post(ctx context.Context, batch []byte, ends []int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(batch))
	if err != nil {
		return err
	}
	for k, v := range s.Header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := s.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(len(ends))*4096+(1<<20)))
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return fmt.Errorf("_bulk: HTTP %s: %w: %.512s", resp.Status, ErrCredentials, body)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("_bulk: HTTP %s: %.512s", resp.Status, body)
	}
	var r bulkResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("_bulk: answer: %w", err)
	}
	if len(r.Items) != len(ends) {
		return fmt.Errorf("_bulk: %d items in the answer for %d documents", len(r.Items), len(ends))
	}
	failed, first := 0, ""
	for _, it := range r.Items {
		for _, v := range it {
			if v.Status/100 != 2 || len(v.Error) > 0 && string(v.Error) != "null" {
				if failed++; first == "" {
					first = fmt.Sprintf("_id %s: status %d: %.512s", v.ID, v.Status, v.Error)
				}
			}
		}
	}
	if failed > 0 || r.Errors {
		return fmt.Errorf("_bulk: %d of %d items failed, first %s", failed, len(ends), first)
	}
	return nil
}

// SyslogSink is a DeliverySink sending each document (a JSON line) as the
// MSG of one RFC 5424 message, MSGID the table. Over TCP or a unix stream
// a batch is acknowledged when the kernel took it (syslog has no
// acknowledgement of its own); over UDP a message can be lost unseen.
type SyslogSink struct {
	batcher
	w        *syslog5424.Writer
	facility int
	table    string
	hostname string
}

// NewSyslogSink sends to address over network (udp, tcp, unix) with the
// facility (a name of syslog5424.Facilities) and severity info.
func NewSyslogSink(ctx context.Context, network, address, facility, table string, b Batching, log func(string, error)) (*SyslogSink, error) {
	fac, ok := syslog5424.Facilities[facility]
	if !ok {
		return nil, fmt.Errorf("syslog sink: facility %q", facility)
	}
	b.defaults()
	host, _ := os.Hostname()
	s := &SyslogSink{w: &syslog5424.Writer{Network: network, Address: address}, facility: fac, table: table, hostname: host}
	s.batcher = batcher{ctx: ctx, b: b, linesPerDoc: 1, send: s.sendBatch, log: log}
	return s, nil
}

func (s *SyslogSink) sendBatch(ctx context.Context, batch []byte, ends []int) error {
	msgs := make([][]byte, len(ends))
	start, now := 0, time.Now()
	for i, end := range ends {
		msgs[i] = syslog5424.Format(syslog5424.Message{Facility: s.facility, Severity: syslog5424.Severities["info"], Time: now,
			Hostname: s.hostname, App: "pofr-export", MsgID: s.table, Msg: string(batch[start : end-1])})
		start = end
	}
	return s.w.Write(ctx, msgs...)
}

// Close closes the connection.
func (s *SyslogSink) Close() error { return s.w.Close() }
