package loader

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/servertest"
	"github.com/pofr/pofr/spool"
)

// TestCommitNonASCIIBootID: a boot_id the ledger's ASCII column cannot
// hold (Error 1366 on the ledger insert) is the segment's fault, not the
// database's: commit must classify it for quarantine, not fail the pass.
func TestCommitNonASCIIBootID(t *testing.T) {
	l, w := newTestLoader(t, Escaped)
	defer w.close()
	procs, _, _ := servertest.BusyRows(servertest.HostileBase(), 3)
	seg := memSegment("h1", 1, "", procs, nil, nil, nil, nil)
	defer seg.release()
	seg.manifest.BootID = "b\xf6\xf6t\xff"
	_, err := w.commit(t.Context(), job{host: "h1", name: "x"}, seg, 1, time.Now())
	if c := classify(err); c != "database" {
		t.Fatalf("commit: got %v (class %q), want class database", err, c)
	}
	var n int
	if err := l.db().QueryRow("SELECT COUNT(*) FROM segments").Scan(&n); err != nil || n != 0 {
		t.Errorf("segments has %d rows (%v), want 0", n, err)
	}
}

// TestDatabaseRefusalQuarantines: whatever the database refuses for one
// segment (here a CHECK constraint an administrator added) quarantines that
// segment with the database's reason; the inbox is not blocked and the next
// segments load.
func TestDatabaseRefusalQuarantines(t *testing.T) {
	db, _ := newDB(t)
	if _, err := db.Exec("ALTER TABLE segments ADD CONSTRAINT no_evil CHECK (collector_version IS NULL OR collector_version <> 'evil-1.0')"); err != nil {
		t.Fatal(err)
	}
	f := servertest.NewFixture(t, "h1", "h2")
	dir := t.TempDir()
	w, err := spool.Open(dir, spool.Options{HostID: "h1", BootID: "boot-h1", Key: f.Keys["h1"], Version: "evil-1.0",
		MaxSegmentAge: time.Hour, MaxSegmentBytes: 32 << 20, Quota: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	f.Writers["h1"], f.Dirs["h1"] = w, dir
	procs, files, socks := servertest.BusyRows(servertest.HostileBase(), 20)
	fill := func(s event.Sink) { event.AppendAll(s, procs, files, socks, nil, nil) }
	f.Seal("h1", fill)
	f.Seal("h2", fill)
	s := run(t, db, f.State, 2)
	if s.Loaded != 1 || s.Quarantined != 1 || s.Failed != 0 {
		t.Fatalf("run: %s, want 1 loaded, 1 quarantined, 0 failed", s)
	}
	if in := f.Files("inbox", "h1"); len(in) != 0 {
		t.Errorf("inbox/h1 still holds %v", in)
	}
	reasons, _ := filepath.Glob(filepath.Join(f.State.String(), "quarantine", "h1", "*.reason"))
	if len(reasons) != 1 {
		t.Fatalf("quarantine/h1 reasons: %v, want 1", reasons)
	}
	b, _ := os.ReadFile(reasons[0])
	if !strings.Contains(string(b), "class: database\n") || !strings.Contains(string(b), "no_evil") {
		t.Errorf("reason %q: want class database and the database's message naming the constraint", b)
	}
	var class string
	if err := db.QueryRow("SELECT class FROM quarantine WHERE host_id = 'h1'").Scan(&class); err != nil || class != "database" {
		t.Errorf("quarantine row: %q (%v), want database", class, err)
	}
}

// TestCommitRefusesRevokedInDatabase: a host revoked in the database after
// the pass read the registry (the purge's first step) is refused inside the
// segment's transaction, leaving nothing behind.
func TestCommitRefusesRevokedInDatabase(t *testing.T) {
	l, w := newTestLoader(t, Escaped)
	defer w.close()
	if _, err := l.db().Exec("INSERT INTO hosts (host_id, status) VALUES ('h1', 'revoked')"); err != nil {
		t.Fatal(err)
	}
	procs, _, _ := servertest.BusyRows(servertest.HostileBase(), 10)
	seg := memSegment("h1", 1, "", procs, nil, nil, nil, nil)
	defer seg.release()
	_, err := w.commit(t.Context(), job{host: "h1", name: "x"}, seg, 1, time.Now())
	if classify(err) != "revoked_host" {
		t.Fatalf("commit: got %v, want a revoked_host error", err)
	}
	var n int
	if err := l.db().QueryRow("SELECT COUNT(*) FROM segments").Scan(&n); err != nil || n != 0 {
		t.Errorf("segments rows: %d (%v), want 0", n, err)
	}
}
