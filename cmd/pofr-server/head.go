package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"strings"

	"github.com/pofr/pofr/fleet"
	"github.com/pofr/pofr/internal/cli"
	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/internal/statedir"
)

// headCommand is "pofr-server head apply".
func headCommand() *cli.Command {
	var path string
	var stateDir statedir.Dir
	var dryRun bool
	return &cli.Command{
		Name:    "head apply",
		Summary: "build or refresh the Spider head over the shards of the shard map",
		Usage:   "[--shards FILE] [--state-dir D] [--dry-run]",
		Help: `Connects to the head of the shard map (head.admin_dsn_file; the Spider
plugin is installed if missing) and (re)creates there: one CREATE SERVER per
shard (connecting with the shard's reader DSN file, else its admin DSN file:
it must name an address the head can reach), every base table of the first
shard as a Spider table partitioned by LIST COLUMNS(host_id), one partition
per shard listing its hosts (from the registry), with host_id added to the
primary and unique keys, and the shard's views. Tables come from the shard
itself (information_schema, SHOW CREATE TABLE), so a new migration needs
only 'schema apply' on every shard and then 'head apply'. A table without
host_id links to the first shard only.

The head holds no data: re-creating its tables copies nothing. Run it again
after hosts register (until then per-host queries through the head
find none of a new host's rows)
or a shard is added. --dry-run prints the statements (with the passwords
of the shard DSNs) instead of running them.

Exit codes: 0 applied, 1 error, 2 usage.`,
		Flags: func(fs *flag.FlagSet) {
			shardsFlag(fs, &path)
			stateDirFlag(fs, &stateDir, "server state `dir`ectory (the registry)")
			fs.BoolVar(&dryRun, "dry-run", false, "print the statements instead of running them")
		},
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			if len(args) != 0 {
				return cli.Usagef("unexpected arguments %q", args)
			}
			m, err := fleet.Load(path)
			if err != nil {
				return err
			}
			if m.Head == nil {
				return fmt.Errorf("%s has no head", path)
			}
			reg, closeReg, err := openRegistry(ctx, stateDir, m)
			if err != nil {
				return err
			}
			defer closeReg()
			stmts, err := headStatements(ctx, m, reg)
			if err != nil {
				return err
			}
			if dryRun {
				for _, s := range stmts {
					fmt.Fprintln(env.Stdout, s+";")
				}
				return nil
			}
			db, err := openDSNFile(m.Head.AdminDSNFile)
			if err != nil {
				return err
			}
			defer db.Close()
			n, err := applyHead(ctx, db, stmts)
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "head: %d shards, %d statements\n", len(m.Shards), n)
			return nil
		},
	}
}

// headStatements builds the head's statements from the first shard's schema
// and the registry's assignment of hosts to shards.
func headStatements(ctx context.Context, m *fleet.Map, reg registry.Store) ([]string, error) {
	sdb, err := openDSNFile(m.Shards[0].AdminDSNFile)
	if err != nil {
		return nil, err
	}
	defer sdb.Close()
	sch, err := fleet.ReadShardSchema(ctx, sdb)
	if err != nil {
		return nil, fmt.Errorf("shard %s: %w", m.Shards[0].Name, err)
	}
	hosts, err := reg.Hosts()
	if err != nil {
		return nil, err
	}
	byShard := map[string][]string{}
	for _, h := range hosts {
		if h.Shard != "" {
			byShard[h.Shard] = append(byShard[h.Shard], h.HostID)
		}
	}
	servers := map[string]string{}
	var parts []fleet.Part
	for _, s := range m.Shards {
		f := s.ReaderDSNFile
		if f == "" {
			f = s.AdminDSNFile
		}
		dsn, err := readDSNFile(f)
		if err != nil {
			return nil, err
		}
		servers[s.Name] = dsn
		if len(byShard[s.Name]) > 0 {
			parts = append(parts, fleet.Part{Shard: s.Name, Hosts: byShard[s.Name]})
		}
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("no host is assigned a shard yet; register hosts (or 'shards pin') first")
	}
	return fleet.HeadStatements(sch, servers, parts)
}

// applyHead runs stmts on one connection of the head, installing Spider
// first if needed. Views that name views not created yet are retried until
// every one is in.
func applyHead(ctx context.Context, db *sql.DB, stmts []string) (int, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	var spider int
	if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.ENGINES WHERE ENGINE = 'SPIDER' AND SUPPORT IN ('YES', 'DEFAULT')").Scan(&spider); err != nil {
		return 0, err
	}
	if spider == 0 {
		if _, err := conn.ExecContext(ctx, "INSTALL SONAME 'ha_spider'"); err != nil {
			return 0, fmt.Errorf("head: install the Spider plugin (package mariadb-plugin-spider): %w", err)
		}
	}
	var views []string
	for _, s := range stmts {
		if strings.HasPrefix(s, "CREATE OR REPLACE ALGORITHM") || strings.HasPrefix(s, "CREATE OR REPLACE VIEW") {
			views = append(views, s)
			continue
		}
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return 0, fmt.Errorf("head: %.120s: %w", s, err)
		}
	}
	for len(views) > 0 {
		var again []string
		var last error
		for _, v := range views {
			if _, err := conn.ExecContext(ctx, v); err != nil {
				again, last = append(again, v), err
			}
		}
		if len(again) == len(views) {
			return 0, fmt.Errorf("head: %d views fail: %w", len(again), last)
		}
		views = again
	}
	return len(stmts), nil
}
