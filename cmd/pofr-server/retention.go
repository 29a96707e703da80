package main

import (
	"context"
	"flag"
	"time"

	"github.com/pofr/pofr/internal/cli"
	"github.com/pofr/pofr/loader"
)

func init() {
	var dsnFile, keep string
	var ahead int
	var dryRun bool
	cli.Register(prog, &cli.Command{
		Name:    "retention",
		Summary: "drop event partitions older than --keep and add the coming days'",
		Usage:   "--dsn-file F --keep 90d [--ahead 7]",
		Help: `Drops the day partitions of proc_events, file_events and sock_events whose
whole UTC day is older than --keep, and creates the partitions of the next
--ahead days (run it daily from cron). Dropping a partition is instant and
frees the space at once; the custody ledger (segments), gaps, accounts and
quarantine rows are kept. Partition DDL needs ALTER and DROP: use the
administrator's DSN, not the loader's.

Exit codes: 0 done; 1 error; 2 usage.

Example (cron, daily): pofr-server retention --dsn-file /etc/pofr/admin.dsn --keep 90d`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&dsnFile, "dsn-file", "", "`file` holding the administrator's DSN")
			fs.StringVar(&keep, "keep", "90d", "keep this `period` of events: 90d, 12w or a duration such as 2160h")
			fs.IntVar(&ahead, "ahead", partitionAhead, "create partitions for this many `days` ahead")
			fs.BoolVar(&dryRun, "dry-run", false, "only add future partitions; report nothing dropped")
		},
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			period, err := loader.ParseKeep(keep)
			if err != nil {
				return cli.Usagef("--keep %q: %v", keep, err)
			}
			dsn, err := readDSNFile(dsnFile)
			if err != nil {
				return err
			}
			db, err := loader.OpenDB(dsn)
			if err != nil {
				return err
			}
			defer db.Close()
			now := time.Now()
			added, err := loader.EnsurePartitions(ctx, db, now, now.AddDate(0, 0, ahead))
			if err != nil {
				return err
			}
			var dropped []string
			if !dryRun {
				if dropped, err = loader.DropPartitions(ctx, db, now.Add(-period)); err != nil {
					return err
				}
			}
			env.Log.Info("retention", "keep", period.String(), "partitions_added", added, "partitions_dropped", len(dropped), "dropped", dropped)
			return nil
		},
	})
}
