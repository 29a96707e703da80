package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pofr/pofr/internal/testutil"
)

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
