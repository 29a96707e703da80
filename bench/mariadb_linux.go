package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MariaDB is the harness's private mariadbd: its own data directory and
// unix socket in a temporary directory under /var/tmp, no TCP, run as the
// mysql account. Settings: utf8mb4, time zone +00:00, local_infile=1, no
// binary log, a 512 MB buffer pool; durability as shipped
// (innodb_flush_log_at_trx_commit=1, doublewrite on), like a real server.
// Root connects over the socket without a password.
type MariaDB struct {
	Dir    string
	Socket string
	d      *daemon
}

// MariaDB programs, found in PATH or the sbin directories.
const (
	mariadbdBin  = "mariadbd"
	installDBBin = "mariadb-install-db"
)

// mariadbOptions are passed both to mariadb-install-db and to mariadbd.
var mariadbOptions = []string{
	"--skip-name-resolve",
	"--character-set-server=utf8mb4",
	"--collation-server=utf8mb4_general_ci",
	"--innodb-buffer-pool-size=512M",
	"--innodb-buffer-pool-dump-at-shutdown=0",
	"--innodb-buffer-pool-load-at-startup=0",
	"--skip-log-bin",
}

// LookMariaDB reports whether mariadbd and mariadb-install-db are installed.
func LookMariaDB() error {
	for _, name := range []string{mariadbdBin, installDBBin} {
		if _, err := lookTool(name); err != nil {
			return err
		}
	}
	return nil
}

// StartMariaDB creates a data directory and starts mariadbd on it, waiting
// until it accepts connections. Stop it with [MariaDB.Stop].
func StartMariaDB(ctx context.Context, log *slog.Logger) (_ *MariaDB, err error) {
	mariadbd, err := lookTool(mariadbdBin)
	if err != nil {
		return nil, err
	}
	installDB, err := lookTool(installDBBin)
	if err != nil {
		return nil, err
	}
	acct, err := user.Lookup("mysql")
	if err != nil {
		return nil, fmt.Errorf("start mariadbd: %w (the mariadb-server package creates it)", err)
	}
	uid, _ := strconv.Atoi(acct.Uid)
	gid, _ := strconv.Atoi(acct.Gid)
	dir, err := os.MkdirTemp("/var/tmp", "pofr-bench-db-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, fmt.Errorf("start mariadbd: %w", err)
	}
	m := &MariaDB{Dir: dir, Socket: filepath.Join(dir, "mysqld.sock")}
	data := filepath.Join(dir, "data")
	// A private tmpdir: at start mariadbd deletes every #sql* file in its
	// tmpdir, which in a shared /tmp are other servers' live temporary tables.
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("start mariadbd: %w", err)
	}
	if err := os.Chown(tmp, uid, gid); err != nil {
		return nil, fmt.Errorf("start mariadbd: %w", err)
	}

	// mariadb-install-db has been seen to fail its bootstrap when another
	// server started meanwhile (the shared-/tmp problem above): try again.
	install := append([]string{"--no-defaults", "--datadir=" + data, "--tmpdir=" + tmp, "--user=mysql",
		"--auth-root-authentication-method=normal", "--skip-test-db"}, mariadbOptions...)
	for attempt := 1; ; attempt++ {
		os.RemoveAll(data)
		_, err = runTool(ctx, installDB, install...)
		if err == nil {
			break
		}
		if attempt == 3 || ctx.Err() != nil {
			return nil, err
		}
		log.Warn("mariadb-install-db failed; trying again", "attempt", attempt, "err", err)
	}

	args := append([]string{
		"--no-defaults",
		"--user=mysql",
		"--datadir=" + data,
		"--tmpdir=" + tmp,
		"--socket=" + m.Socket,
		"--pid-file=" + filepath.Join(dir, "mariadbd.pid"),
		"--log-error=" + filepath.Join(dir, "error.log"),
		"--skip-networking",
		"--local-infile=1",
		"--default-time-zone=+00:00",
		"--max-allowed-packet=64M",
	}, mariadbOptions...)
	m.d, err = startDaemon("mariadbd", filepath.Join(dir, "mariadbd.out"), exec.Command(mariadbd, args...))
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("mysql", m.DSN("root", "", ""))
	if err != nil {
		m.d.stop(10 * time.Second)
		return nil, err
	}
	defer db.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err = db.PingContext(pctx)
		cancel()
		if err == nil {
			return m, nil
		}
		if !m.d.running() || time.Now().After(deadline) || ctx.Err() != nil {
			m.d.stop(10 * time.Second)
			return nil, fmt.Errorf("start mariadbd: no connection (%v); its error log:\n%s", err, fileTail(filepath.Join(dir, "error.log"), 4000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// DSN returns a go-sql-driver/mysql DSN for user over the socket, with
// database dbname ("" for none).
func (m *MariaDB) DSN(user, password, dbname string) string {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd = user, password
	cfg.Net, cfg.Addr = "unix", m.Socket
	cfg.DBName = dbname
	cfg.ParseTime = true
	return cfg.FormatDSN()
}

// Stop shuts the server down and removes its directory.
func (m *MariaDB) Stop() error {
	err := m.d.stop(60 * time.Second)
	if err != nil {
		err = fmt.Errorf("%w; error log:\n%s", err, fileTail(filepath.Join(m.Dir, "error.log"), 4000))
	}
	return errors.Join(err, os.RemoveAll(m.Dir))
}

// lookTool finds a program in PATH or in the sbin and bin directories, which
// a sudo PATH may lack.
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found (apt-get install mariadb-server)", name)
}
