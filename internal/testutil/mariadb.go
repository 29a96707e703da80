package testutil

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // registers the "mysql" driver for the DSNs below
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
	dir    string
	tmpdir string
	socket string
	port   int
	srv    *server
	root   *sql.DB
	seq    atomic.Uint64
}

// mariadb is the shared instance of the test process.
var mariadb struct {
	mu      sync.Mutex
	started bool
	m       *MariaDB
	err     error
}

// mariadbReady bounds the wait for a new server to accept connections.
const mariadbReady = 60 * time.Second

// StartMariaDB returns the MariaDB server of this test binary, starting it on
// first use (about one second, most of it mariadb-install-db). It skips the
// test (tier service) when MariaDB is not installed, and fails it when the
// package's TestMain does not call [Main], which stops the server.
func StartMariaDB(t testing.TB) *MariaDB {
	t.Helper()
	RequireTier(t, TierService)
	mariadbd, err1 := lookTool("mariadbd")
	installDB, err2 := lookTool("mariadb-install-db")
	if err := cmp.Or(err1, err2); err != nil {
		Skip(t, TierService, fmt.Sprintf("%v; apt-get install mariadb-server", err))
	}
	requireMain(t, "the MariaDB server")

	mariadb.mu.Lock()
	defer mariadb.mu.Unlock()
	if !mariadb.started {
		mariadb.started = true
		start := time.Now()
		mariadb.m, mariadb.err = startMariaDB(mariadbd, installDB)
		if mariadb.err == nil {
			atExit(mariadb.m.stop)
			t.Logf("mariadbd ready in %v (socket %s, port %d)", time.Since(start).Round(time.Millisecond), mariadb.m.socket, mariadb.m.port)
		}
	}
	if mariadb.err != nil {
		t.Fatal(mariadb.err)
	}
	return mariadb.m
}

// errPortInUse reports that mariadbd could not bind its TCP port.
var errPortInUse = errors.New("port in use")

// startMariaDB creates a data directory and starts mariadbd on it.
func startMariaDB(mariadbd, installDB string) (_ *MariaDB, err error) {
	dir, err := newStateDir(os.TempDir(), "mariadb")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	m := &MariaDB{dir: dir, socket: filepath.Join(dir, "mysqld.sock")}
	if len(m.socket) > 100 {
		return nil, fmt.Errorf("start mariadbd: socket path %s is too long for a unix socket; set TMPDIR to a shorter directory", m.socket)
	}

	// As root, run as the mysql account that the mariadb-server package
	// creates; otherwise as the test's own account.
	var as *account
	// A private tmpdir: at start, mariadbd deletes every #sql* file in its
	// tmpdir, which in a shared /tmp are the live temporary tables of the
	// other packages' servers (seen: a segfault in ha_maria::drop_table, and
	// mariadb-install-db failing its bootstrap).
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("start mariadbd: %w", err)
	}
	m.tmpdir = tmp
	install := []string{"--no-defaults", "--datadir=" + filepath.Join(dir, "data"), "--tmpdir=" + tmp,
		"--auth-root-authentication-method=normal", "--skip-test-db"}
	if os.Geteuid() == 0 {
		if as, err = lookupAccount("mysql"); err != nil {
			return nil, fmt.Errorf("start mariadbd: %w (the mariadb-server package creates it)", err)
		}
		for _, d := range []string{dir, tmp} {
			if err := os.Chown(d, int(as.uid), int(as.gid)); err != nil {
				return nil, fmt.Errorf("start mariadbd: %w", err)
			}
		}
		install = append(install, "--user=mysql")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, installDB, append(install, mariadbOptions...)...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("mariadb-install-db: %w\n%s", err, out)
	}

	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		err = m.run(mariadbd, as, port)
		if err == nil {
			return m, nil
		}
		if !errors.Is(err, errPortInUse) || attempt == 3 {
			return nil, err
		}
	}
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

// run starts mariadbd on port and waits until it accepts connections.
func (m *MariaDB) run(mariadbd string, as *account, port int) error {
	m.port = port
	logOffset := int64(len(m.errorLog()))
	args := append([]string{
		"--no-defaults",
		"--datadir=" + filepath.Join(m.dir, "data"),
		"--tmpdir=" + m.tmpdir,
		"--socket=" + m.socket,
		"--pid-file=" + filepath.Join(m.dir, "mariadbd.pid"),
		"--log-error=" + filepath.Join(m.dir, "error.log"),
		"--bind-address=127.0.0.1",
		"--port=" + strconv.Itoa(port),
		"--local-infile=1",
		"--default-time-zone=+00:00",
		"--max-allowed-packet=64M",
	}, mariadbOptions...)
	out, err := os.OpenFile(filepath.Join(m.dir, "mariadbd.out"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start mariadbd: %w", err)
	}
	defer out.Close()
	cmd := exec.Command(mariadbd, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = serverAttr(as)
	m.srv, err = startServer(cmd)
	if err != nil {
		return err
	}

	db, err := sql.Open("mysql", m.DSN(""))
	if err != nil {
		m.srv.stop(10 * time.Second)
		return fmt.Errorf("open %s: %w", m.DSN(""), err)
	}
	deadline := time.Now().Add(mariadbReady)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = db.PingContext(ctx)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-m.srv.exited:
			db.Close()
			log := m.errorLog()[logOffset:]
			if strings.Contains(log, "Address already in use") {
				return fmt.Errorf("start mariadbd on port %d: %w", port, errPortInUse)
			}
			return fmt.Errorf("start mariadbd: exited before accepting connections (%v); its error log:\n%s", m.srv.err, log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			db.Close()
			m.srv.stop(10 * time.Second)
			return fmt.Errorf("start mariadbd: no connection after %v (last: %v); its error log:\n%s", mariadbReady, err, m.errorLog()[logOffset:])
		}
	}
	db.SetMaxOpenConns(4)
	m.root = db
	return nil
}

// stop shuts the server down cleanly and removes its files.
func (m *MariaDB) stop() error {
	m.root.Close()
	err := m.srv.stop(60 * time.Second)
	if err != nil {
		err = fmt.Errorf("%w; mariadbd error log:\n%s", err, m.errorLogTail())
	}
	return errors.Join(err, os.RemoveAll(m.dir))
}

// errorLog returns mariadbd's error log.
func (m *MariaDB) errorLog() string {
	b, _ := os.ReadFile(filepath.Join(m.dir, "error.log"))
	return string(b)
}

// errorLogTail returns the end of mariadbd's error log, for failure messages.
func (m *MariaDB) errorLogTail() string {
	f, err := os.Open(filepath.Join(m.dir, "error.log"))
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > 8192 {
		f.Seek(fi.Size()-8192, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// dsnParams are the go-sql-driver/mysql parameters of every DSN given out.
const dsnParams = "allowAllFiles=false&parseTime=true&multiStatements=true&interpolateParams=false"

// DSN returns a go-sql-driver/mysql DSN for root over the unix socket, with
// database dbname ("" for none) and the parameters allowAllFiles=false,
// parseTime=true, multiStatements=true and interpolateParams=false.
func (m *MariaDB) DSN(dbname string) string {
	return "root@unix(" + m.socket + ")/" + dbname + "?" + dsnParams
}

// TCPDSN is like [MariaDB.DSN] but connects over TCP to 127.0.0.1.
func (m *MariaDB) TCPDSN(dbname string) string {
	return "root@tcp(127.0.0.1:" + strconv.Itoa(m.port) + ")/" + dbname + "?" + dsnParams
}

// RootDSN returns the DSN of root over the unix socket, with no database.
func (m *MariaDB) RootDSN() string { return m.DSN("") }

// Socket returns the path of the server's unix socket.
func (m *MariaDB) Socket() string { return m.socket }

// Port returns the server's TCP port on 127.0.0.1.
func (m *MariaDB) Port() int { return m.port }

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
	if m.srv.running() {
		return ""
	}
	return fmt.Sprintf("\nmariadbd has exited (%v); its error log:\n%s", m.srv.err, m.errorLogTail())
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
