package custody_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pofr/pofr/custody"
	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/servertest"
)

// TestAudit builds ledgers with every kind of custody finding and checks
// that the audit reports each, settles what it can, and passes a clean one.
//
//	h1: seq 1..6 sealed; 3 withheld (a hole, then pending once it is back
//	    in the inbox), 2's chain_ok reset to NULL (settled), 5's prev_digest
//	    edited in the ledger (a chain break the ledger did not record).
//	h2: seq 1, 2 never arrive; seq 3 carries the spool's eviction gap row
//	    for them (evicted, not a problem).
//	h3: clean.
func TestAudit(t *testing.T) {
	db, _ := newDB(t)
	f := servertest.NewFixture(t, "h1", "h2", "h3")
	var h1 []string
	for range 6 {
		h1 = append(h1, f.Seal("h1", servertest.BusyFill(20))...)
	}
	aside := filepath.Join(t.TempDir(), filepath.Base(h1[2]))
	if err := os.Rename(h1[2], aside); err != nil {
		t.Fatal(err)
	}
	h2a := f.Seal("h2", servertest.BusyFill(5))
	h2b := f.Seal("h2", servertest.BusyFill(5))
	for _, p := range append(h2a, h2b...) {
		os.Remove(p)
	}
	f.Seal("h2", func(s event.Sink) {
		servertest.BusyFill(5)(s)
		s.AppendGap(&event.Gap{FromTS: servertest.HostileBase(), ToTS: servertest.HostileBase() + 1e9, Source: event.SourceSpool, Lost: event.Some[int64](10),
			Reason: "quota eviction of segments 1-2 (4096 bytes)"})
	})
	f.Seal("h3", servertest.BusyFill(5))
	f.Seal("h3", servertest.BusyFill(5))
	if s := run(t, db, f.State, 2); s.Loaded != 8 {
		t.Fatalf("run: %s, want 8 loaded", s)
	}
	if _, err := db.Exec("UPDATE segments SET chain_ok = NULL WHERE host_id = 'h1' AND seq = 2"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("UPDATE segments SET prev_digest = UNHEX(REPEAT('ab', 32)) WHERE host_id = 'h1' AND seq = 5"); err != nil {
		t.Fatal(err)
	}

	r := servertest.Audit(t, db, custody.AuditOptions{StateDir: f.State})
	want := []string{
		"h1 settled 2-2",
		"h1 hole 3-3 problem",
		"h1 unverifiable 4-4",
		"h1 chain_break 5-5 problem",
		"h1 chain_mismatch 5-5 problem",
		"h2 evicted 1-2",
		"h2 unverifiable 3-3",
	}
	if diff := cmp.Diff(want, servertest.FindingKeys(r)); diff != "" {
		t.Errorf("first audit (-want +got):\n%s", diff)
	}
	if got := r.Problems(); got != 3 {
		t.Errorf("problems: got %d, want 3", got)
	}
	h := r.Hosts[0]
	if h.Host != "h1" || h.Segments != 5 || h.FirstSeq != 1 || h.LastSeq != 6 || h.Holes != 1 || h.ChainBreaks != 1 || h.Settled != 1 || h.Unverified != 1 {
		t.Errorf("h1 summary: %+v", *h)
	}
	var ok int
	if err := db.QueryRow("SELECT chain_ok FROM segments WHERE host_id = 'h1' AND seq = 2").Scan(&ok); err != nil || ok != 1 {
		t.Errorf("chain_ok of h1 seq 2 after the audit: %d (%v), want 1 (settled)", ok, err)
	}

	// seq 3 is back in the inbox: pending, not a hole; seq 2 is settled.
	if err := os.Rename(aside, h1[2]); err != nil {
		t.Fatal(err)
	}
	r = servertest.Audit(t, db, custody.AuditOptions{Host: "h1", StateDir: f.State, NoSettle: true})
	want = []string{"h1 pending 3-3", "h1 unverifiable 4-4", "h1 chain_break 5-5 problem", "h1 chain_mismatch 5-5 problem"}
	if diff := cmp.Diff(want, servertest.FindingKeys(r)); diff != "" {
		t.Errorf("audit with seq 3 pending (-want +got):\n%s", diff)
	}
	if r.Hosts[0].Pending != 1 {
		t.Errorf("pending: got %d, want 1", r.Hosts[0].Pending)
	}

	// h3 is clean, and so is its archive.
	r = servertest.Audit(t, db, custody.AuditOptions{Host: "h3", StateDir: f.State, Archive: true})
	if diff := cmp.Diff([]string(nil), servertest.FindingKeys(r)); diff != "" || r.Problems() != 0 {
		t.Errorf("clean host: findings %v", servertest.FindingKeys(r))
	}
	if a := r.Hosts[0].Archive; a == nil || a.OK != 2 || a.Bad != 0 {
		t.Errorf("clean host archive: %+v, want 2 ok", a)
	}
}

// TestAuditArchive damages h1's archive in every way the audit must see.
func TestAuditArchive(t *testing.T) {
	db, _, f := loadedHosts(t, 6, 30, "h1")
	arch := f.State.Host("h1").Archive
	names := f.Files("archive", "h1")
	if len(names) != 6 {
		t.Fatalf("archive: %v", names)
	}
	p := func(i int) string { return filepath.Join(arch, names[i]) }
	// seq 1: a bit flipped.
	b, err := os.ReadFile(p(0))
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(p(0), b, 0o600); err != nil {
		t.Fatal(err)
	}
	// seq 2: replaced by seq 3's (valid) file.
	if err := servertest.CopyFile(p(2), p(1)); err != nil {
		t.Fatal(err)
	}
	// seq 4: gone. seq 5: gone, but retention removed it.
	os.Remove(p(3))
	os.Remove(p(4))
	if _, err := db.Exec("UPDATE segments SET archive_removed_at = UTC_TIMESTAMP(6) WHERE host_id = 'h1' AND seq = 5"); err != nil {
		t.Fatal(err)
	}
	// An extra file the ledger does not know, and seq 6 back in the inbox
	// as if the archive move had not happened.
	if err := servertest.CopyFile(p(2), filepath.Join(arch, "h1_00000000000000000099_0123456789abcdef.pofr")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p(5), filepath.Join(f.State.Host("h1").Inbox, names[5])); err != nil {
		t.Fatal(err)
	}

	r := servertest.Audit(t, db, custody.AuditOptions{StateDir: f.State, Archive: true})
	want := []string{
		"h1 archive_bad 1-1 problem",
		"h1 archive_digest 2-2 problem",
		"h1 archive_missing 4-4 problem",
		"h1 unarchived 6-6",
		"h1 archive_extra 99-99 problem",
	}
	if diff := cmp.Diff(want, servertest.FindingKeys(r)); diff != "" {
		t.Errorf("archive audit (-want +got):\n%s", diff)
	}
	if a := r.Hosts[0].Archive; a == nil || *a != (custody.Archived{OK: 1, Expired: 1, Bad: 4}) {
		t.Errorf("archive counts: %+v, want ok 1, expired 1, bad 4", a)
	}
}
