package loader

import (
	"context"
	"database/sql"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/google/go-cmp/cmp"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/servertest"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/internal/testutil"
	"github.com/pofr/pofr/schema"
)

// TestSchemaApply: applying twice applies nothing the second time, but
// defines the views again (views.sql: a dropped or stale view is back as a
// fresh database has it); a database newer than the binary is refused, by
// Apply and by the loader.
func TestSchemaApply(t *testing.T) {
	db, _ := newDB(t)
	ctx := t.Context()
	views := func() map[string]string {
		out := map[string]string{}
		testutil.EachRow(t, db, func(row testutil.Row) {
			var name, def string
			row.Scan(&name, &def)
			out[name] = def
		}, "SELECT TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE()")
		return out
	}
	fresh := views()
	if len(fresh) != 6 {
		t.Fatalf("fresh database has views %v, want 6", slices.Sorted(maps.Keys(fresh)))
	}
	for _, st := range []string{"DROP VIEW timeline", "CREATE OR REPLACE VIEW processes AS SELECT 1 AS stale"} {
		if _, err := db.ExecContext(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	applied, err := schema.Apply(ctx, db)
	if err != nil || len(applied) != 0 {
		t.Fatalf("second apply: %v, %v; want nothing applied", applied, err)
	}
	if diff := cmp.Diff(fresh, views()); diff != "" {
		t.Errorf("views after the second apply (-fresh +got):\n%s", diff)
	}
	if v, err := schema.Version(ctx, db); err != nil || v != schema.Latest() {
		t.Fatalf("version %d (%v), want %d", v, err, schema.Latest())
	}
	if _, err := db.Exec("INSERT INTO schema_version (version, name) VALUES (?, 'future.sql')", schema.Latest()+1); err != nil {
		t.Fatal(err)
	}
	if _, err := schema.Apply(ctx, db); !errors.Is(err, schema.ErrNewer) {
		t.Fatalf("apply on a newer database: %v, want ErrNewer", err)
	}
	l, err := New(Options{DB: db, StateDir: statedir.Dir(t.TempDir())})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Run(ctx); !errors.Is(err, schema.ErrNewer) {
		t.Fatalf("loader on a newer database: %v, want ErrNewer", err)
	}
}

// TestEveryColumnCommented: every column of every table has a COMMENT
// (docs/schema.md is generated from them), and every Arrow column has its
// SQL column of the same name.
func TestEveryColumnCommented(t *testing.T) {
	db, _ := newDB(t)
	testutil.EachRow(t, db, func(row testutil.Row) {
		var tb, col string
		row.Scan(&tb, &col)
		t.Errorf("%s.%s has no COMMENT", tb, col)
	}, `SELECT c.TABLE_NAME, c.COLUMN_NAME FROM information_schema.COLUMNS c
		JOIN information_schema.TABLES t USING (TABLE_SCHEMA, TABLE_NAME)
		WHERE c.TABLE_SCHEMA = DATABASE() AND t.TABLE_TYPE = 'BASE TABLE' AND c.COLUMN_COMMENT = ''`)
	for _, ti := range tableInfos {
		for _, f := range event.SchemaOf(ti.table).Fields() {
			var n int
			if err := db.QueryRow("SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ?",
				ti.sqlName, f.Name).Scan(&n); err != nil || n != 1 {
				t.Errorf("Arrow column %s.%s has no SQL column in %s", ti.table, f.Name, ti.sqlName)
			}
		}
	}
}

// TestUsersLeastPrivilege: the loader account can load but not create,
// drop or read files; the reader can only read.
func TestUsersLeastPrivilege(t *testing.T) {
	m := testutil.StartMariaDB(t)
	db, _ := newDB(t)
	var dbname string
	if err := db.QueryRow("SELECT DATABASE()").Scan(&dbname); err != nil {
		t.Fatal(err)
	}
	suffix := strings.ToLower(strings.TrimPrefix(dbname, "t"))[:4]
	u := schema.Users{Host: "localhost", Loader: "ld" + suffix, LoaderPassword: "l'o\"a\\der pw", Reader: "rd" + suffix, ReaderPassword: "reader-pw"}
	ctx := t.Context()
	if err := schema.CreateUsers(ctx, db, dbname, u); err != nil {
		t.Fatal(err)
	}
	if err := schema.CreateUsers(ctx, db, dbname, u); err != nil { // idempotent
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Exec("DROP USER IF EXISTS '" + u.Loader + "'@'localhost', '" + u.Reader + "'@'localhost'")
	})
	open := func(user, pw string) *sql.DB {
		cfg := mysql.NewConfig()
		cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName, cfg.ParseTime = user, pw, "unix", m.Socket(), dbname, true
		d, err := OpenDB(cfg.FormatDSN())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	ldb := open(u.Loader, u.LoaderPassword)

	// The loader account loads (hostile rows through the whole path).
	f := servertest.NewFixture(t, "h1")
	procs, files, socks, gaps, accts := servertest.HostileRows(servertest.HostileBase())
	f.Seal("h1", func(s event.Sink) {
		event.AppendAll(s, procs, files, socks, gaps, accts)
		// An executables row too: its merge into exe_ids is an upsert,
		// which needs the loader's UPDATE grant on exe_ids.
		es, ok := s.(event.ExeSink)
		if !ok {
			t.Fatalf("sink %T takes no executables rows", s)
		}
		es.AppendExecutable(&event.Executable{TS: procs[0].TS, LastTS: procs[0].TS, Count: 1, PID: 1, Dev: 1, Inode: 2,
			Size: 3, SHA256: make([]byte, 32), How: event.ExeByHandle, Path: []byte("/bin/x")})
	})
	if s := run(t, ldb, f.State, 2); s.Loaded != 1 {
		t.Fatalf("load as %s: %s", u.Loader, s)
	}
	var ids int
	if err := ldb.QueryRowContext(ctx, "SELECT COUNT(*) FROM exe_ids").Scan(&ids); err != nil || ids != 1 {
		t.Errorf("exe_ids after the load: %d rows (%v), want 1", ids, err)
	}
	// Nor can it rewrite or remove evidence: loaded rows, ledger digests and
	// counts, the migrations.
	for _, st := range []string{"DROP TABLE proc_events", "CREATE TABLE x (a INT)", "ALTER TABLE proc_events DROP PARTITION pmax",
		"SELECT LOAD_FILE('/etc/passwd') INTO @x", "DELETE FROM segments", "CREATE USER 'zz'@'localhost'",
		"UPDATE proc_events SET argv = 'rm -rf /'", "UPDATE file_events SET path = '/tmp/x'", "UPDATE sock_events SET remote_port = 1",
		"UPDATE gaps SET reason = 'nothing'", "UPDATE accounts SET name = 'root'", "DELETE FROM proc_events", "DELETE FROM gaps",
		"UPDATE segments SET rows_proc = 0", "UPDATE segments SET digest = prev_digest", "UPDATE segments SET archive_removed_at = NOW()",
		"UPDATE quarantine SET reason = ''", "DELETE FROM quarantine", "INSERT INTO schema_version (version, name) VALUES (99, 'x')",
		"REPLACE INTO proc_events SELECT * FROM proc_events"} {
		_, err := ldb.ExecContext(ctx, st)
		var me *mysql.MySQLError
		if st == "SELECT LOAD_FILE('/etc/passwd') INTO @x" {
			var v sql.NullString
			if err := ldb.QueryRowContext(ctx, "SELECT LOAD_FILE('/etc/passwd')").Scan(&v); err != nil || v.Valid {
				t.Errorf("loader read /etc/passwd with LOAD_FILE: %v %v", v.Valid, err)
			}
			continue
		}
		if !errors.As(err, &me) {
			t.Errorf("loader account may %q (err %v)", st, err)
		}
	}
	var grants []string
	testutil.EachRow(t, ldb, func(row testutil.Row) {
		var g string
		row.Scan(&g)
		grants = append(grants, g[:strings.Index(g, " TO ")])
	}, "SHOW GRANTS")
	// What it needs of UPDATE it has: settling a chain, the hosts copy.
	for _, st := range []string{"UPDATE segments SET chain_ok = chain_ok", "UPDATE hosts SET last_seen = last_seen, hostname = hostname"} {
		if _, err := ldb.ExecContext(ctx, st); err != nil {
			t.Errorf("loader account may not %q: %v", st, err)
		}
	}
	if n := len(grants); n != 1+len(schema.LoaderGrants) || grants[0] != "GRANT USAGE ON *.*" {
		t.Errorf("loader grants: %q, want USAGE and the %d of LoaderGrants", grants, len(schema.LoaderGrants))
	}
	want := []string{"GRANT SELECT ON `" + dbname + "`.*", "GRANT INSERT ON `" + dbname + "`.`proc_events`",
		"GRANT INSERT, UPDATE (`chain_ok`) ON `" + dbname + "`.`segments`"}
	for _, w := range want {
		if !slices.Contains(grants, w) {
			t.Errorf("loader grants %q lack %q", grants, w)
		}
	}
	rdb := open(u.Reader, u.ReaderPassword)
	var n int
	if err := rdb.QueryRowContext(ctx, "SELECT COUNT(*) FROM processes").Scan(&n); err != nil || n == 0 {
		t.Errorf("reader: processes view: %d rows, %v", n, err)
	}
	if _, err := rdb.ExecContext(ctx, "DELETE FROM proc_events"); err == nil {
		t.Error("reader account may delete")
	}
}

// TestRetention: day partitions are added ahead and dropped after the
// period, with their rows; the rows of kept days stay.
func TestRetention(t *testing.T) {
	db, _ := newDB(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	y0, m0, d0 := time.Now().UTC().Date()
	today := time.Date(y0, m0, d0, 0, 0, 0, 0, time.UTC)
	// Partitions exist from yesterday (newDB); rows of 1 day ago and today.
	l, w := newTestLoader2(t, db)
	defer w.close()
	mk := func(ts time.Time, pid int32) event.Proc {
		return event.Proc{TS: ts.UnixNano(), Event: event.ProcExec, PID: pid, TID: pid, UID: 1, EUID: 1, GID: 1, EGID: 1, AUID: 1, SessionID: 1}
	}
	seg := memSegment("h1", 1, "", []event.Proc{mk(today.Add(-12*time.Hour), 1), mk(today.Add(time.Hour), 2)}, nil, nil, nil, nil)
	defer seg.release()
	if _, err := w.commit(ctx, job{host: "h1", name: "x"}, seg, 1, time.Now()); err != nil {
		t.Fatal(err)
	}
	added, err := schema.EnsurePartitions(ctx, db, today, today.AddDate(0, 0, 5))
	if err != nil || added != 3*len(schema.PartitionedTables) {
		t.Fatalf("EnsurePartitions: %d added (%v), want 3 days × %d tables", added, err, len(schema.PartitionedTables))
	}
	dropped, err := schema.DropPartitions(ctx, db, today)
	if err != nil {
		t.Fatal(err)
	}
	y := today.AddDate(0, 0, -1).Format("p20060102")
	if diff := cmp.Diff([]string{"dns_events." + y, "dns_names." + y, "file_events." + y, "login_events." + y, "proc_events." + y, "sock_events." + y}, dropped); diff != "" {
		t.Errorf("dropped (-want +got):\n%s", diff)
	}
	var pids []int32
	for _, p := range readProcs(t, l.db(), "") {
		pids = append(pids, p.PID)
	}
	if diff := cmp.Diff([]int32{2}, pids); diff != "" {
		t.Errorf("pids left (-want +got):\n%s", diff)
	}
	for _, c := range []struct {
		in   string
		want time.Duration
	}{{"90d", 90 * 24 * time.Hour}, {"2w", 14 * 24 * time.Hour}, {"48h", 48 * time.Hour}} {
		if got, err := schema.ParseKeep(c.in); err != nil || got != c.want {
			t.Errorf("ParseKeep(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	if _, err := schema.ParseKeep("1h"); err == nil {
		t.Error("ParseKeep(1h) accepted less than a day")
	}
}

func newTestLoader2(t testing.TB, db *sql.DB) (*Loader, *worker) {
	l, err := New(Options{DB: db, StateDir: statedir.Dir(t.TempDir())})
	if err != nil {
		t.Fatal(err)
	}
	return l, &worker{l: l}
}
