package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/pofr/pofr/fleet"
	"github.com/pofr/pofr/internal/cli"
	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/receiver"
)

// shardsFlag declares --shards (default fleet.DefaultFile) on fs.
func shardsFlag(fs *flag.FlagSet, p *string) {
	fs.StringVar(p, "shards", fleet.DefaultFile, "shard map `file` (absent default file: one server, no shards)")
}

// loadShards reads the shard map in path: nil, nil when the default file
// is absent (single-server mode); an error when a named file is.
func loadShards(path string) (*fleet.Map, error) {
	m, err := fleet.Load(path)
	if errors.Is(err, fleet.ErrNoMap) && path == fleet.DefaultFile {
		return nil, nil
	}
	return m, err
}

// loadMapRegistry reads the shard map in path, which must exist, and opens
// the registry it names; closeReg releases it.
func loadMapRegistry(ctx context.Context, path string, state statedir.Dir) (m *fleet.Map, reg registry.Store, closeReg func(), err error) {
	if m, err = fleet.Load(path); err != nil {
		return nil, nil, nil, err
	}
	if reg, closeReg, err = openRegistry(ctx, state, m); err != nil {
		return nil, nil, nil, err
	}
	return m, reg, closeReg, nil
}

// mapHosts reads the shard map in path, which must exist, and the hosts of
// the registry it names.
func mapHosts(ctx context.Context, path string, state statedir.Dir) (*fleet.Map, []*registry.Host, error) {
	m, reg, closeReg, err := loadMapRegistry(ctx, path, state)
	if err != nil {
		return nil, nil, err
	}
	defer closeReg()
	hosts, err := reg.Hosts()
	if err != nil {
		return nil, nil, err
	}
	return m, hosts, nil
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

// shardsCommands are the "pofr-server shards …" commands.
func shardsCommands() []*cli.Command {
	var path string
	var stateDir statedir.Dir
	common := func(fs *flag.FlagSet) {
		fs.StringVar(&path, "shards", fleet.DefaultFile, "shard map `file`")
		stateDirFlag(fs, &stateDir, "server state `dir`ectory")
	}
	var add fleet.Shard
	var loaders multiFlag
	return []*cli.Command{{
		Name:    "shards ls",
		Summary: "list the shards of the shard map and their hosts",
		Usage:   "[--shards FILE] [--state-dir D]",
		Help: `Lists each shard of the shard map: its name, active hosts (from the
registry), pinned hosts, whether it takes new hosts, and its DSN files.
Hosts without a shard (registered before the map existed) are counted
under "-"; 'load' assigns them.

Exit codes: 0 listed, 1 error (no or invalid map).`,
		Flags:  common,
		NoArgs: true,
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			m, hosts, err := mapHosts(ctx, path, stateDir)
			if err != nil {
				return err
			}
			n := map[string]int{}
			for _, h := range hosts {
				if h.Status == registry.StatusActive {
					n[h.Shard]++
				}
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SHARD\tHOSTS\tPINNED\tNEW HOSTS\tADMIN DSN FILE\tLOADER DSN FILES")
			for _, s := range m.Shards {
				open := "yes"
				if s.Closed {
					open = "no"
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", s.Name, n[s.Name], len(s.Pinned), open, s.AdminDSNFile, strings.Join(s.LoaderDSNFiles, ","))
			}
			if n[""] > 0 {
				fmt.Fprintf(tw, "-\t%d\t\t\t\t\n", n[""])
			}
			return tw.Flush()
		},
	}, {
		Name:    "shards add",
		Summary: "add a shard to the shard map",
		Usage:   "--admin-dsn-file F --loader-dsn-file F [--loader-dsn-file F…] [--reader-dsn-file F] [--shards FILE] NAME",
		Help: `Adds shard NAME ([a-z][a-z0-9_]*, at most 32 bytes) to the shard map,
creating the map if it does not exist. Give one --loader-dsn-file per
Galera node (tried in order). Existing hosts stay where they are; new hosts
go to the least-loaded shard, so a new shard fills first. Run
'schema apply --shard NAME' and then 'head apply' afterwards.

Exit codes: 0 added, 1 error (invalid map, name taken), 2 usage.`,
		Flags: func(fs *flag.FlagSet) {
			common(fs)
			fs.StringVar(&add.AdminDSNFile, "admin-dsn-file", "", "`file` holding the shard's admin DSN")
			fs.StringVar(&add.ReaderDSNFile, "reader-dsn-file", "", "`file` holding the shard's reader DSN (also the head's connection)")
			fs.Var(&loaders, "loader-dsn-file", "`file` holding the shard's loader DSN (repeat: one per Galera node)")
		},
		Arg: "shard name",
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			if !fleet.ValidName(args[0]) {
				return cli.Usagef("shard name %q: want [a-z][a-z0-9_]*, at most 32 bytes", args[0])
			}
			if add.AdminDSNFile == "" || len(loaders) == 0 {
				return cli.Usagef("--admin-dsn-file and --loader-dsn-file are required")
			}
			m, err := fleet.Load(path)
			if errors.Is(err, fleet.ErrNoMap) {
				m, err = &fleet.Map{}, nil
			}
			if err != nil {
				return err
			}
			if m.Shard(args[0]) != nil {
				return fmt.Errorf("shard %s exists", args[0])
			}
			add.Name, add.LoaderDSNFiles = args[0], loaders
			m.Shards = append(m.Shards, add)
			if err := m.Save(path); err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "added shard %s to %s\n", add.Name, path)
			return nil
		},
	}, {
		Name:    "shards rm",
		Summary: "remove a shard that holds no hosts from the shard map",
		Usage:   "[--shards FILE] [--state-dir D] NAME",
		Help: `Removes shard NAME from the shard map. A shard that any registered host
(active or revoked) is assigned to is refused: its rows are there. Run
'head apply' afterwards.

Exit codes: 0 removed, 1 error, 2 usage.`,
		Flags: common,
		Arg:   "shard name",
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			m, hosts, err := mapHosts(ctx, path, stateDir)
			if err != nil {
				return err
			}
			if m.Shard(args[0]) == nil {
				return fmt.Errorf("no shard %s in %s", args[0], path)
			}
			for _, h := range hosts {
				if h.Shard == args[0] {
					return fmt.Errorf("shard %s holds host %s; it cannot be removed", args[0], h.HostID)
				}
			}
			kept := m.Shards[:0]
			for _, s := range m.Shards {
				if s.Name != args[0] {
					kept = append(kept, s)
				}
			}
			m.Shards = kept
			if err := m.Save(path); err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "removed shard %s from %s\n", args[0], path)
			return nil
		},
	}, {
		Name:    "shards pin",
		Summary: "pin a host to a shard",
		Usage:   "[--shards FILE] [--state-dir D] HOST SHARD",
		Help: `Pins HOST to SHARD in the shard map. A host id not registered yet is
assigned SHARD when it is granted; a registered host without a shard gets
it now. A host already on another shard is refused: its rows are there
(pofr does not move rows between shards).

Exit codes: 0 pinned, 1 error, 2 usage.`,
		Flags: common,
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			if len(args) != 2 {
				return cli.Usagef("want HOST SHARD")
			}
			host, shard := args[0], args[1]
			m, reg, closeReg, err := loadMapRegistry(ctx, path, stateDir)
			if err != nil {
				return err
			}
			defer closeReg()
			h, err := reg.Host(host)
			switch {
			case errors.Is(err, registry.ErrNotFound):
			case err != nil:
				return err
			case h.Shard != "" && h.Shard != shard:
				return fmt.Errorf("host %s is on shard %s already; pofr does not move rows between shards", host, h.Shard)
			}
			if err := m.Pin(host, shard); err != nil {
				return err
			}
			if err := m.Save(path); err != nil {
				return err
			}
			if h != nil {
				if _, err := receiver.AssignShard(reg, m, host); err != nil {
					return err
				}
			}
			fmt.Fprintf(env.Stdout, "pinned %s to shard %s\n", host, shard)
			return nil
		},
	}}
}

// perShard makes c, a command that works on the database of its
// --dsn-file, run once per shard of the shard map (--shard NAME: one),
// with the DSN file pick chooses. Without a map, or with an explicit
// --dsn-file, c runs as before.
func perShard(c *cli.Command, pick func(fleet.Shard) string) *cli.Command {
	return perShardWhen(c, pick, nil)
}

// perShardWhen is perShard for a command that needs a database only
// sometimes: when when (given the parsed flags) says no, it runs once,
// without a DSN file.
func perShardWhen(c *cli.Command, pick func(fleet.Shard) string, when func(*flag.FlagSet) bool) *cli.Command {
	return perShardEach(c, pick, when, nil)
}

// perShardEach is perShardWhen that also tells each, before each shard's
// run, which shard it is.
func perShardEach(c *cli.Command, pick func(fleet.Shard) string, when func(*flag.FlagSet) bool, each func(fleet.Shard)) *cli.Command {
	var fs *flag.FlagSet
	var path, only string
	flags, run := c.Flags, c.Run
	c.Flags = func(f *flag.FlagSet) {
		flags(f)
		fs = f
		shardsFlag(f, &path)
		f.StringVar(&only, "shard", "", "with a shard map: only shard `name` (default: every shard, one after another)")
	}
	c.Help = strings.Replace(c.Help, "\n\nExit codes:", "\n\nWith a shard map (--shards) and no --dsn-file, runs once on every shard (or\nthe one --shard names) with the shard's own DSN file, printing \"shard NAME:\"\nfirst; never against a Spider head.\n\nExit codes:", 1)
	c.Run = func(ctx context.Context, env *cli.Env, args []string) error {
		explicit := false
		fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "dsn-file" })
		m, err := loadShards(path)
		if err != nil {
			return err
		}
		if when != nil && !when(fs) {
			if only != "" {
				return cli.Usagef("--shard is only used when the command works on the database")
			}
			return run(ctx, env, args)
		}
		if m == nil || explicit {
			if only != "" {
				return cli.Usagef("--shard needs a shard map and no --dsn-file")
			}
			return run(ctx, env, args)
		}
		shards, err := selectShards(m, only)
		if err != nil {
			return err
		}
		var errs []error
		for _, s := range shards {
			if err := fs.Set("dsn-file", pick(s)); err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "shard %s:\n", s.Name)
			if each != nil {
				each(s)
			}
			if err := run(ctx, env, args); err != nil {
				errs = append(errs, fmt.Errorf("shard %s: %w", s.Name, err))
			}
		}
		if len(errs) == 1 {
			return errs[0]
		}
		return errors.Join(errs...)
	}
	return c
}

// adminDSN picks a shard's admin DSN file; loaderDSN its first loader's.
func adminDSN(s fleet.Shard) string  { return s.AdminDSNFile }
func loaderDSN(s fleet.Shard) string { return s.LoaderDSNFiles[0] }
