package testutil

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // registers the "mysql" driver for the DSNs below

	"github.com/pofr/pofr/internal/mariadbd"
)

// MariaDB is a private mariadbd: its own data directory under a temporary
// directory, a unix socket there, and TCP on 127.0.0.1 at a free port. One
// instance serves all tests of a test binary; get it with [StartMariaDB] and
// give each test its own database with [MariaDB.NewDatabase].
//
// The server runs without option files (--no-defaults) and with settings for
// tests: utf8mb4, time zone UTC, local_infile=1, no binary log, a 256 MB
// buffer pool, innodb_flush_log_at_trx_commit=2 and no doublewrite buffer.
// Its account root@localhost (socket) and root@127.0.0.1 (TCP) have no
// password; grant tables are in force.
type MariaDB struct {
	srv  *mariadbd.Server
	root *sql.DB
	seq  atomic.Uint64
}

// mariadb is the shared instance of the test process.
var mariadb struct {
	mu      sync.Mutex
	started bool
	m       *MariaDB
	err     error
}

// StartMariaDB returns the MariaDB server of this test binary, starting it on
// first use (about one second, most of it mariadb-install-db). It skips the
// test (tier service) when MariaDB is not installed, and fails it when the
// package's TestMain does not call [Main], which stops the server.
func StartMariaDB(t testing.TB) *MariaDB {
	t.Helper()
	RequireTier(t, TierService)
	if _, _, err := mariadbd.Look(); err != nil {
		Skip(t, TierService, err.Error())
	}
	requireMain(t, "the MariaDB server")

	mariadb.mu.Lock()
	defer mariadb.mu.Unlock()
	if !mariadb.started {
		mariadb.started = true
		start := time.Now()
		mariadb.m, mariadb.err = startMariaDB()
		if mariadb.err == nil {
			atExit(mariadb.m.stop)
			t.Logf("mariadbd ready in %v (socket %s, port %d)", time.Since(start).Round(time.Millisecond), mariadb.m.srv.Socket, mariadb.m.srv.Port)
		}
	}
	if mariadb.err != nil {
		t.Fatal(mariadb.err)
	}
	return mariadb.m
}

// startMariaDB creates a state directory and starts mariadbd on it.
func startMariaDB() (*MariaDB, error) {
	dir, err := newStateDir(os.TempDir(), "mariadb")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srv, err := mariadbd.Start(ctx, mariadbd.Options{Dir: dir, Settings: mariadbOptions, TCP: true})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	m := &MariaDB{srv: srv}
	db, err := sql.Open("mysql", m.DSN(""))
	if err != nil {
		srv.Stop()
		return nil, fmt.Errorf("open %s: %w", m.DSN(""), err)
	}
	db.SetMaxOpenConns(4)
	m.root = db
	return m, nil
}

// mariadbOptions are passed both to mariadb-install-db and to mariadbd.
var mariadbOptions = []string{
	"--skip-name-resolve",
	"--character-set-server=utf8mb4",
	"--collation-server=utf8mb4_general_ci",
	"--innodb-buffer-pool-size=256M",
	"--innodb-flush-log-at-trx-commit=2",
	"--innodb-doublewrite=0",
	"--innodb-buffer-pool-dump-at-shutdown=0",
	"--innodb-buffer-pool-load-at-startup=0",
	"--skip-log-bin",
}

// stop shuts the server down cleanly and removes its files.
func (m *MariaDB) stop() error {
	m.root.Close()
	if !m.srv.Running() {
		return fmt.Errorf("mariadbd had already exited: %v; its error log:\n%s", m.srv.ExitErr(), m.srv.ErrorLogTail())
	}
	return m.srv.Stop()
}

// dsnParams are the go-sql-driver/mysql parameters of every DSN given out.
const dsnParams = "allowAllFiles=false&parseTime=true&multiStatements=true&interpolateParams=false"

// DSN returns a go-sql-driver/mysql DSN for root over the unix socket, with
// database dbname ("" for none) and the parameters allowAllFiles=false,
// parseTime=true, multiStatements=true and interpolateParams=false.
func (m *MariaDB) DSN(dbname string) string {
	return "root@unix(" + m.srv.Socket + ")/" + dbname + "?" + dsnParams
}

// TCPDSN is like [MariaDB.DSN] but connects over TCP to 127.0.0.1.
func (m *MariaDB) TCPDSN(dbname string) string {
	return "root@tcp(127.0.0.1:" + strconv.Itoa(m.srv.Port) + ")/" + dbname + "?" + dsnParams
}

// RootDSN returns the DSN of root over the unix socket, with no database.
func (m *MariaDB) RootDSN() string { return m.DSN("") }

// Socket returns the path of the server's unix socket.
func (m *MariaDB) Socket() string { return m.srv.Socket }

// Port returns the server's TCP port on 127.0.0.1.
func (m *MariaDB) Port() int { return m.srv.Port }

// NewDatabase creates a database for this test alone, named after the test,
// and drops it when the test ends. It returns the DSN (see [MariaDB.DSN]) and
// the database name. Close connections to it in t.Cleanup registered after
// NewDatabase, so that they close before the drop.
func (m *MariaDB) NewDatabase(t testing.TB) (dsn, name string) {
	t.Helper()
	name = dbName(m.seq.Add(1), t.Name())
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := m.root.ExecContext(ctx, "CREATE DATABASE `"+name+"`"); err != nil {
		t.Fatalf("create database %s: %v%s", name, err, m.diagnosis())
	}
	t.Cleanup(func() {
		// t.Context is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := m.root.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
			t.Errorf("drop database %s: %v%s", name, err, m.diagnosis())
		}
	})
	return m.DSN(name), name
}

// diagnosis explains a failed statement when the server has died.
func (m *MariaDB) diagnosis() string {
	if m.srv.Running() {
		return ""
	}
	return fmt.Sprintf("\nmariadbd has exited (%v); its error log:\n%s", m.srv.ExitErr(), m.srv.ErrorLogTail())
}

// dbName returns a database name unique in this process: "t", seq, and the
// test name reduced to letters, digits and underscores, at most 64 bytes.
func dbName(seq uint64, testName string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "t%d_", seq)
	for _, r := range testName {
		if b.Len() >= 64 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// StartGalera starts a private 3-node Galera cluster with the server
// settings given and short failure-detection timeouts, stopped and removed
// when the test ends. It needs the service tier and Galera (skipped with
// the reason otherwise).
func StartGalera(t testing.TB, settings ...string) *mariadbd.Cluster {
	t.Helper()
	RequireTier(t, TierService)
	if err := mariadbd.LookGalera(); err != nil {
		Skip(t, TierService, err.Error())
	}
	dir, err := os.MkdirTemp("/var/tmp", "pofr-galera-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	c, err := mariadbd.StartGalera(ctx, mariadbd.GaleraOptions{Dir: dir, Settings: settings,
		ProviderOptions: []string{"evs.keepalive_period=PT0.5S", "evs.suspect_timeout=PT2S", "evs.inactive_timeout=PT4S"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
	})
	return c
}
