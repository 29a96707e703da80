package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/pofr/pofr/internal/cli"
	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/receiver"
)

// tokenCommand is "pofr-server token create".
func tokenCommand() *cli.Command {
	var (
		stateDir   statedir.Dir
		shardsFile string
		ttl        time.Duration
	)
	return &cli.Command{
		Name:    "token create",
		Summary: "create a one-time registration token",
		Usage:   "[--ttl 24h] [--state-dir D]",
		Help: `Prints a new one-time token. A host that registers with it
(pofr-collector register --token-file F) is approved at once, also to replace
an active registration of the same machine when it asks with --replace. Only
the token's SHA-256 is stored, so it is shown once: copy it now. It expires
after --ttl or at its first successful use.

Exit codes: 0 printed, 1 error.`,
		Flags: func(fs *flag.FlagSet) {
			stateDirFlag(fs, &stateDir, "server state `dir`ectory")
			shardsFlag(fs, &shardsFile)
			fs.DurationVar(&ttl, "ttl", 24*time.Hour, "validity of the token")
		},
		NoArgs: true,
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			if ttl <= 0 {
				return cli.Usagef("--ttl must be positive")
			}
			var tok string
			err := withRegistry(ctx, stateDir, shardsFile, func(reg registry.Store) (err error) {
				tok, err = receiver.CreateToken(reg, ttl)
				return err
			})
			if err != nil {
				return err
			}
			fmt.Fprintln(env.Stdout, tok)
			env.Log.Info("token created", "expires", time.Now().Add(ttl).UTC().Format(time.RFC3339))
			return nil
		},
	}
}
