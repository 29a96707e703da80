package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/pofr/pofr/internal/cli"
	"github.com/pofr/pofr/receiver"
	"github.com/pofr/pofr/uplink/wire"
)

func init() {
	var stateDir, reason string
	var all bool
	stateFlag := func(fs *flag.FlagSet) {
		fs.StringVar(&stateDir, "state-dir", receiver.DefaultStateDir, "server state `dir`ectory")
	}
	cli.Register(prog, &cli.Command{
		Name:    "registrations list",
		Summary: "list registration requests",
		Usage:   "[--all] [--state-dir D]",
		Help:    "Lists pending registration requests (with --all, decided ones too), oldest first.\n\nExit codes: 0 listed, 1 error.",
		Flags: func(fs *flag.FlagSet) {
			stateFlag(fs)
			fs.BoolVar(&all, "all", false, "also list granted and denied requests")
		},
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			if len(args) != 0 {
				return cli.Usagef("unexpected arguments %q", args)
			}
			rs, err := receiver.ListRegistrations(stateDir)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "REQUEST\tSTATUS\tCREATED\tHOSTNAME\tFROM\tMACHINE-ID\tKEY\tREPLACE\tHOST-ID\tREASON")
			for _, r := range rs {
				if !all && r.Status != wire.StatusPending {
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%v\t%s\t%s\n", r.RequestID, r.Status,
					r.CreatedAt.Format("2006-01-02T15:04:05Z"), r.Facts.Hostname, r.RemoteAddr, r.Facts.MachineID,
					r.Fingerprint(), r.Replace, regDash(r.HostID), regDash(r.Reason))
			}
			return tw.Flush()
		},
	})
	cli.Register(prog, &cli.Command{
		Name:    "registrations approve",
		Summary: "approve a pending registration request",
		Usage:   "[--state-dir D] REQUEST",
		Help: `Grants the request: assigns a host id, writes the host registry and
creates the host's inbox. The host learns it at its next 'register'. A
request that duplicates an active host (same machine-id, DMI uuid or key) is
refused unless the host asked to replace it; then the old host is revoked.

Exit codes: 0 approved, 1 error (unknown, decided or duplicate request).`,
		Flags: stateFlag,
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			if len(args) != 1 {
				return cli.Usagef("want one request id")
			}
			r, err := receiver.Approve(stateDir, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "approved %s: host id %s (%s)\n", r.RequestID, r.HostID, r.Facts.Hostname)
			if len(r.Replaces) > 0 {
				fmt.Fprintf(env.Stdout, "revoked replaced hosts: %s\n", strings.Join(r.Replaces, ", "))
			}
			return nil
		},
	})
	cli.Register(prog, &cli.Command{
		Name:    "registrations deny",
		Summary: "deny a pending registration request",
		Usage:   "[--reason TEXT] [--state-dir D] REQUEST",
		Help:    "Denies the request; the host prints the reason at its next 'register'.\n\nExit codes: 0 denied, 1 error.",
		Flags: func(fs *flag.FlagSet) {
			stateFlag(fs)
			fs.StringVar(&reason, "reason", "", "reason shown to the host")
		},
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			if len(args) != 1 {
				return cli.Usagef("want one request id")
			}
			r, err := receiver.Deny(stateDir, args[0], reason)
			if err != nil {
				if errors.Is(err, receiver.ErrNoRequest) {
					return cli.Exit(1, err)
				}
				return err
			}
			fmt.Fprintf(env.Stdout, "denied %s (%s): %s\n", r.RequestID, r.Facts.Hostname, r.Reason)
			return nil
		},
	})
}

func regDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
