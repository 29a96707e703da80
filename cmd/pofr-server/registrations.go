package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pofr/pofr/internal/cli"
	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/query"
	"github.com/pofr/pofr/receiver"
	"github.com/pofr/pofr/wire"
)

// registrationsCommands are the "pofr-server registrations …" commands.
func registrationsCommands() []*cli.Command {
	var cmds []*cli.Command
	var stateDir statedir.Dir
	var reason string
	var all bool
	var shardsFile, pinShard string
	stateFlag := func(fs *flag.FlagSet) {
		stateDirFlag(fs, &stateDir, "server state `dir`ectory")
		shardsFlag(fs, &shardsFile)
	}
	cmds = append(cmds, &cli.Command{
		Name:    "registrations list",
		Summary: "list registration requests",
		Usage:   "[--all] [--state-dir D]",
		Help:    "Lists pending registration requests (with --all, decided ones too), oldest first.\n\nExit codes: 0 listed, 1 error.",
		Flags: func(fs *flag.FlagSet) {
			stateFlag(fs)
			fs.BoolVar(&all, "all", false, "also list granted and denied requests")
		},
		NoArgs: true,
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			var rs []*receiver.Registration
			err := withRegistry(ctx, stateDir, shardsFile, func(reg registry.Store) (err error) {
				rs, err = receiver.ListRegistrations(reg)
				return err
			})
			if err != nil {
				return err
			}
			return writeRegistrations(env.Stdout, rs, all)
		},
	})
	cmds = append(cmds, &cli.Command{
		Name:    "registrations approve",
		Summary: "approve a pending registration request",
		Usage:   "[--state-dir D] [--shards FILE] [--shard NAME] REQUEST",
		Help: `Grants the request: assigns a host id, writes the host registry and
creates the host's inbox; with a shard map, assigns the host its shard
(--shard NAME pins it there, else its pin, else the least-loaded open
shard). The host learns it at its next 'register'. A
request that duplicates an active host (same machine-id, DMI uuid or key) is
refused unless the host asked to replace it; then the old host is revoked.

Exit codes: 0 approved, 1 error (unknown, decided or duplicate request).`,
		Flags: func(fs *flag.FlagSet) {
			stateFlag(fs)
			fs.StringVar(&pinShard, "shard", "", "with a shard map: pin the new host to shard `name` (default: least-loaded)")
		},
		Arg: "request id",
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			reg, shards, closeReg, err := openRegistryMap(ctx, stateDir, shardsFile)
			if err != nil {
				return err
			}
			defer closeReg()
			if pinShard != "" && (shards == nil || shards.Shard(pinShard) == nil) {
				return cli.Usagef("--shard %q: not in a shard map", pinShard)
			}
			r, err := receiver.Approve(reg, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "approved %s: host id %s (%s)\n", r.RequestID, r.HostID, r.Facts.Hostname)
			if shards != nil {
				if pinShard != "" {
					if err := shards.Pin(r.HostID, pinShard); err != nil {
						return err
					}
					if err := shards.Save(shardsFile); err != nil {
						return err
					}
				}
				s, err := receiver.AssignShard(reg, shards, r.HostID)
				if err != nil {
					return err
				}
				fmt.Fprintf(env.Stdout, "host %s is on shard %s\n", r.HostID, s)
			}
			if len(r.Replaces) > 0 {
				fmt.Fprintf(env.Stdout, "host %s replaces %s (revoked)\n", r.HostID, strings.Join(r.Replaces, ", "))
				env.Log.Warn("host replaced", "host_id", r.HostID, "replaced_host_ids", r.Replaces, "request", r.RequestID, "by", receiver.ByAdmin)
			}
			return nil
		},
	})
	cmds = append(cmds, &cli.Command{
		Name:    "registrations deny",
		Summary: "deny a pending registration request",
		Usage:   "[--reason TEXT] [--state-dir D] REQUEST",
		Help:    "Denies the request; the host prints the reason at its next 'register'.\n\nExit codes: 0 denied, 1 error.",
		Flags: func(fs *flag.FlagSet) {
			stateFlag(fs)
			fs.StringVar(&reason, "reason", "", "reason shown to the host")
		},
		Arg: "request id",
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			var r *receiver.Registration
			err := withRegistry(ctx, stateDir, shardsFile, func(reg registry.Store) (err error) {
				r, err = receiver.Deny(reg, args[0], reason)
				return err
			})
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
	cmds = append(cmds, &cli.Command{
		Name:    "registrations hosts",
		Summary: "list the registered hosts (from the registry, no database needed)",
		Usage:   "[--state-dir D]",
		Help: `Lists every host in the registry, active and revoked, whether registered
through serve or added by hand: its id, status, name, when it was registered,
its upload key fingerprint, and where its inbox is when that is a link (an
OpenSSH account's inbox, see 'registrations add').

Exit codes: 0 listed, 1 error.`,
		Flags:  stateFlag,
		NoArgs: true,
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			var hs []*registry.Host
			err := withRegistry(ctx, stateDir, shardsFile, func(reg registry.Store) (err error) {
				hs, err = reg.Hosts()
				return err
			})
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "HOST-ID\tSTATUS\tHOSTNAME\tREGISTERED\tKEY\tINBOX")
			for _, h := range hs {
				inbox := "-"
				if dst, err := os.Readlink(stateDir.Host(h.HostID).Inbox); err == nil {
					inbox = dst
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", h.HostID, h.Status, regDash(query.SafeString(h.Hostname)),
					h.RegisteredAt.Format("2006-01-02T15:04:05Z"), regDash(wire.Fingerprint(h.SSHKey)), query.SafeString(inbox))
			}
			return tw.Flush()
		},
	})
	var man receiver.ManualHost
	cmds = append(cmds, &cli.Command{
		Name:    "registrations add",
		Summary: "register a host by hand (hosts that push to a stock OpenSSH sshd)",
		Usage:   "--host-id ID --ssh-key LINE --signing-key LINE [--inbox DIR] [--hostname H] [--state-dir D]",
		Help: `Adds an active host to the registry without a registration request, for
sites whose hosts push to a stock OpenSSH sshd instead of 'serve'
(docs/transport.md). Run 'pofr-collector keys' on the host: it prints the two
public key lines and this command, ready to paste.

--inbox is the directory the host's OpenSSH account uploads to (its chroot
inbox); the host's inbox in the state directory becomes a symbolic link to it,
and the loader moves each loaded segment from there into the archive.

Refuses an id that is or was registered, and keys an active host uses.

Exit codes: 0 added, 1 error, 2 usage.

Example:
  pofr-server registrations add --host-id web-01 --hostname web01.example.org \
    --ssh-key 'ssh-ed25519 AAAA… pofr upload key' \
    --signing-key 'ssh-ed25519 AAAA… pofr segment signing key' \
    --inbox /srv/pofr-sftp/pofr-web01/inbox`,
		Flags: func(fs *flag.FlagSet) {
			stateFlag(fs)
			fs.StringVar(&man.HostID, "host-id", "", "the host's `id` (as in its server.json)")
			fs.StringVar(&man.Hostname, "hostname", "", "the host's name, for listings")
			fs.StringVar(&man.MachineID, "machine-id", "", "the host's /etc/machine-id, for duplicate checks")
			fs.StringVar(&man.SSHKey, "ssh-key", "", "upload key: the `line` 'pofr-collector keys' prints")
			fs.StringVar(&man.SigningKey, "signing-key", "", "segment signing key: the `line` 'pofr-collector keys' prints")
			fs.StringVar(&man.Inbox, "inbox", "", "the host's OpenSSH upload `dir`ectory, to link as its inbox")
		},
		NoArgs: true,
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			if man.HostID == "" || man.SSHKey == "" || man.SigningKey == "" {
				return cli.Usagef("--host-id, --ssh-key and --signing-key are required")
			}
			var h *registry.Host
			err := withRegistry(ctx, stateDir, shardsFile, func(reg registry.Store) (err error) {
				h, err = receiver.AddManual(reg, man, time.Now())
				return err
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "added host %s (upload key %s)\n", h.HostID, wire.Fingerprint(h.SSHKey))
			if man.Inbox != "" {
				fmt.Fprintf(env.Stdout, "inbox %s → %s\n", stateDir.Host(h.HostID).Inbox, man.Inbox)
			}
			return nil
		},
	})
	return cmds
}

func regDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// writeRegistrations prints the requests as a table. Everything a host sent
// is escaped as query output is (C1 controls, bidi overrides, invalid
// UTF-8…), so that a hostname cannot spoof what the admin approves.
func writeRegistrations(w io.Writer, rs []*receiver.Registration, all bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REQUEST\tSTATUS\tCREATED\tHOSTNAME\tFROM\tMACHINE-ID\tKEY\tREPLACE\tHOST-ID\tREASON")
	safe := query.SafeString
	for _, r := range rs {
		if !all && r.Status != wire.StatusPending {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%v\t%s\t%s\n", safe(r.RequestID), safe(string(r.Status)),
			r.CreatedAt.Format("2006-01-02T15:04:05Z"), regDash(safe(r.Facts.Hostname)), regDash(safe(r.RemoteAddr)),
			regDash(safe(r.Facts.MachineID)), safe(r.Fingerprint()), r.Replace, regDash(safe(r.HostID)), regDash(safe(r.Reason)))
	}
	return tw.Flush()
}
