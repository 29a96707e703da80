package loader

import (
	"testing"
	"time"

	"github.com/pofr/pofr/internal/servertest"
)

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
