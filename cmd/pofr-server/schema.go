package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/pofr/pofr/fleet"
	"github.com/pofr/pofr/internal/cli"
	"github.com/pofr/pofr/internal/durable"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/loader"
	"github.com/pofr/pofr/schema"
)

// stateDirFlag declares --state-dir (default statedir.Default) on fs.
func stateDirFlag(fs *flag.FlagSet, d *statedir.Dir, usage string) {
	fs.StringVar((*string)(d), "state-dir", string(statedir.Default), usage)
}

// DefaultDSNDir holds the DSN files every command reads by default: admin.dsn
// (schema, retention), loader.dsn (load, verify), reader.dsn (query, export,
// ui). schema users writes loader.dsn and reader.dsn beside the password files.
const DefaultDSNDir = "/etc/pofr-server"

// dsnEnv names a DSN file that replaces every command's default.
const dsnEnv = "POFR_DSN_FILE"

// dsnFileFlag declares --dsn-file on fs with the default $POFR_DSN_FILE, else
// DefaultDSNDir/ROLE.dsn.
func dsnFileFlag(fs *flag.FlagSet, p *string, role, usage string) {
	def := filepath.Join(DefaultDSNDir, role+".dsn")
	if e := os.Getenv(dsnEnv); e != "" {
		def = e
	}
	fs.StringVar(p, "dsn-file", def, usage+"; $"+dsnEnv+" replaces the default")
}

// readDSNFile returns the go-sql-driver/mysql DSN kept in path (one line;
// user:password@unix(/run/mysqld/mysqld.sock)/pofr). Secrets never go on
// the command line, and a file that others could read or change is
// refused (durable.ReadPrivate).
func readDSNFile(path string) (string, error) {
	if path == "" {
		return "", cli.Usagef("--dsn-file is required")
	}
	b, err := durable.ReadPrivate(path, 64<<10)
	var pe *fs.PathError
	switch {
	case errors.As(err, &pe): // open or read; it names the file
		return "", fmt.Errorf("read DSN file (--dsn-file F or $%s): %w", dsnEnv, err)
	case err != nil:
		return "", fmt.Errorf("DSN file %s: %w", path, err)
	}
	dsn := strings.TrimSpace(string(b))
	if dsn == "" {
		return "", fmt.Errorf("read DSN file %s: empty", path)
	}
	return dsn, nil
}

// openDSNFile opens the database named by the DSN kept in path.
func openDSNFile(path string) (*sql.DB, error) {
	dsn, err := readDSNFile(path)
	if err != nil {
		return nil, err
	}
	return loader.OpenDB(dsn)
}

// readSecretFile returns the first line of a password file.
func readSecretFile(flagName, path string) (string, error) {
	if path == "" {
		return "", cli.Usagef("--%s is required", flagName)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read --%s: %w", flagName, err)
	}
	s, _, _ := strings.Cut(string(b), "\n")
	if s = strings.TrimRight(s, "\r"); s == "" {
		return "", fmt.Errorf("read --%s %s: empty", flagName, path)
	}
	return s, nil
}

// ensureSecretFile writes a new random password (32 characters, 192 bits)
// to path, mode 0600, if path does not exist, and reports whether it did.
func ensureSecretFile(path string) (bool, error) {
	if _, err := os.Stat(path); err == nil || !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return false, err
	}
	pw := base64.RawURLEncoding.EncodeToString(b[:]) + "\n"
	if err := durable.WriteFile(path, []byte(pw), 0o600); err != nil {
		return false, fmt.Errorf("write new password: %w", err)
	}
	return true, nil
}

// writeAccountDSN writes the DSN of account user, at the admin DSN's address
// and database, to name beside the password file pwFile (mode 0600): when
// that file is missing, or when the password was generated now, so that the
// DSN file never holds a stale password.
func writeAccountDSN(env *cli.Env, admin *mysql.Config, pwFile, name, user, password string, fresh bool) error {
	path := filepath.Join(filepath.Dir(pwFile), name)
	if _, err := os.Stat(path); err == nil && !fresh {
		env.Log.Info("DSN file kept", "file", path)
		return nil
	}
	c := admin.Clone()
	c.User, c.Passwd = user, password
	if err := durable.WriteFile(path, []byte(c.FormatDSN()+"\n"), 0o600); err != nil {
		return fmt.Errorf("write DSN file: %w", err)
	}
	env.Log.Info("DSN file written", "file", path, "user", user)
	return nil
}

// partitionAhead is how many days of partitions schema apply and retention
// create beyond today.
const partitionAhead = 7

// schemaCommands are the "pofr-server schema …" commands.
func schemaCommands() []*cli.Command {
	var cmds []*cli.Command
	var dsnFile string
	cmds = append(cmds, perShard(&cli.Command{
		Name:    "schema apply",
		Summary: "create or upgrade the MariaDB schema (idempotent; never downgrades)",
		Usage:   "--dsn-file F",
		Help: `Applies the migrations embedded in this binary (schema/NNN_name.sql) that the
database does not have yet, records each in schema_version, defines the views
again from their one definition (schema/views.sql), and creates the day
partitions of the event tables from today to 7 days ahead. Running it again
changes nothing. A database whose schema is newer than this binary is
refused. The event tables are page-compressed (migration 014): it warns when
the server's innodb_compression_algorithm is none or its innodb_page_size is
4k, which defeat that (the data directory's file system must also punch
holes: ext4, XFS, btrfs). The DSN file holds an administrator's DSN for the pofr database.

Exit codes: 0 applied or already current; 1 error; 4 the database is newer
than this binary.

Example: pofr-server schema apply     (reads /etc/pofr-server/admin.dsn)`,
		Flags: func(fs *flag.FlagSet) {
			dsnFileFlag(fs, &dsnFile, "admin", "`file` holding the administrator's DSN")
		},
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			db, err := openDSNFile(dsnFile)
			if err != nil {
				return err
			}
			defer db.Close()
			applied, err := schema.Apply(ctx, db)
			if errors.Is(err, schema.ErrNewer) {
				return cli.Exit(4, err)
			}
			if err != nil {
				return err
			}
			now := time.Now()
			added, err := schema.EnsurePartitions(ctx, db, now, now.AddDate(0, 0, partitionAhead))
			if err != nil {
				return err
			}
			env.Log.Info("schema applied", "migrations", applied, "version", schema.Latest(), "partitions_added", added)
			warnings, err := schema.StorageWarnings(ctx, db)
			if err != nil {
				return err
			}
			for _, w := range warnings {
				env.Log.Warn("event tables: "+w, "tables", schema.PageCompressedTables)
			}
			return nil
		},
	}, adminDSN))

	var usersDSN, loaderPW, readerPW, loaderUser, readerUser, host string
	var usersShard string       // the shard of this run, with a shard map
	madePW := map[string]bool{} // password files made by this command
	cmds = append(cmds, perShardEach(&cli.Command{
		Name:    "schema users",
		Summary: "create the least-privilege loader and reader accounts",
		Usage:   "--dsn-file F --loader-password-file F [--reader-password-file F]",
		Help: `Creates (or updates the password and privileges of) two accounts on the
database named in the administrator's DSN:

  loader (default pofr_loader): SELECT on the database; INSERT on the event
          tables, segments, quarantine and hosts; UPDATE only of
          segments.chain_ok and the hosts columns copied from the registry.
          Enough for pofr-server load (LOAD DATA LOCAL needs INSERT, not
          FILE), not enough to rewrite or delete a loaded row.
  reader (default pofr_reader): SELECT, SHOW VIEW, for analysts.

Neither gets FILE, SUPER, DELETE or any DDL: schema apply, retention (which adds
and drops partitions) and purges run with the administrator's DSN. Apply the
schema first: the loader's grants name its tables. Passwords are read from
files and sent to the server only as mysql_native_password hashes. A password
file that does not exist is created with a new random password (mode 0600),
and the account's DSN (the administrator's address and database) is written
to loader.dsn and reader.dsn beside the password files, where load, query and
export look by default, unless that file exists and the password is not new.
With a shard map the accounts are made on every shard (one password for all)
and the DSN files are named loader-SHARD.dsn and reader-SHARD.dsn: point the
map's loader_dsn_files and reader_dsn_file at them (a Galera shard's other
nodes need their own address in their loader DSN file).

Exit codes: 0 done; 1 error; 2 usage.

Example: pofr-server schema users \
    --loader-password-file /etc/pofr-server/loader.pw --reader-password-file /etc/pofr-server/reader.pw`,
		Flags: func(fs *flag.FlagSet) {
			dsnFileFlag(fs, &usersDSN, "admin", "`file` holding the administrator's DSN")
			fs.StringVar(&loaderPW, "loader-password-file", "", "`file` holding the loader account's password")
			fs.StringVar(&readerPW, "reader-password-file", "", "`file` holding the reader account's password (omit to skip the reader)")
			fs.StringVar(&loaderUser, "loader-user", "pofr_loader", "loader account `name`")
			fs.StringVar(&readerUser, "reader-user", "pofr_reader", "reader account `name`")
			fs.StringVar(&host, "host", "localhost", "host part of both accounts: localhost (unix socket), an address, or %")
		},
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			dsn, err := readDSNFile(usersDSN)
			if err != nil {
				return err
			}
			cfg, err := mysql.ParseDSN(dsn)
			if err != nil {
				return fmt.Errorf("parse DSN: %w", err)
			}
			if cfg.DBName == "" {
				return errors.New("the DSN names no database (user:pw@unix(/sock)/pofr)")
			}
			if loaderPW == "" {
				return cli.Usagef("--loader-password-file is required")
			}
			u := schema.Users{Host: host, Loader: loaderUser}
			loaderNew, err := ensureSecretFile(loaderPW)
			if err != nil {
				return err
			}
			if u.LoaderPassword, err = readSecretFile("loader-password-file", loaderPW); err != nil {
				return err
			}
			var readerNew bool
			if readerPW != "" {
				u.Reader = readerUser
				if readerNew, err = ensureSecretFile(readerPW); err != nil {
					return err
				}
				if u.ReaderPassword, err = readSecretFile("reader-password-file", readerPW); err != nil {
					return err
				}
			}
			db, err := loader.OpenDB(dsn)
			if err != nil {
				return err
			}
			defer db.Close()
			if err := schema.CreateUsers(ctx, db, cfg.DBName, u); err != nil {
				return err
			}
			env.Log.Info("accounts ready", "database", cfg.DBName, "loader", u.Loader, "reader", u.Reader, "host", u.Host)
			suffix := ".dsn"
			if usersShard != "" {
				suffix = "-" + usersShard + ".dsn"
				// The password files serve every shard: a password made
				// at an earlier shard's run is new for this one's DSN too.
				loaderNew, readerNew = loaderNew || madePW[loaderPW], readerNew || madePW[readerPW]
				madePW[loaderPW], madePW[readerPW] = loaderNew, readerNew
			}
			if err := writeAccountDSN(env, cfg, loaderPW, "loader"+suffix, u.Loader, u.LoaderPassword, loaderNew); err != nil {
				return err
			}
			if u.Reader != "" {
				return writeAccountDSN(env, cfg, readerPW, "reader"+suffix, u.Reader, u.ReaderPassword, readerNew)
			}
			return nil
		},
	}, adminDSN, nil, func(s fleet.Shard) { usersShard = s.Name }))

	cmds = append(cmds, &cli.Command{
		Name:    "schema print",
		Summary: "print the SQL of every migration and of the views",
		Usage:   "",
		Help: `Writes the embedded migrations, in order, and then the views (views.sql) to
standard output: the schema with a COMMENT on every column. Apply them with 'schema apply', not by hand, so
that schema_version stays right.

Exit codes: 0; 1 write error.`,
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			return schema.Print(env.Stdout)
		},
	})
	return cmds
}
