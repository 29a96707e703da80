package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/pofr/pofr/alert"
	"github.com/pofr/pofr/internal/cli"
	"github.com/pofr/pofr/loader"
)

// alertCommand is "pofr-server alert".
func alertCommand() *cli.Command {
	var (
		dsnFile, rules string
		watch          time.Duration
	)
	return &cli.Command{
		Name:    "alert",
		Summary: "run alert rules (silent hosts, gaps, chain breaks, quarantines, revoked hosts, saved SQL) and fire new matches once",
		Usage:   "--rules F [--dsn-file F] [--watch 1m]",
		Help: `Evaluates the rules of a JSON rules file against the database and sends
every match not fired before to the file's sinks: a webhook (JSON POST,
retried with backoff), syslog (RFC 5424 over udp, tcp or a unix socket) or
a command (the alert as JSON on its standard input). Each match fires once:
the alerts_fired table holds one row per (rule, match), inserted before the
alert is sent, so two servers running the same rules do not double-fire;
when no sink takes an alert its row is deleted and the next run retries.

Rule kinds: host_silent (an active host's newest data older than "after"),
gap (gap rows, "reasons": sources), chain_break, quarantine ("reasons":
classes), revoked_host, and sql: a saved SELECT over the views, run in a
read-only transaction, each row a match keyed by its alert_key column or
all its columns. docs/operations.md shows a rules file.

It needs the loader account (INSERT and DELETE on alerts_fired; see
'schema users'). Run it from cron (one pass) or with --watch. SIGTERM or
SIGINT stops it after the alert being sent reached its sinks (at most a
minute), so an alert the receiver took is never fired again.

Exit codes: 0 done; 1 error (a rule failed, or an alert reached no sink);
2 usage.`,
		Flags: func(fs *flag.FlagSet) {
			dsnFileFlag(fs, &dsnFile, "loader", "`file` holding the loader account's DSN")
			fs.StringVar(&rules, "rules", "/etc/pofr-server/alerts.json", "rules `file` (JSON)")
			fs.DurationVar(&watch, "watch", 0, "keep running, a pass every `interval` (0: one pass)")
		},
		NoArgs: true,
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			cfg, err := alert.Load(rules)
			if err != nil {
				return err
			}
			var sinks []alert.Sender
			for _, s := range cfg.Sinks {
				snd, err := alert.NewSender(s)
				if err != nil {
					return err
				}
				sinks = append(sinks, snd)
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
			r := &alert.Runner{DB: db, Rules: cfg.Rules, Sinks: sinks, Log: env.Log}
			if watch > 0 {
				if err := r.Watch(ctx, watch); !errors.Is(err, context.Canceled) {
					return err
				}
				return nil
			}
			sum, err := r.Run(ctx)
			fmt.Fprintf(env.Stdout, "alert: %d matches, %d fired, %d not delivered\n", sum.Matches, sum.Fired, sum.Failed)
			return err
		},
	}
}
