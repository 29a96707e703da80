package main

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pofr/pofr/internal/testutil"
)

// TestServeMetricsListen runs the built pofr-server serve with
// --metrics-listen, scrapes it, and stops it with SIGTERM.
func TestServeMetricsListen(t *testing.T) {
	testutil.RequireTier(t, testutil.TierService)
	bin := testutil.Bin(t, "./cmd/pofr-server")
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--state-dir", t.TempDir(), "--metrics-listen", addr)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-done
		}
	}()
	var body string
	c := &http.Client{Timeout: 5 * time.Second}
	testutil.WaitFor(t, 20*time.Second, "GET /metrics of pofr-server serve", func() bool {
		resp, err := c.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == http.StatusOK
	})
	for _, want := range []string{"pofr_receiver_connections_total 0", "pofr_segments_received_total 0", "pofr_receiver_refusals_total 0"} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("scrape lacks %q:\n%s", want, body)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve after SIGTERM: %v\n%s", err, out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("serve did not stop within 20 s of SIGTERM\n%s", out.String())
	}
}
