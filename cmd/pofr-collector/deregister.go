package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"time"

	"github.com/pofr/pofr/internal/cli"
	"github.com/pofr/pofr/uplink"
)

// deregisterCommand is 'deregister'.
func deregisterCommand() *cli.Command {
	var (
		configDir string
		stateDir  string
		timeout   time.Duration
	)
	return &cli.Command{
		Name:    "deregister",
		Summary: "leave the pofr server and remove this host's keys",
		Usage:   "[--config-dir D] [--timeout 15s]",
		Help: `Tells the server (when it is reachable) that this host leaves, which
revokes its upload key there, then removes ssh.key, signing.key, server.json
and any pending registration from the configuration directory. A collector
running on --state-dir is stopped first (SIGTERM; it seals its open segment).
Unsent segments stay in the spool.

Exit codes: 0 done (the output says whether the server was told), 1 error.`,
		Flags: func(fs *flag.FlagSet) {
			configDirFlag(fs, &configDir)
			fs.StringVar(&stateDir, "state-dir", "/var/lib/pofr", "the collector's state directory")
			fs.DurationVar(&timeout, "timeout", 15*time.Second, "how long to try to reach the server")
		},
		NoArgs: true,
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			if pid, err := stopCollector(ctx, filepath.Join(stateDir, "collector.pid"), 30*time.Second); err != nil {
				return err
			} else if pid != 0 {
				fmt.Fprintf(env.Stdout, "stopped the collector (pid %d)\n", pid)
			}
			res, err := uplink.Deregister(ctx, configDir, timeout)
			if err != nil {
				return err
			}
			if res.Notified {
				fmt.Fprintln(env.Stdout, "server told: this host is revoked there")
			} else {
				fmt.Fprintf(env.Stdout, "server not told (%v); ask its admin to run 'pofr-server deregister HOST'\n", res.NotifyErr)
			}
			for _, p := range res.Removed {
				fmt.Fprintf(env.Stdout, "removed %s\n", p)
			}
			return nil
		},
	}
}
