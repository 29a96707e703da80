package bench

import (
	"context"
	"log/slog"
	"os"

	"github.com/pofr/pofr/internal/mariadbd"
)

// MariaDB is the harness's private mariadbd (package internal/mariadbd): its
// own data directory and unix socket in a temporary directory under
// /var/tmp, no TCP, run as the mysql account. Settings: utf8mb4, time zone
// +00:00, local_infile=1, no binary log, a 512 MB buffer pool; durability
// as shipped (innodb_flush_log_at_trx_commit=1, doublewrite on), like a real
// server. Root connects over the socket without a password.
type MariaDB struct {
	*mariadbd.Server
}

// mariadbSettings are the harness's server settings.
var mariadbSettings = []string{
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
	_, _, err := mariadbd.Look()
	return err
}

// StartMariaDB creates a data directory and starts mariadbd on it, waiting
// until it accepts connections.
func StartMariaDB(ctx context.Context, log *slog.Logger) (*MariaDB, error) {
	dir, err := os.MkdirTemp("/var/tmp", "pofr-bench-db-")
	if err != nil {
		return nil, err
	}
	s, err := mariadbd.Start(ctx, mariadbd.Options{Dir: dir, Settings: mariadbSettings, Log: log})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &MariaDB{s}, nil
}

// DSN returns a go-sql-driver/mysql DSN for user over the socket, with
// database dbname ("" for none).
func (m *MariaDB) DSN(user, password, dbname string) string {
	cfg := m.Config(user, password, dbname)
	cfg.ParseTime = true
	return cfg.FormatDSN()
}
