package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/pofr/pofr/internal/cli"
	"github.com/pofr/pofr/receiver"
)

func init() {
	var stateDir string
	var purge bool
	cli.Register(prog, &cli.Command{
		Name:    "deregister",
		Summary: "revoke a host",
		Usage:   "[--purge] [--state-dir D] HOST",
		Help: `Revokes HOST: its upload key is removed from the registry and it can no
longer log in (connections already open end at their next upload). Its
registry entry stays, marked revoked, so that its loaded data keep their
meaning. With --purge its inbox, archive and quarantine directories are
deleted too (evidence included: think first).

Rows already in MariaDB are not touched here: the loader keeps or removes a
host's rows by its own explicit flag.

Exit codes: 0 revoked, 1 error (unknown host).`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&stateDir, "state-dir", receiver.DefaultStateDir, "server state `dir`ectory")
			fs.BoolVar(&purge, "purge", false, "also delete the host's inbox, archive and quarantine")
		},
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			if len(args) != 1 {
				return cli.Usagef("want one host id")
			}
			if err := receiver.Revoke(stateDir, args[0], purge); err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "revoked %s\n", args[0])
			if purge {
				fmt.Fprintf(env.Stdout, "deleted its inbox, archive and quarantine\n")
			}
			fmt.Fprintln(env.Stdout, "database rows are kept: remove them with the loader if wanted")
			return nil
		},
	})
}
