package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/pofr/pofr/fleet"
	"github.com/pofr/pofr/internal/cli"
	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/internal/statedir"
)

// openRegistry returns the host registry: the MariaDB registry that m's
// "registry" entry names, else the files under state. close releases it.
func openRegistry(ctx context.Context, state statedir.Dir, m *fleet.Map) (reg registry.Store, close func(), err error) {
	if m == nil || m.Registry == nil {
		return registry.NewFiles(state), func() {}, nil
	}
	db, err := openDSNFile(m.Registry.DSNFile)
	if err != nil {
		return nil, nil, fmt.Errorf("registry: %w", err)
	}
	r, err := registry.OpenDB(ctx, db, state)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return r, func() { db.Close() }, nil
}

// openRegistryMap loads the shard map in shardsFile (absent default file:
// none) and opens the registry it names.
func openRegistryMap(ctx context.Context, state statedir.Dir, shardsFile string) (registry.Store, *fleet.Map, func(), error) {
	m, err := loadShards(shardsFile)
	if err != nil {
		return nil, nil, nil, err
	}
	reg, closeReg, err := openRegistry(ctx, state, m)
	if err != nil {
		return nil, nil, nil, err
	}
	return reg, m, closeReg, nil
}

// withRegistry runs fn with the registry the shard map in shardsFile
// names (the file registry under state without one).
func withRegistry(ctx context.Context, state statedir.Dir, shardsFile string, fn func(registry.Store) error) error {
	reg, _, closeReg, err := openRegistryMap(ctx, state, shardsFile)
	if err != nil {
		return err
	}
	defer closeReg()
	return fn(reg)
}

// registryCommands are the "pofr-server registry …" commands.
func registryCommands() []*cli.Command {
	var stateDir statedir.Dir
	var shardsFile string
	return []*cli.Command{{
		Name:    "registry import",
		Summary: "copy the file registry into the shared MariaDB registry",
		Usage:   "[--state-dir D] [--shards FILE]",
		Help: `Copies the host registry kept in files under --state-dir (hosts, keys,
shard assignments, registration requests, tokens) into the MariaDB
registry that the shard map's "registry" entry names, creating its tables
if needed. Entries already in the database are kept as they are and
counted as skipped, so the command can run again (or once per server when
several servers each had their own files). Run it with the receivers
stopped, then start every receiver with the shard map.

Exit codes: 0 imported, 1 error, 2 usage (no registry in the map).`,
		Flags: func(fs *flag.FlagSet) {
			stateDirFlag(fs, &stateDir, "server state `dir`ectory holding the file registry")
			shardsFlag(fs, &shardsFile)
		},
		NoArgs: true,
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			m, err := loadShards(shardsFile)
			if err != nil {
				return err
			}
			if m == nil || m.Registry == nil {
				return cli.Usagef("the shard map %s has no \"registry\" entry to import into", shardsFile)
			}
			reg, closeReg, err := openRegistry(ctx, stateDir, m)
			if err != nil {
				return err
			}
			defer closeReg()
			sum, err := registry.Import(reg, registry.NewFiles(stateDir))
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "imported %d hosts, %d requests, %d tokens; skipped %d already there\n",
				sum.Hosts, sum.Requests, sum.Tokens, sum.Skipped)
			return nil
		},
	}}
}

// registryOf runs fn with the registry of a command wrapped by perShard,
// whose --shards flag the wrapper declares on fs.
func registryOf(ctx context.Context, fs *flag.FlagSet, state statedir.Dir, fn func(registry.Store) error) error {
	f := fs.Lookup("shards")
	if f == nil {
		return fn(registry.NewFiles(state))
	}
	return withRegistry(ctx, state, f.Value.String(), fn)
}
