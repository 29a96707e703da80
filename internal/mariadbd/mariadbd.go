// Package mariadbd runs a private MariaDB server: its own data directory,
// temporary directory and unix socket under a directory of the caller, no
// option files, stopped with the process that started it. The tests
// (internal/testutil) and make bench (package bench) start theirs with it,
// each with its own settings.
package mariadbd

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/pofr/pofr/internal/daemon"
)

// Programs, found by [daemon.LookTool].
const (
	ServerBin  = "mariadbd"
	InstallBin = "mariadb-install-db"
)

// Look finds mariadbd and mariadb-install-db.
func Look() (server, install string, err error) {
	if server, err = daemon.LookTool(ServerBin); err != nil {
		return "", "", fmt.Errorf("%w (apt-get install mariadb-server)", err)
	}
	if install, err = daemon.LookTool(InstallBin); err != nil {
		return "", "", fmt.Errorf("%w (apt-get install mariadb-server)", err)
	}
	return server, install, nil
}

// Options say where and how a server runs.
type Options struct {
	// Dir is an existing directory for the server's files; Stop removes it.
	Dir string
	// Settings go to both mariadb-install-db and mariadbd (buffer pool,
	// character set, durability …).
	Settings []string
	// TCP makes the server listen on 127.0.0.1 at a free port too;
	// otherwise it has no network (--skip-networking).
	TCP bool
	// ServerArgs go to mariadbd only (not to mariadb-install-db): the
	// Galera settings of [StartGalera], for one.
	ServerArgs []string
	// Log receives retries; nil discards them.
	Log *slog.Logger
}

// Server is a running private mariadbd. Root connects without a password,
// over the socket (and over TCP from 127.0.0.1 with Options.TCP).
type Server struct {
	Dir    string
	Socket string
	Port   int // 0 without Options.TCP
	proc   *daemon.Process
}

// ReadyTimeout bounds the wait for a new server to accept connections
// while it makes no progress: the wait is extended every time its data
// directory changed size since the last look (a Galera joiner's rsync state
// transfer fills it for as long as the transfer runs, before the server
// accepts connections: 53 s were seen at load average 38).
const ReadyTimeout = 60 * time.Second

// errPortInUse reports that mariadbd could not bind its TCP port.
var errPortInUse = errors.New("port in use")

// Start creates the data directory with mariadb-install-db and starts
// mariadbd on it, waiting until it accepts connections. As root the server
// runs as the mysql account (which the mariadb-server package creates),
// otherwise as the caller's.
func Start(ctx context.Context, o Options) (_ *Server, err error) {
	serverBin, installBin, err := Look()
	if err != nil {
		return nil, err
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{Dir: o.Dir, Socket: filepath.Join(o.Dir, "mysqld.sock")}
	if len(s.Socket) > 100 {
		return nil, fmt.Errorf("start mariadbd: socket path %s is too long for a unix socket; use a shorter directory", s.Socket)
	}
	data := filepath.Join(o.Dir, "data")
	// A private tmpdir: at start mariadbd deletes every #sql* file in its
	// tmpdir, which in a shared /tmp are other servers' live temporary
	// tables (seen: a segfault in ha_maria::drop_table, and
	// mariadb-install-db failing its bootstrap).
	tmp := filepath.Join(o.Dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("start mariadbd: %w", err)
	}
	install := []string{"--no-defaults", "--datadir=" + data, "--tmpdir=" + tmp,
		"--auth-root-authentication-method=normal", "--skip-test-db"}
	var as *daemon.Credential
	if os.Geteuid() == 0 {
		if as, err = mysqlAccount(); err != nil {
			return nil, err
		}
		for _, d := range []string{o.Dir, tmp} {
			if err := os.Chown(d, int(as.UID), int(as.GID)); err != nil {
				return nil, fmt.Errorf("start mariadbd: %w", err)
			}
		}
		install = append(install, "--user=mysql")
	}
	install = append(install, o.Settings...)
	// mariadb-install-db has been seen to fail its bootstrap when another
	// server started meanwhile (the shared-/tmp problem above): try again.
	for attempt := 1; ; attempt++ {
		os.RemoveAll(data)
		ictx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		out, ierr := exec.CommandContext(ictx, installBin, install...).CombinedOutput()
		cancel()
		if ierr == nil {
			break
		}
		if attempt == 3 || ctx.Err() != nil {
			return nil, fmt.Errorf("mariadb-install-db: %w\n%s", ierr, out)
		}
		log.Warn("mariadb-install-db failed; trying again", "attempt", attempt, "err", ierr)
	}
	for attempt := 1; ; attempt++ {
		if o.TCP {
			if s.Port, err = daemon.FreePort(); err != nil {
				return nil, err
			}
		}
		err = s.run(ctx, serverBin, as, data, tmp, append(slices.Clip(o.Settings), o.ServerArgs...))
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, errPortInUse) || attempt == 3 {
			return nil, err
		}
	}
}

// mysqlAccount looks up the mysql account.
func mysqlAccount() (*daemon.Credential, error) {
	u, err := user.Lookup("mysql")
	if err != nil {
		return nil, fmt.Errorf("start mariadbd: %w (the mariadb-server package creates it)", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("start mariadbd: account mysql: %w", err)
	}
	return &daemon.Credential{UID: uint32(uid), GID: uint32(gid)}, nil
}

// run starts mariadbd and waits until it accepts connections.
func (s *Server) run(ctx context.Context, serverBin string, as *daemon.Credential, data, tmp string, settings []string) error {
	logOffset := int64(len(s.ErrorLog()))
	args := []string{
		"--no-defaults",
		"--datadir=" + data,
		"--tmpdir=" + tmp,
		"--socket=" + s.Socket,
		"--pid-file=" + filepath.Join(s.Dir, "mariadbd.pid"),
		"--log-error=" + filepath.Join(s.Dir, "error.log"),
		"--local-infile=1",
		"--default-time-zone=+00:00",
		"--max-allowed-packet=64M",
	}
	if s.Port != 0 {
		args = append(args, "--bind-address=127.0.0.1", "--port="+strconv.Itoa(s.Port))
	} else {
		args = append(args, "--skip-networking")
	}
	cmd := exec.Command(serverBin, append(args, settings...)...)
	cmd.SysProcAttr = daemon.Attr(as)
	var err error
	if s.proc, err = daemon.Start("mariadbd", cmd, filepath.Join(s.Dir, "mariadbd.out")); err != nil {
		return err
	}
	db, err := sql.Open("mysql", s.Config("root", "", "").FormatDSN())
	if err != nil {
		s.proc.Stop(10 * time.Second)
		return err
	}
	defer db.Close()
	start := time.Now()
	deadline := start.Add(ReadyTimeout)
	size, looked := dirBytes(data), start
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err = db.PingContext(pctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.proc.Exited():
			log := s.ErrorLog()[logOffset:]
			if strings.Contains(log, "Address already in use") {
				return fmt.Errorf("start mariadbd on port %d: %w", s.Port, errPortInUse)
			}
			return fmt.Errorf("start mariadbd: exited before accepting connections (%v); its error log:\n%s", s.proc.Err(), log)
		case <-time.After(20 * time.Millisecond):
		}
		if now := time.Now(); now.Sub(looked) >= time.Second {
			if n := dirBytes(data); n != size {
				size, deadline = n, now.Add(ReadyTimeout)
			}
			looked = now
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.proc.Stop(10 * time.Second)
			why := fmt.Sprintf("its data directory unchanged for %v", ReadyTimeout)
			if ctx.Err() != nil {
				why = ctx.Err().Error()
			}
			return fmt.Errorf("start mariadbd: no connection after %v, %s (last: %v); its error log:\n%s",
				time.Since(start).Round(time.Second), why, err, s.ErrorLog()[logOffset:])
		}
	}
}

// dirBytes is the size of the regular files under dir.
func dirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// Pid is the mariadbd process id (its CPU time is in /proc/PID/stat).
func (s *Server) Pid() int { return s.proc.Pid() }

// Running reports whether the server has not exited.
func (s *Server) Running() bool { return s.proc.Running() }

// ExitErr is what the server's exit returned, once it is not Running.
func (s *Server) ExitErr() error { return s.proc.Err() }

// Kill kills the server with SIGKILL (a crash) and waits until it has
// exited; its directory stays until Stop.
func (s *Server) Kill() {
	s.proc.Kill()
}

// Stop shuts the server down cleanly and removes its directory. After
// Kill it only removes the directory.
func (s *Server) Stop() error {
	if s.proc.Killed() {
		return os.RemoveAll(s.Dir)
	}
	err := s.proc.Stop(60 * time.Second)
	if err != nil {
		err = fmt.Errorf("%w; mariadbd error log:\n%s", err, s.ErrorLogTail())
	}
	return errors.Join(err, os.RemoveAll(s.Dir))
}

// ErrorLog returns the server's error log.
func (s *Server) ErrorLog() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "error.log"))
	return string(b)
}

// ErrorLogTail returns the end of the server's error log, for failure
// messages.
func (s *Server) ErrorLogTail() string {
	return daemon.FileTail(filepath.Join(s.Dir, "error.log"), 8192)
}

// Config returns a go-sql-driver/mysql configuration for user over the
// socket, with database dbname ("" for none); callers add their parameters.
func (s *Server) Config(user, password, dbname string) *mysql.Config {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd = user, password
	cfg.Net, cfg.Addr = "unix", s.Socket
	cfg.DBName = dbname
	return cfg
}
