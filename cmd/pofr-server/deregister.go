package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/pofr/pofr/custody"
	"github.com/pofr/pofr/internal/cli"
	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/receiver"
)

// deregisterCommand is "pofr-server deregister".
func deregisterCommand() *cli.Command {
	var stateDir statedir.Dir
	var fset *flag.FlagSet
	var dsnFile string
	var purge, purgeRows bool
	var batch int
	return &cli.Command{
		Name:    "deregister",
		Summary: "revoke a host",
		Usage:   "[--purge] [--purge-rows --dsn-file F [--batch N]] [--state-dir D] HOST",
		Help: `Revokes HOST: its upload key is removed from the registry and it can no
longer log in (connections already open end at their next upload). Its
registry entry stays, marked revoked, so that its loaded data keep their
meaning. Segments of the host still in its inbox are not loaded: the loader
quarantines them (class revoked_host, reason "revoked host").

With --purge its inbox, archive and quarantine directories are deleted too
(evidence included: think first).

Without --purge-rows the host's rows in MariaDB are kept, as evidence. With
--purge-rows (and --dsn-file) they are deleted: its events (proc_events,
file_events, sock_events, dns_events), gaps, accounts, quarantine rows and custody
ledger (segments); the hosts row stays, status revoked. Rows go --batch at a
time, each batch its own short transaction, so loaders and analysts are not
locked out while a big host is purged; a purge cut short is finished by
running the command again. Deleting needs DELETE: use the administrator's
DSN, not the loader's.

Exit codes: 0 revoked (and purged); 1 error (unknown host, database); 2 usage.

Example: pofr-server deregister --purge-rows --dsn-file /etc/pofr-server/admin.dsn web-3`,
		Flags: func(fs *flag.FlagSet) {
			fset = fs
			stateDirFlag(fs, &stateDir, "server state `dir`ectory")
			fs.BoolVar(&purge, "purge", false, "also delete the host's inbox, archive and quarantine")
			fs.BoolVar(&purgeRows, "purge-rows", false, "also delete the host's rows from the database (needs --dsn-file)")
			fs.StringVar(&dsnFile, "dsn-file", "", "`file` holding the administrator's DSN (for --purge-rows)")
			fs.IntVar(&batch, "batch", custody.DefaultPurgeBatch, "rows deleted per statement with --purge-rows")
		},
		Arg: "host id",
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			host := args[0]
			if purgeRows && dsnFile == "" {
				return cli.Usagef("--purge-rows needs --dsn-file")
			}
			if !purgeRows && dsnFile != "" {
				return cli.Usagef("--dsn-file is only used with --purge-rows")
			}
			if batch <= 0 {
				return cli.Usagef("--batch %d: want a positive number", batch)
			}
			var purgeHost func() (map[string]int64, error)
			if purgeRows {
				// Reach the database before revoking, so that a wrong DSN
				// fails before anything changed.
				db, err := openDSNFile(dsnFile)
				if err != nil {
					return err
				}
				defer db.Close()
				if err := db.PingContext(ctx); err != nil {
					return fmt.Errorf("connect to database: %w", err)
				}
				purgeHost = func() (map[string]int64, error) { return custody.PurgeHost(ctx, db, host, batch, env.Log) }
			}
			if err := registryOf(ctx, fset, stateDir, func(reg registry.Store) error { return receiver.Revoke(reg, host, purge) }); err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "revoked %s\n", host)
			if purge {
				fmt.Fprintf(env.Stdout, "deleted its inbox, archive and quarantine\n")
			}
			if purgeHost == nil {
				fmt.Fprintln(env.Stdout, "database rows are kept as evidence (--purge-rows deletes them)")
				return nil
			}
			deleted, err := purgeHost()
			var total int64
			for _, t := range custody.PurgeTables {
				total += deleted[t]
			}
			env.Log.Info("purged host rows", "host", host, "rows", total, "per_table", deleted)
			if err != nil {
				return fmt.Errorf("%w (run the command again to finish)", err)
			}
			fmt.Fprintf(env.Stdout, "deleted %d database rows of %s:", total, host)
			for _, t := range custody.PurgeTables {
				fmt.Fprintf(env.Stdout, " %s %d", t, deleted[t])
			}
			fmt.Fprintln(env.Stdout)
			return nil
		},
	}
}
