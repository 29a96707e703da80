package testutil_test

import (
	"database/sql"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/google/go-cmp/cmp"

	"github.com/pofr/pofr/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// open connects to dsn and closes the connection when the test ends, before
// the test's database is dropped.
func open(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestMariaDBSettings(t *testing.T) {
	t.Parallel()
	m := testutil.StartMariaDB(t)
	db := open(t, m.RootDSN())
	var got struct {
		localInfile, logBin, flush, port int
		charset, tz, socket, version     string
	}
	err := db.QueryRowContext(t.Context(), `SELECT @@local_infile, @@log_bin, @@innodb_flush_log_at_trx_commit, @@port,
		@@character_set_server, @@time_zone, @@socket, @@version`).
		Scan(&got.localInfile, &got.logBin, &got.flush, &got.port, &got.charset, &got.tz, &got.socket, &got.version)
	if err != nil {
		t.Fatal(err)
	}
	want := got
	want.localInfile, want.logBin, want.flush, want.port = 1, 0, 2, m.Port()
	want.charset, want.tz, want.socket = "utf8mb4", "+00:00", m.Socket()
	if !strings.Contains(got.version, "MariaDB") {
		t.Errorf("version %q is not MariaDB", got.version)
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(want)); diff != "" {
		t.Errorf("server variables (-want +got):\n%s", diff)
	}
	if fi, err := os.Stat(m.Socket()); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("Socket() = %s: not a socket (%v)", m.Socket(), err)
	}
	if m2 := testutil.StartMariaDB(t); m2 != m {
		t.Error("a second StartMariaDB started another server, want the shared one")
	}
}

func TestMariaDBDatabasesAreIsolated(t *testing.T) {
	t.Parallel()
	m := testutil.StartMariaDB(t)
	dsnA, nameA := m.NewDatabase(t)
	dsnB, nameB := m.NewDatabase(t)
	if nameA == nameB || dsnA == dsnB {
		t.Fatalf("two NewDatabase calls gave the same database %q (%s)", nameA, dsnA)
	}
	a, b := open(t, dsnA), open(t, dsnB)

	// multiStatements=true: several statements in one Exec.
	if _, err := a.ExecContext(t.Context(), "CREATE TABLE only_in_a (id INT PRIMARY KEY, at DATETIME(6)); INSERT INTO only_in_a VALUES (1, '2024-05-06 07:08:09.123456')"); err != nil {
		t.Fatal(err)
	}
	// parseTime=true: DATETIME scans into time.Time, in UTC.
	var at time.Time
	if err := a.QueryRowContext(t.Context(), "SELECT at FROM only_in_a").Scan(&at); err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC); !at.Equal(want) || at.Location() != time.UTC {
		t.Errorf("DATETIME(6) scanned as %v, want %v", at, want)
	}

	var cur string
	if err := b.QueryRowContext(t.Context(), "SELECT DATABASE()").Scan(&cur); err != nil {
		t.Fatal(err)
	}
	if cur != nameB {
		t.Errorf("DATABASE() via the second DSN = %q, want %q", cur, nameB)
	}
	var n int
	err := b.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM only_in_a").Scan(&n)
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1146 {
		t.Errorf("the second database sees the first one's table: err = %v, want error 1146 (no such table)", err)
	}
}

func TestMariaDBDatabaseDroppedAfterTest(t *testing.T) {
	t.Parallel()
	m := testutil.StartMariaDB(t)
	root := open(t, m.RootDSN())
	exists := func(name string) bool {
		t.Helper()
		rows, err := root.QueryContext(t.Context(), "SHOW DATABASES LIKE '"+name+"'")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		return rows.Next()
	}
	var name string
	t.Run("inner", func(t *testing.T) {
		_, name = m.NewDatabase(t)
		if !exists(name) {
			t.Errorf("database %s does not exist during the test", name)
		}
	})
	if name == "" {
		t.Skip("no database: see the inner test")
	}
	if exists(name) {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

func TestMariaDBLoadDataLocalInfile(t *testing.T) {
	t.Parallel()
	m := testutil.StartMariaDB(t)
	dsn, _ := m.NewDatabase(t)
	db := open(t, dsn)
	if _, err := db.ExecContext(t.Context(), "CREATE TABLE ev (id BIGINT PRIMARY KEY, comm VARCHAR(64) NOT NULL, argv VARBINARY(255))"); err != nil {
		t.Fatal(err)
	}
	// Rows as LOAD DATA's default escaping wants them: \t inside a field is
	// written \\t, a NUL byte \0, NULL \N.
	const tsv = "1\tsh\t/bin/sh\\0-c\\0true\n2\tit's\t\\N\n3\ttab\\there\tx\n"
	handler := "events-" + t.Name()
	mysql.RegisterReaderHandler(handler, func() io.Reader { return strings.NewReader(tsv) })
	t.Cleanup(func() { mysql.DeregisterReaderHandler(handler) })

	res, err := db.ExecContext(t.Context(), "LOAD DATA LOCAL INFILE 'Reader::"+handler+"' INTO TABLE ev (id, comm, argv)")
	if err != nil {
		t.Fatalf("LOAD DATA LOCAL INFILE from a reader handler: %v", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 3 {
		t.Errorf("LOAD DATA loaded %d rows (%v), want 3", n, err)
	}
	type row struct {
		ID   int64
		Comm string
		Argv []byte
	}
	var got []row
	testutil.EachRow(t, db, func(res testutil.Row) {
		var r row
		res.Scan(&r.ID, &r.Comm, &r.Argv)
		got = append(got, r)
	}, "SELECT id, comm, argv FROM ev ORDER BY id")
	want := []row{{1, "sh", []byte("/bin/sh\x00-c\x00true")}, {2, "it's", nil}, {3, "tab\there", []byte("x")}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("loaded rows (-want +got):\n%s", diff)
	}

	// allowAllFiles=false: a file that was not registered is refused.
	_, err = db.ExecContext(t.Context(), "LOAD DATA LOCAL INFILE '/etc/hostname' INTO TABLE ev (id, comm)")
	if err == nil || !strings.Contains(err.Error(), "not registered") {
		t.Errorf("LOAD DATA LOCAL INFILE of an unregistered file: err = %v, want \"not registered\"", err)
	}
}

func TestMariaDBOverTCP(t *testing.T) {
	t.Parallel()
	m := testutil.StartMariaDB(t)
	_, name := m.NewDatabase(t)
	db := open(t, m.TCPDSN(name))
	var user, cur string
	if err := db.QueryRowContext(t.Context(), "SELECT CURRENT_USER(), DATABASE()").Scan(&user, &cur); err != nil {
		t.Fatalf("query over TCP port %d: %v", m.Port(), err)
	}
	if user != "root@127.0.0.1" || cur != name {
		t.Errorf("over TCP: CURRENT_USER(), DATABASE() = %q, %q; want root@127.0.0.1, %q", user, cur, name)
	}
}
