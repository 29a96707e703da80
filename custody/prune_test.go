package custody_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pofr/pofr/custody"
	"github.com/pofr/pofr/internal/servertest"
	"github.com/pofr/pofr/internal/testutil"
)

// TestPruneFiles: archived segments go by the ledger's ts_to (not their
// mtime), files without a ledger row and quarantined files by mtime; the
// ledger records the removal, and the audit then counts the file expired.
func TestPruneFiles(t *testing.T) {
	db, _, f := loadedHosts(t, 3, 20, "h1")
	d := f.State.Host("h1")
	names := f.Files("archive", "h1")
	now := time.Now()
	old := now.AddDate(0, 0, -200)
	// seq 1's events are 200 days old; seq 2's file looks old but its
	// events are not; seq 3 is new in every way.
	if _, err := db.Exec("UPDATE segments SET ts_from = ?, ts_to = ? WHERE host_id = 'h1' AND seq = 1", old.UTC(), old.UTC()); err != nil {
		t.Fatal(err)
	}
	touch := func(p string, at time.Time) {
		t.Helper()
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil && !os.IsExist(err) {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(filepath.Join(d.Archive, names[1]), old, old); err != nil {
		t.Fatal(err)
	}
	touch(filepath.Join(d.Archive, "h1_00000000000000000090_00000000000000aa.pofr"), old) // no ledger row, old
	touch(filepath.Join(d.Archive, "h1_00000000000000000091_00000000000000bb.pofr"), now) // no ledger row, new
	// Quarantine: an old refusal (its .reason old, the file's own mtime
	// new), a new one, and an old orphan .reason.
	touch(filepath.Join(d.Quarantine, "q1.pofr"), now)
	touch(filepath.Join(d.Quarantine, "q1.pofr.reason"), old)
	touch(filepath.Join(d.Quarantine, "q2.pofr"), old)
	touch(filepath.Join(d.Quarantine, "q2.pofr.reason"), now)
	touch(filepath.Join(d.Quarantine, "q3.pofr.reason"), old)

	listing := func() []string {
		var out []string
		for _, dir := range []string{d.Archive, d.Quarantine} {
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				out = append(out, filepath.Base(filepath.Dir(dir))+"/"+e.Name())
			}
		}
		slices.Sort(out)
		return out
	}
	before := listing()
	opt := custody.PruneOptions{StateDir: f.State, Before: now.AddDate(0, 0, -90), DryRun: true}
	sum, err := custody.PruneFiles(t.Context(), db, opt)
	if err != nil {
		t.Fatal(err)
	}
	want := custody.PruneSummary{ArchiveFiles: 2, QuarantineFiles: 2}
	got := sum
	got.ArchiveBytes, got.QuarantineBytes = 0, 0
	if got != want {
		t.Errorf("dry run: %+v, want %+v", sum, want)
	}
	if diff := cmp.Diff(before, listing()); diff != "" {
		t.Fatalf("dry run changed files (-before +after):\n%s", diff)
	}

	opt.DryRun = false
	if sum, err = custody.PruneFiles(t.Context(), db, opt); err != nil {
		t.Fatal(err)
	}
	got = sum
	got.ArchiveBytes, got.QuarantineBytes = 0, 0
	if got != want {
		t.Errorf("prune: %+v, want %+v", sum, want)
	}
	wantFiles := []string{
		"archive/" + names[1], "archive/" + names[2], "archive/h1_00000000000000000091_00000000000000bb.pofr",
		"quarantine/q2.pofr", "quarantine/q2.pofr.reason",
	}
	slices.Sort(wantFiles)
	if diff := cmp.Diff(wantFiles, listing()); diff != "" {
		t.Errorf("files after prune (-want +got):\n%s", diff)
	}
	var removed []int
	testutil.EachRow(t, db, func(row testutil.Row) {
		var s int
		row.Scan(&s)
		removed = append(removed, s)
	}, "SELECT seq FROM segments WHERE host_id = 'h1' AND archive_removed_at IS NOT NULL ORDER BY seq")
	if diff := cmp.Diff([]int{1}, removed); diff != "" {
		t.Errorf("ledger rows marked removed (-want +got):\n%s", diff)
	}
	// The audit counts seq 1 expired; the new extra file is a problem of
	// its own (not in the ledger), nothing else is.
	r := servertest.Audit(t, db, custody.AuditOptions{Host: "h1", StateDir: f.State, Archive: true})
	if a := r.Hosts[0].Archive; a == nil || a.Expired != 1 || a.OK != 2 {
		t.Errorf("audit after prune: archive %+v, want 2 ok and 1 expired", a)
	}
	if diff := cmp.Diff([]string{"h1 archive_extra 91-91 problem"}, servertest.FindingKeys(r)); diff != "" {
		t.Errorf("audit after prune (-want +got):\n%s", diff)
	}

	if d, err := custody.ParseArchiveKeep("", 90*24*time.Hour); err != nil || d != 90*24*time.Hour {
		t.Errorf(`custody.ParseArchiveKeep(""): %v, %v; want the --keep period`, d, err)
	}
	if d, err := custody.ParseArchiveKeep("0", time.Hour); err != nil || d != 0 {
		t.Errorf(`custody.ParseArchiveKeep("0"): %v, %v; want 0 (forever)`, d, err)
	}
	if d, err := custody.ParseArchiveKeep("2w", time.Hour); err != nil || d != 14*24*time.Hour {
		t.Errorf(`custody.ParseArchiveKeep("2w"): %v, %v; want 336h`, d, err)
	}
	if _, err := custody.ParseArchiveKeep("5m", time.Hour); err == nil {
		t.Error(`custody.ParseArchiveKeep("5m"): no error, want one (under a day)`)
	}
}
