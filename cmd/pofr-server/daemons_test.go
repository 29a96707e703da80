package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pofr/pofr/alert"
	"github.com/pofr/pofr/internal/servertest"
	"github.com/pofr/pofr/internal/testutil"
	"github.com/pofr/pofr/loader"
)

// TestAlertWatch runs the built `pofr-server alert --watch` against a
// private MariaDB with a saved-query rule and a webhook: a match fires once
// across the passes of one process (a later match proves that passes ran)
// and across a restart of the process (a match after the restart proves
// the new process ran a pass).
func TestAlertWatch(t *testing.T) {
	testutil.RequireTier(t, testutil.TierService)
	db, dsn := servertest.SchemaDB(t, loader.OpenDB)
	dsnFile := writeLine(t, t.TempDir(), "dsn", dsn)

	var mu sync.Mutex
	var got []alert.Alert
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a alert.Alert
		if err := json.NewDecoder(r.Body).Decode(&a); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		mu.Lock()
		got = append(got, a)
		mu.Unlock()
		// Answer late: the test stops the process while the answer is on
		// its way, and a delivered alert must not fire again.
		time.Sleep(300 * time.Millisecond)
	}))
	defer srv.Close()
	rules := filepath.Join(t.TempDir(), "alerts.json")
	if err := os.WriteFile(rules, []byte(`{"rules": [{"name": "evil-host", "kind": "sql",
		"query": "SELECT host_id, hostname AS alert_key FROM hosts WHERE hostname LIKE 'evil%'"}],
		"sinks": [{"type": "webhook", "url": "`+srv.URL+`"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	addHost := func(id string) {
		t.Helper()
		if _, err := db.Exec("INSERT INTO hosts (host_id, hostname, status, last_seen) VALUES (?, ?, 'active', NOW())", id, "evil-"+id); err != nil {
			t.Fatal(err)
		}
	}
	keys := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var k []string
		for _, a := range got {
			k = append(k, a.Key)
		}
		return k
	}
	waitKeys := func(want ...string) {
		t.Helper()
		testutil.WaitFor(t, 30*time.Second, "alerts "+strings.Join(want, ", "), func() bool { return len(keys()) >= len(want) })
		if k := keys(); strings.Join(k, " ") != strings.Join(want, " ") {
			t.Fatalf("alerts %q, want %q (each match once, in order)", k, want)
		}
	}
	bin := testutil.Bin(t, "./cmd/pofr-server")
	start := func() (stop func()) {
		stopBin, _ := background(t, bin, "alert", "--watch", "100ms", "--rules", rules, "--dsn-file", dsnFile)
		return func() {
			if err := stopBin(); err != nil {
				t.Error(err)
			}
		}
	}
	addHost("h1")
	stop := start()
	waitKeys("evil-h1")
	addHost("h2") // fired by a later pass; h1 must not fire again
	waitKeys("evil-h1", "evil-h2")
	addHost("h3")
	waitKeys("evil-h1", "evil-h2", "evil-h3")
	stop()
	stop = start()
	addHost("h4") // the restarted process fires h4 only
	waitKeys("evil-h1", "evil-h2", "evil-h3", "evil-h4")
	stop()
}

// errNoStop is background's error for a process that ignored SIGTERM.
var errNoStop = errors.New("did not stop within 20 s of SIGTERM")

// background runs bin with args; stop sends SIGTERM and returns an error
// unless it exits 0 within 20 s (with its output).
func background(t *testing.T, bin string, args ...string) (stop func() error, out *strings.Builder) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	out = &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-done
		}
	})
	return func() error {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("%s after SIGTERM: %v\n%s", args[0], err, out.String())
			}
			return nil
		case <-time.After(20 * time.Second):
			return fmt.Errorf("%s %w\n%s", args[0], errNoStop, out.String())
		}
	}, out
}

// TestServeMetricsListen runs the built pofr-server serve with
// --metrics-listen, scrapes it, and stops it with SIGTERM.
func TestServeMetricsListen(t *testing.T) {
	testutil.RequireTier(t, testutil.TierService)
	scrape := startScraped(t, testutil.Bin(t, "./cmd/pofr-server"), "serve", "--listen", "127.0.0.1:0", "--state-dir", t.TempDir())
	scrape("pofr_receiver_connections_total 0", "pofr_segments_received_total 0", "pofr_receiver_refusals_total 0")
}

// startScraped runs the built pofr-server with args plus --metrics-listen
// and returns a function that scrapes it until every want line is in the
// answer, then stops it with SIGTERM and checks it exits 0.
func startScraped(t *testing.T, bin string, args ...string) func(want ...string) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	stop, out := background(t, bin, append(args, "--metrics-listen", addr)...)
	return func(want ...string) {
		t.Helper()
		c := &http.Client{Timeout: 5 * time.Second}
		var body string
		ok := false
		deadline := time.Now().Add(30 * time.Second)
		for !ok && time.Now().Before(deadline) {
			if resp, err := c.Get("http://" + addr + "/metrics"); err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				body = string(b)
				ok = true
				for _, w := range want {
					ok = ok && strings.Contains(body, w+"\n")
				}
			}
			if !ok {
				time.Sleep(200 * time.Millisecond)
			}
		}
		if !ok {
			t.Errorf("%s: scrape lacks some of %q:\n%s\nlog:\n%s", args[0], want, body, out.String())
		}
		if err := stop(); err != nil && (args[0] != "load" || errors.Is(err, errNoStop)) {
			t.Error(err)
		}
	}
}

// TestLoadWatchAndUIMetrics: load --watch quarantines a corrupt segment
// and its metrics show it, read from the ledger; ui serves the same ledger
// metrics.
func TestLoadWatchAndUIMetrics(t *testing.T) {
	dsnFile := newDSNFile(t)
	state := t.TempDir()
	for _, args := range [][]string{
		{"schema", "apply", "--dsn-file", dsnFile},
		{"registrations", "add", "--state-dir", state, "--host-id", "db-01", "--hostname", "db01.example.org",
			"--ssh-key", keyLine(t, "upload"), "--signing-key", keyLine(t, "signing")},
	} {
		if code, out, errOut := runApp(t, args...); code != 0 {
			t.Fatalf("%s: exit %d %s %s", args[0], code, out, errOut)
		}
	}
	inbox := filepath.Join(state, "inbox", "db-01")
	if err := os.MkdirAll(inbox, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(inbox, fmt.Sprintf("db-01_%020d_%016x.pofr", 1, 1)), []byte("not a segment"), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := testutil.Bin(t, "./cmd/pofr-server")
	scrape := startScraped(t, bin, "load", "--watch", "1s", "--no-progress", "--dsn-file", dsnFile, "--state-dir", state)
	scrape("pofr_ledger_up 1", `pofr_segments_quarantined_total{reason="corrupt"} 1`, `pofr_hosts{status="active"} 1`, "pofr_inbox_segments 0", "pofr_load_lag_seconds 0")
	scrape = startScraped(t, bin, "ui", "--listen", "127.0.0.1:0", "--dsn-file", dsnFile)
	scrape("pofr_ledger_up 1", `pofr_segments_quarantined_total{reason="corrupt"} 1`)
}
