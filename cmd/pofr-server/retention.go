package main

import (
	"context"
	"flag"
	"time"

	"github.com/pofr/pofr/custody"
	"github.com/pofr/pofr/internal/cli"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/schema"
)

// retentionCommand is "pofr-server retention".
func retentionCommand() *cli.Command {
	var dsnFile, keep, archiveKeep string
	var stateDir statedir.Dir
	var ahead int
	var dryRun bool
	return &cli.Command{
		Name:    "retention",
		Summary: "drop event partitions and archived files older than --keep, add the coming days' partitions",
		Usage:   "--dsn-file F --keep 90d [--archive-keep 1y|0] [--state-dir D] [--ahead 7] [--dry-run]",
		Help: `Drops the day partitions of proc_events, file_events, sock_events and dns_events whose
whole UTC day is older than --keep, and creates the partitions of the next
--ahead days (run it daily from cron). Dropping a partition is instant and
frees the space at once; the custody ledger (segments), gaps, accounts and
quarantine rows are kept. Partition DDL needs ALTER and DROP: use the
administrator's DSN, not the loader's.

It then deletes the evidence files older than --archive-keep (default: the
same period as --keep; 0 keeps them forever):

  state-dir/archive/HOST/     an archived segment is as old as its newest
                              event (the ledger's ts_to), so with equal
                              periods a segment's file goes with the
                              partitions of its rows; copying or restoring
                              the archive (which changes mtimes) does not
                              renew it. Its ledger row stays and gets
                              segments.archive_removed_at, so 'verify
                              --archive' counts it expired, not missing. A
                              file without a ledger row is aged by its mtime.
  state-dir/quarantine/HOST/  a refused file is as old as its .reason file
                              (when it was quarantined); both go. The
                              quarantine table's rows stay.

What was removed is logged, one line per host (files and bytes; each file
with --log-level debug); the ledger's archive_removed_at is the per-segment
record. --dry-run only adds the future partitions: it drops no partition and
deletes no file, and reports which files it would delete.

Exit codes: 0 done; 1 error; 2 usage.

Example (cron, daily): pofr-server retention --keep 90d --archive-keep 400d`,
		Flags: func(fs *flag.FlagSet) {
			dsnFileFlag(fs, &dsnFile, "admin", "`file` holding the administrator's DSN")
			fs.StringVar(&keep, "keep", "90d", "keep this `period` of events: 90d, 12w or a duration such as 2160h")
			fs.StringVar(&archiveKeep, "archive-keep", "", "keep archived and quarantined segment files this `period` (default: --keep; 0: forever)")
			stateDirFlag(fs, &stateDir, "server state `dir`ectory (archive/, quarantine/)")
			fs.IntVar(&ahead, "ahead", partitionAhead, "create partitions for this many `days` ahead")
			fs.BoolVar(&dryRun, "dry-run", false, "only add future partitions; drop and delete nothing, report the files that would go")
		},
		NoArgs: true,
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			period, err := schema.ParseKeep(keep)
			if err != nil {
				return cli.Usagef("--keep %q: %v", keep, err)
			}
			filePeriod, err := custody.ParseArchiveKeep(archiveKeep, period)
			if err != nil {
				return cli.Usagef("--archive-keep %q: %v (or 0 to keep the files forever)", archiveKeep, err)
			}
			db, err := openDSNFile(dsnFile)
			if err != nil {
				return err
			}
			defer db.Close()
			now := time.Now()
			added, err := schema.EnsurePartitions(ctx, db, now, now.AddDate(0, 0, ahead))
			if err != nil {
				return err
			}
			var dropped []string
			if !dryRun {
				if dropped, err = schema.DropPartitions(ctx, db, now.Add(-period)); err != nil {
					return err
				}
			}
			env.Log.Info("retention", "keep", period.String(), "partitions_added", added, "partitions_dropped", len(dropped), "dropped", dropped)
			if filePeriod == 0 {
				env.Log.Info("archive retention: files kept forever (--archive-keep 0)")
				return nil
			}
			sum, err := custody.PruneFiles(ctx, db, custody.PruneOptions{StateDir: stateDir, Before: now.Add(-filePeriod), DryRun: dryRun, Log: env.Log})
			env.Log.Info("archive retention", "archive_keep", filePeriod.String(), "dry_run", dryRun,
				"archive_files", sum.ArchiveFiles, "archive_bytes", sum.ArchiveBytes,
				"quarantine_files", sum.QuarantineFiles, "quarantine_bytes", sum.QuarantineBytes)
			return err
		},
	}
}
