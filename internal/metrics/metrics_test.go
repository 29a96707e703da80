package metrics

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/crypto/ssh"

	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/internal/servertest"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/internal/testutil"
	"github.com/pofr/pofr/loader"
	"github.com/pofr/pofr/receiver"
	"github.com/pofr/pofr/wire"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// scrape serves reg over HTTP as the commands do and returns what a
// Prometheus scrape of GET /metrics parses to.
func scrape(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, reg, slog.New(slog.DiscardHandler)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %s %s", resp.Status, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse scrape: %v", err)
	}
	return mfs
}

// value returns the value of the sample of family name whose labels are
// exactly labels (name=value pairs), failing the test if there is none.
func value(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	v, err := testutil.MetricSample(mfs, name, labels...)
	if err != nil {
		t.Error(err)
	}
	return v
}

// TestReceiverMetrics drives a real receiver (an upload, a failed login, a
// connection over the per-address limit) and scrapes its counters.
func TestReceiverMetrics(t *testing.T) {
	testutil.RequireTier(t, testutil.TierService)
	state := statedir.Dir(t.TempDir())
	key := testutil.NewSigner(t)
	err := registry.Save(state, &registry.Host{
		HostID: "host-a", Facts: wire.Facts{Hostname: "host-a", MachineID: fmt.Sprintf("%032x", 1)},
		SSHKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key.PublicKey()))), SigningKey: make([]byte, 32),
		Status: registry.StatusActive, RegisteredAt: time.Now(),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := receiver.NewServer(receiver.Options{StateDir: state, MaxSegmentBytes: 1 << 20, MaxStartupsPerAddr: 1})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	addr := ln.Addr().String()
	dial := func(k ssh.Signer) (*ssh.Client, error) {
		return ssh.Dial("tcp", addr, &ssh.ClientConfig{User: "host-a", Auth: []ssh.AuthMethod{ssh.PublicKeys(k)},
			HostKeyCallback: ssh.FixedHostKey(srv.HostKey()), Timeout: 10 * time.Second})
	}

	// One upload.
	c, err := dial(key)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := sftp.NewClient(c)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("host-a_%020d_%016x.pofr", 1, 1)
	data := []byte("segment bytes")
	f, err := sc.OpenFile(wire.PartName(name), os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sc.PosixRename(wire.PartName(name), name); err != nil {
		t.Fatal(err)
	}
	sc.Close()
	c.Close()
	// A login with a key the host did not register.
	if c, err := dial(testutil.NewSigner(t)); err == nil {
		c.Close()
		t.Fatal("login with a wrong key succeeded")
	}
	// A second unauthenticated connection from this address is refused
	// while the first one waits.
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	testutil.WaitFor(t, 10*time.Second, "a refused connection", func() bool {
		c2, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		defer c2.Close()
		c2.SetReadDeadline(time.Now().Add(2 * time.Second))
		io.Copy(io.Discard, c2) // the server closes it at once
		return srv.Stats().Refused > 0
	})

	reg, err := NewRegistry(NewReceiver(srv))
	if err != nil {
		t.Fatal(err)
	}
	mfs := scrape(t, reg)
	if got := value(t, mfs, "pofr_segments_received_total"); got != 1 {
		t.Errorf("pofr_segments_received_total = %v, want 1", got)
	}
	if got := value(t, mfs, "pofr_receiver_bytes_total"); got != float64(len(data)) {
		t.Errorf("pofr_receiver_bytes_total = %v, want %d", got, len(data))
	}
	if got := value(t, mfs, "pofr_receiver_connections_total"); got < 2 {
		t.Errorf("pofr_receiver_connections_total = %v, want at least 2", got)
	}
	if got := value(t, mfs, "pofr_receiver_refusals_total"); got < 1 {
		t.Errorf("pofr_receiver_refusals_total = %v, want at least 1", got)
	}
	if got := value(t, mfs, "pofr_receiver_auth_failures_total"); got < 1 {
		t.Errorf("pofr_receiver_auth_failures_total = %v, want at least 1", got)
	}
	if got := value(t, mfs, "pofr_receiver_registrations_total"); got != 0 {
		t.Errorf("pofr_receiver_registrations_total = %v, want 0", got)
	}
	if _, ok := mfs["go_goroutines"]; !ok {
		t.Error("Go runtime metrics missing")
	}
}

// TestLedgerMetrics fills a real MariaDB's ledger and an inbox and scrapes
// every ledger metric.
func TestLedgerMetrics(t *testing.T) {
	db, _ := servertest.SchemaDB(t, loader.OpenDB)
	ctx := testutil.Deadline(t, time.Minute)
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// A session time zone other than UTC must not shift the timestamps.
	db.SetMaxOpenConns(1)
	exec(`SET time_zone = '+05:00'`)
	exec(`INSERT INTO hosts (host_id, status) VALUES ('h1', 'active'), ('h2', 'active'), ('h3', 'revoked')`)
	dig := func(i int) []byte { d := make([]byte, 32); d[0] = byte(i); return d }
	seg := func(id int, host string, seq int, chainOK sql.NullInt64, tsTo string, proc, file, sock, gap, acct int) {
		exec(`INSERT INTO segments (segment_id, host_id, boot_id, seq, digest, chain_ok, ts_from, ts_to, rows_proc, rows_file, rows_sock, rows_gap, rows_acct, file_name, file_bytes, loaded_at)
			VALUES (?, ?, 'b', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'f', 1, '2026-01-02 03:04:05.5')`,
			id, host, seq, dig(id), chainOK, tsTo, tsTo, proc, file, sock, gap, acct)
	}
	seg(1, "h1", 1, sql.NullInt64{Int64: 1, Valid: true}, "2026-01-01 00:00:00", 10, 20, 30, 2, 1)
	seg(2, "h1", 2, sql.NullInt64{Int64: 0, Valid: true}, "2026-01-01 00:10:00", 1, 2, 3, 1, 0)
	seg(3, "h2", 1, sql.NullInt64{}, "2026-01-01 00:05:00", 5, 0, 0, 0, 0)
	exec(`INSERT INTO quarantine (host_id, file, class) VALUES ('h1', 'a', 'bad_signature'), ('h1', 'b', 'bad_signature'), ('h2', 'c', 'fork')`)
	exec(`INSERT INTO gaps (segment_id, row_no, host_id, boot_id, from_ts, to_ts, source, lost) VALUES
		(1, 0, 'h1', 'b', '2026-01-01', '2026-01-01', 'proc', 7), (1, 1, 'h1', 'b', '2026-01-01', '2026-01-01', 'proc', 3),
		(2, 0, 'h1', 'b', '2026-01-01', '2026-01-01', 'collector', NULL)`)

	state := statedir.Dir(t.TempDir())
	inboxDir := filepath.Join(state.Inboxes(), "h1")
	if err := os.MkdirAll(inboxDir, 0o700); err != nil {
		t.Fatal(err)
	}
	arrived := time.Now().Add(-90 * time.Second)
	for _, n := range []string{"h1_1.pofr", "h1_2.pofr", ".h1_3.pofr.part", "h1_1.reason"} {
		p := filepath.Join(inboxDir, n)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, arrived, arrived); err != nil {
			t.Fatal(err)
		}
		arrived = arrived.Add(-time.Hour) // the part and reason files are older but do not count
	}

	l := NewLedger(db, state, nil)
	now := time.Now()
	l.now = func() time.Time { return now }
	reg, err := NewRegistry(l)
	if err != nil {
		t.Fatal(err)
	}
	mfs := scrape(t, reg)
	ts := func(s string) float64 {
		tm, err := time.Parse(time.DateTime, s)
		if err != nil {
			t.Fatal(err)
		}
		return float64(tm.Unix())
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"pofr_ledger_up", nil, 1},
		{"pofr_segments_loaded_total", []string{"host", "h1"}, 2},
		{"pofr_segments_loaded_total", []string{"host", "h2"}, 1},
		{"pofr_chain_breaks_total", []string{"host", "h1"}, 1},
		{"pofr_chain_breaks_total", []string{"host", "h2"}, 0},
		{"pofr_host_last_segment_timestamp_seconds", []string{"host", "h1"}, ts("2026-01-01 00:10:00")},
		{"pofr_host_last_segment_timestamp_seconds", []string{"host", "h2"}, ts("2026-01-01 00:05:00")},
		{"pofr_rows_loaded_total", []string{"table", "proc_events"}, 16},
		{"pofr_rows_loaded_total", []string{"table", "file_events"}, 22},
		{"pofr_rows_loaded_total", []string{"table", "sock_events"}, 33},
		{"pofr_rows_loaded_total", []string{"table", "gaps"}, 3},
		{"pofr_rows_loaded_total", []string{"table", "accounts"}, 1},
		{"pofr_last_load_timestamp_seconds", nil, ts("2026-01-02 03:04:05") + 0.5},
		{"pofr_segments_quarantined_total", []string{"reason", "bad_signature"}, 2},
		{"pofr_segments_quarantined_total", []string{"reason", "fork"}, 1},
		{"pofr_gaps_total", []string{"reason", "proc"}, 2},
		{"pofr_gaps_total", []string{"reason", "collector"}, 1},
		{"pofr_gap_lost_events_total", []string{"reason", "proc"}, 10},
		{"pofr_gap_lost_events_total", []string{"reason", "collector"}, 0},
		{"pofr_hosts", []string{"status", "active"}, 2},
		{"pofr_hosts", []string{"status", "revoked"}, 1},
		{"pofr_inbox_segments", nil, 2},
	} {
		if got := value(t, mfs, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// The oldest waiting .pofr file (h1_2) arrived 1 h 90 s ago.
	if got := value(t, mfs, "pofr_load_lag_seconds"); got < 3689 || got > 3691 {
		t.Errorf("pofr_load_lag_seconds = %v, want 3690", got)
	}
	if got := value(t, mfs, "pofr_ledger_scrape_duration_seconds"); got <= 0 {
		t.Errorf("pofr_ledger_scrape_duration_seconds = %v, want > 0", got)
	}

	// A database that is gone: ledger_up 0, the inbox still reported.
	db.Close()
	mfs = scrape(t, reg)
	if got := value(t, mfs, "pofr_ledger_up"); got != 0 {
		t.Errorf("pofr_ledger_up with a closed database = %v, want 0", got)
	}
	if got := value(t, mfs, "pofr_inbox_segments"); got != 2 {
		t.Errorf("pofr_inbox_segments with a closed database = %v, want 2", got)
	}
}
