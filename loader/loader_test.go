package loader

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/servertest"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/internal/testutil"
	"github.com/pofr/pofr/spool"
)

func run(t testing.TB, db *sql.DB, state statedir.Dir, workers int) Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Once(ctx, Options{DB: db, StateDir: state, Workers: workers})
	if err != nil {
		t.Fatalf("run: %v (summary %s)", err, s)
	}
	return s
}

// TestLoadHostileFromSpool: segments written by the real spool writer, with
// hostile values, verified and loaded from the inbox: every value read back
// from SQL equals what the segment holds.
func TestLoadHostileFromSpool(t *testing.T) {
	db, _ := newDB(t)
	f := servertest.NewFixture(t, "h1")
	procs, files, socks, gaps, accts := servertest.HostileRows(servertest.HostileBase())
	paths := f.Seal("h1", func(s event.Sink) { event.AppendAll(s, procs, files, socks, gaps, accts) })
	if len(paths) == 0 {
		t.Fatal("no segment sealed")
	}
	// What the segments hold, decoded by the spool reader.
	var want struct {
		procs []event.Proc
		files []event.File
		socks []event.Sock
		gaps  []event.Gap
		accts []event.Account
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		seg, err := spool.VerifyBytes(b, spool.VerifyOptions{PublicKey: f.Keys["h1"].Public().(ed25519.PublicKey)})
		if err != nil {
			t.Fatal(err)
		}
		ps, _ := seg.Procs()
		fs, _ := seg.Files()
		ss, _ := seg.Socks()
		gs, _ := seg.Gaps()
		as, _ := seg.Accounts()
		want.procs, want.files, want.socks = append(want.procs, ps...), append(want.files, fs...), append(want.socks, ss...)
		want.gaps, want.accts = append(want.gaps, gs...), append(want.accts, as...)
		seg.Release()
	}
	// The writer kept our hostile rows (it may add its own gap rows).
	if diff := cmp.Diff(procs, want.procs); diff != "" {
		t.Fatalf("spool changed proc rows (-appended +segment):\n%s", diff)
	}

	s := run(t, db, f.State, 2)
	if s.Loaded != len(paths) || s.Quarantined != 0 || s.Failed != 0 {
		t.Fatalf("summary %s, want %d loaded", s, len(paths))
	}
	for i := range want.files {
		want.files[i].LastTS = usTrunc(want.files[i].LastTS)
	}
	for i := range want.socks {
		if want.socks[i].FirstTS.Valid {
			want.socks[i].FirstTS.V = usTrunc(want.socks[i].FirstTS.V)
		}
	}
	for i := range want.gaps {
		want.gaps[i].FromTS, want.gaps[i].ToTS = usTrunc(want.gaps[i].FromTS), usTrunc(want.gaps[i].ToTS)
	}
	for i := range want.accts {
		want.accts[i].TS = usTrunc(want.accts[i].TS)
	}
	if diff := cmp.Diff(want.procs, readProcs(t, db, "")); diff != "" {
		t.Errorf("proc_events (-segment +sql):\n%s", diff)
	}
	if diff := cmp.Diff(want.files, readFiles(t, db, "")); diff != "" {
		t.Errorf("file_events (-segment +sql):\n%s", diff)
	}
	if diff := cmp.Diff(want.socks, readSocks(t, db, "")); diff != "" {
		t.Errorf("sock_events (-segment +sql):\n%s", diff)
	}
	if diff := cmp.Diff(want.gaps, readGaps(t, db, "")); diff != "" {
		t.Errorf("gaps (-segment +sql):\n%s", diff)
	}
	if diff := cmp.Diff(want.accts, readAccounts(t, db, "")); diff != "" {
		t.Errorf("accounts (-segment +sql):\n%s", diff)
	}
	if got := f.Files("inbox", "h1"); len(got) != 0 {
		t.Errorf("inbox still holds %v", got)
	}
	if got := f.Files("archive", "h1"); len(got) != len(paths) {
		t.Errorf("archive holds %v, want %d segments", got, len(paths))
	}
	var hosts int
	if err := db.QueryRow("SELECT COUNT(*) FROM hosts WHERE host_id = 'h1' AND hostname = 'h1.example' AND signing_key IS NOT NULL").Scan(&hosts); err != nil || hosts != 1 {
		t.Errorf("hosts row for h1: %d (%v)", hosts, err)
	}
}

// sealMany seals segs segments of rows each for host.
func sealMany(f *servertest.Fixture, host string, segs, rows int) {
	base := servertest.HostileBase()
	for k := range segs {
		procs, files, socks := servertest.BusyRows(base+int64(k)*int64(rows)*1000, rows)
		f.Seal(host, func(s event.Sink) { event.AppendAll(s, procs, files, socks, nil, nil) })
	}
}

// checkExactlyOnce compares the database with the archived manifests: same
// row counts per table, one ledger row per archived file, no row twice.
func checkExactlyOnce(t testing.TB, db *sql.DB, f *servertest.Fixture, hosts ...string) {
	t.Helper()
	want := map[string]int64{}
	nfiles := 0
	for _, h := range hosts {
		for k, v := range f.ArchivedRows(h) {
			want[k] += v
		}
		nfiles += len(f.Files("archive", h))
	}
	got := map[string]int64{}
	for _, ti := range tableInfos {
		var n int64
		if err := db.QueryRow("SELECT COUNT(*) FROM " + ti.sqlName).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			got[ti.table] = n
		}
		var dup int64
		if err := db.QueryRow("SELECT COUNT(*) FROM (SELECT segment_id, row_no FROM " + ti.sqlName + " GROUP BY segment_id, row_no HAVING COUNT(*) > 1) d").Scan(&dup); err != nil || dup != 0 {
			t.Errorf("%s: %d duplicated rows (%v)", ti.sqlName, dup, err)
		}
	}
	for k, v := range want {
		if v == 0 {
			delete(want, k)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rows per table (-manifests +database):\n%s", diff)
	}
	var ledger int
	if err := db.QueryRow("SELECT COUNT(*) FROM segments").Scan(&ledger); err != nil || ledger != nfiles {
		t.Errorf("ledger has %d rows (%v), archive %d files", ledger, err, nfiles)
	}
	checkConsistent(t, db)
}

// checkConsistent checks that every ledger row has exactly its rows and no
// row is loaded twice.
func checkConsistent(t testing.TB, db *sql.DB) {
	t.Helper()
	for _, ti := range tableInfos {
		var dup int64
		if err := db.QueryRow("SELECT COUNT(*) FROM (SELECT segment_id, row_no FROM " + ti.sqlName + " GROUP BY segment_id, row_no HAVING COUNT(*) > 1) d").Scan(&dup); err != nil || dup != 0 {
			t.Errorf("%s: %d duplicated rows (%v)", ti.sqlName, dup, err)
		}
		var orphans int64
		if err := db.QueryRow("SELECT COUNT(*) FROM " + ti.sqlName + " e LEFT JOIN segments s USING (segment_id) WHERE s.segment_id IS NULL").Scan(&orphans); err != nil || orphans != 0 {
			t.Errorf("%s: %d rows without a ledger row (%v)", ti.sqlName, orphans, err)
		}
	}
	var partial int
	if err := db.QueryRow(`SELECT COUNT(*) FROM segments s WHERE rows_proc <> (SELECT COUNT(*) FROM proc_events p WHERE p.segment_id = s.segment_id)
		OR rows_file <> (SELECT COUNT(*) FROM file_events p WHERE p.segment_id = s.segment_id)
		OR rows_sock <> (SELECT COUNT(*) FROM sock_events p WHERE p.segment_id = s.segment_id)`).Scan(&partial); err != nil || partial != 0 {
		t.Errorf("%d partial segments (%v)", partial, err)
	}
}

// TestLoadTwice: a second run finds nothing; segments put back into the
// inbox (a re-upload) are skipped and archived, never loaded again.
func TestLoadTwice(t *testing.T) {
	db, _ := newDB(t)
	f := servertest.NewFixture(t, "h1", "h2")
	sealMany(f, "h1", 4, 500)
	sealMany(f, "h2", 2, 300)
	s := run(t, db, f.State, 2)
	if s.Loaded != 6 || s.ChainBreaks != 0 {
		t.Fatalf("first run: %s", s)
	}
	checkExactlyOnce(t, db, f, "h1", "h2")
	var chained int
	if err := db.QueryRow("SELECT COUNT(*) FROM segments WHERE chain_ok = 1").Scan(&chained); err != nil || chained != 6 {
		t.Errorf("chain_ok = 1 on %d ledger rows (%v), want 6", chained, err)
	}
	if s := run(t, db, f.State, 2); s.Segments != 0 {
		t.Fatalf("second run: %s", s)
	}
	for _, n := range f.Files("archive", "h1") {
		servertest.CopyFile(filepath.Join(f.State.String(), "archive", "h1", n), filepath.Join(f.State.String(), "inbox", "h1", n))
	}
	s = run(t, db, f.State, 2)
	if s.Skipped != 4 || s.Loaded != 0 || s.Quarantined != 0 {
		t.Fatalf("re-upload run: %s, want 4 skipped", s)
	}
	checkExactlyOnce(t, db, f, "h1", "h2")
}

// TestTwoLoadersConcurrently: two loaders with their own state directories
// holding the same segments load into one database at once: every segment
// once.
func TestTwoLoadersConcurrently(t *testing.T) {
	db, _ := newDB(t)
	f := servertest.NewFixture(t, "h1")
	sealMany(f, "h1", 8, 400)
	// A second state directory with the same registry and inbox.
	state2 := t.TempDir()
	if err := os.CopyFS(state2, os.DirFS(f.State.String())); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	sums := make([]Summary, 2)
	for i, st := range []statedir.Dir{f.State, statedir.Dir(state2)} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sums[i] = run(t, db, st, 2)
		}()
	}
	wg.Wait()
	if got := sums[0].Loaded + sums[1].Loaded; got != 8 {
		t.Errorf("loaded %d + %d segments, want 8 in all", sums[0].Loaded, sums[1].Loaded)
	}
	if got := sums[0].Skipped + sums[1].Skipped; got != 8 {
		t.Errorf("skipped %d + %d segments, want 8 in all (%s; %s)", sums[0].Skipped, sums[1].Skipped, sums[0], sums[1])
		rows, err := db.Query("SELECT class, reason FROM quarantine")
		if err == nil {
			for rows.Next() {
				var c, r string
				rows.Scan(&c, &r)
				t.Errorf("quarantined: %s: %s", c, r)
			}
			rows.Close()
		}
	}
	checkExactlyOnce(t, db, f, "h1")
}

// TestLockHeld: a second Run on a locked state directory returns ErrLocked.
func TestLockHeld(t *testing.T) {
	db, _ := newDB(t)
	f := servertest.NewFixture(t, "h1")
	fl, err := lockFile(filepath.Join(f.State.String(), "load.lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer fl.release()
	l, err := New(Options{DB: db, StateDir: f.State})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Run(t.Context()); !errors.Is(err, ErrLocked) {
		t.Fatalf("Run with the lock held: %v, want ErrLocked", err)
	}
}

// TestLoadInboxLinkedElsewhere: an inbox that is a symbolic link to a
// directory on another file system (the chroot inbox of a stock OpenSSH
// account) is loaded like any other, and its files end in the archive
// (copied across, then removed from the inbox).
func TestLoadInboxLinkedElsewhere(t *testing.T) {
	testutil.RequireRoot(t)
	db, _ := newDB(t)
	f := servertest.NewFixture(t, "h1")
	other := t.TempDir()
	if err := unix.Mount("tmpfs", other, "tmpfs", 0, "size=64m,mode=0700"); err != nil {
		t.Fatalf("mount a tmpfs for the linked inbox: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(other, unix.MNT_DETACH) })
	inbox := f.State.Host("h1").Inbox
	linked := filepath.Join(other, "inbox")
	if err := os.Mkdir(linked, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(inbox); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(linked, inbox); err != nil {
		t.Fatal(err)
	}
	sealMany(f, "h1", 3, 200)
	if n, _ := os.ReadDir(linked); len(n) != 3 {
		t.Fatalf("%d files in the linked inbox, want 3", len(n))
	}
	s := run(t, db, f.State, 1)
	if s.Loaded != 3 || s.Quarantined != 0 || s.Failed != 0 {
		t.Fatalf("run: %s, want 3 loaded", s)
	}
	checkExactlyOnce(t, db, f, "h1")
	if left, _ := os.ReadDir(linked); len(left) != 0 {
		t.Errorf("linked inbox after the load: %v, want empty", left)
	}
	if got := f.Files("archive", "h1"); len(got) != 3 {
		t.Errorf("archive: %v, want 3 segments", got)
	}
	if fi, err := os.Lstat(inbox); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the inbox link was replaced: %v %v", fi, err)
	}
}
