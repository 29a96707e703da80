package custody_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pofr/pofr/custody"
	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/internal/testutil"
)

// TestServerCustodyCommands runs the pofr-server binary's verify,
// retention and deregister commands against a loaded database: their exit
// codes, output and effect.
func TestServerCustodyCommands(t *testing.T) {
	db, dsn, f := loadedHosts(t, 3, 30, "h1", "h2")
	bin := testutil.Bin(t, "./cmd/pofr-server")
	dsnFile := filepath.Join(t.TempDir(), "admin.dsn")
	if err := os.WriteFile(dsnFile, []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pofr := func(args ...string) (string, int) {
		t.Helper()
		ctx := testutil.Deadline(t, 2*time.Minute)
		cmd := exec.CommandContext(ctx, bin, args...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return out.String(), 0
		case errors.As(err, &ee):
			t.Logf("pofr-server %s: exit %d; stderr:\n%s", strings.Join(args, " "), ee.ExitCode(), errb.String())
			return out.String(), ee.ExitCode()
		}
		t.Fatalf("pofr-server %v: %v", args, err)
		return "", -1
	}

	out, code := pofr("verify", "--dsn-file", dsnFile, "--state-dir", f.State.String(), "--archive")
	if code != 0 || !strings.Contains(out, "2 hosts audited: no findings") {
		t.Fatalf("verify of a clean state: exit %d, output:\n%s", code, out)
	}

	// Damage one archived file of h1: verify exits 3 and names it.
	arch := f.State.Host("h1").Archive
	name := f.Files("archive", "h1")[1]
	b, err := os.ReadFile(filepath.Join(arch, name))
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/3] ^= 4
	if err := os.WriteFile(filepath.Join(arch, name), b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, code = pofr("verify", "--dsn-file", dsnFile, "--state-dir", f.State.String(), "--archive")
	if code != 3 || !strings.Contains(out, "archive_bad") || !strings.Contains(out, "2 hosts audited: 1 problems") {
		t.Errorf("verify of a damaged archive: exit %d (want 3), output:\n%s", code, out)
	}
	t.Logf("verify --archive:\n%s", out)
	out, code = pofr("verify", "--dsn-file", dsnFile, "--state-dir", f.State.String(), "--archive", "--json", "--host", "h1")
	var rep custody.AuditReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("verify --json: %v; output:\n%s", err, out)
	}
	if code != 3 || len(rep.Hosts) != 1 || len(rep.Hosts[0].Findings) != 1 || rep.Hosts[0].Findings[0].Kind != custody.FindArchiveBad || rep.Hosts[0].Findings[0].File != name {
		t.Errorf("verify of a damaged archive: exit %d (want 3), report %+v", code, rep.Hosts)
	}

	// Retention: h2's seq 1 holds 200-day-old events; --archive-keep 0 keeps
	// its file, --archive-keep 30d deletes it and marks the ledger.
	old := time.Now().AddDate(0, 0, -200).UTC()
	if _, err := db.Exec("UPDATE segments SET ts_from = ?, ts_to = ? WHERE host_id = 'h2' AND seq = 1", old, old); err != nil {
		t.Fatal(err)
	}
	if _, code := pofr("retention", "--dsn-file", dsnFile, "--state-dir", f.State.String(), "--keep", "90d", "--archive-keep", "0"); code != 0 {
		t.Fatalf("retention --archive-keep 0: exit %d", code)
	}
	if n := len(f.Files("archive", "h2")); n != 3 {
		t.Errorf("archive of h2 after --archive-keep 0: %d files, want 3", n)
	}
	if _, code := pofr("retention", "--dsn-file", dsnFile, "--state-dir", f.State.String(), "--keep", "90d", "--archive-keep", "30d"); code != 0 {
		t.Fatalf("retention --archive-keep 30d: exit %d", code)
	}
	if n := len(f.Files("archive", "h2")); n != 2 {
		t.Errorf("archive of h2 after --archive-keep 30d: %d files, want 2", n)
	}
	if out, code := pofr("verify", "--dsn-file", dsnFile, "--state-dir", f.State.String(), "--archive", "--host", "h2"); code != 0 {
		t.Errorf("verify after retention: exit %d, want 0 (the file was retired, not lost); output:\n%s", code, out)
	}
	if _, code := pofr("retention", "--dsn-file", dsnFile, "--keep", "90d", "--archive-keep", "5m"); code != 2 {
		t.Errorf("retention --archive-keep 5m: exit %d, want 2 (usage)", code)
	}

	// deregister: --purge-rows without a DSN is a usage error and revokes
	// nothing; with it, h1's rows go and h2's stay.
	if _, code := pofr("deregister", "--state-dir", f.State.String(), "--purge-rows", "h1"); code != 2 {
		t.Errorf("deregister --purge-rows without --dsn-file: exit %d, want 2", code)
	}
	if h, err := registry.Load(f.State, "h1"); err != nil || h.Status != registry.StatusActive {
		t.Fatalf("h1 after a refused deregister: %+v, %v; want still active", h, err)
	}
	out, code = pofr("deregister", "--state-dir", f.State.String(), "--purge-rows", "--dsn-file", dsnFile, "--batch", "13", "h1")
	if code != 0 || !strings.Contains(out, "revoked h1") || !strings.Contains(out, "segments 3") {
		t.Errorf("deregister --purge-rows: exit %d, output:\n%s", code, out)
	}
	for host, want := range map[string]int{"h1": 0, "h2": 3} {
		if n := hostRows(t, db, host)["segments"]; n != int64(want) {
			t.Errorf("%s ledger rows after deregistering h1: %d, want %d", host, n, want)
		}
	}
	if h, err := registry.Load(f.State, "h1"); err != nil || h.Status != registry.StatusRevoked {
		t.Errorf("h1 after deregister: %+v, %v; want revoked", h, err)
	}
}
