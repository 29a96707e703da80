package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/pofr/pofr/addrinfo"
	"github.com/pofr/pofr/fleet"
	"github.com/pofr/pofr/internal/cli"
	"github.com/pofr/pofr/internal/metrics"
	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/loader"
	"github.com/pofr/pofr/receiver"
	"github.com/prometheus/client_golang/prometheus"
)

// selectShards returns the shards of m a command acts on: the one named
// (--shard), or all.
func selectShards(m *fleet.Map, name string) ([]fleet.Shard, error) {
	if name == "" {
		return m.Shards, nil
	}
	if s := m.Shard(name); s != nil {
		return []fleet.Shard{*s}, nil
	}
	return nil, cli.Usagef("--shard %q: not in the shard map", name)
}

// shardHosts returns the host filter of shard name's loader: the hosts the
// registry assigns to it (a host without a shard is assigned one now), and
// hosts unknown to the registry when name is the map's first shard (its
// loader quarantines them).
func shardHosts(reg registry.Store, m *fleet.Map, name string) func(string) bool {
	return func(id string) bool {
		h, err := reg.Host(id)
		if err != nil {
			return name == m.Shards[0].Name
		}
		s := h.Shard
		if s == "" {
			if s, err = receiver.AssignShard(reg, m, id); err != nil {
				return false
			}
		}
		return s == name
	}
}

// runShards is "load" with a shard map: one loader per shard, in
// parallel, each with its own workers, lock and database, loading only the
// hosts assigned to its shard straight into the shard (LOAD DATA LOCAL on
// the shard, never through a head). A shard that is down fails its own
// pass and delays only its hosts.
func (o *loadOptions) runShards(ctx context.Context, env *cli.Env, m *fleet.Map, base loader.Options) error {
	shards, err := selectShards(m, o.shard)
	if err != nil {
		return err
	}
	base.MaxMemory = max(base.MaxMemory/int64(len(shards)), 16<<20)
	// --metrics-listen: one ledger per shard, labeled shard="NAME", and
	// the inboxes (shared by the shards) once.
	if o.metricsListen != "" {
		cs := []prometheus.Collector{metrics.NewLedger(nil, o.stateDir, env.Log)}
		for _, s := range shards {
			db, err := openDSNFile(s.LoaderDSNFiles[0])
			if err != nil {
				return err
			}
			defer db.Close()
			db.SetMaxOpenConns(1)
			cs = append(cs, metrics.Labeled{Collector: metrics.NewLedger(db, "", env.Log.With("shard", s.Name)), Labels: prometheus.Labels{"shard": s.Name}})
		}
		stop, err := metrics.Go(ctx, o.metricsListen, env.Log, cs...)
		if err != nil {
			return err
		}
		defer stop()
	}
	// --geoip, --resolve: a resolver per shard (one geolocation file),
	// storing each lookup on the shard whose host had the address and on
	// the first shard, whose addr_info the head reads (it has no host_id).
	var geo addrinfo.Geo
	if o.geoip != "" {
		if geo, err = o.openGeo(); err != nil {
			return err
		}
		defer geo.Close()
	}
	resolvers := make([]*addrinfo.Resolver, len(shards))
	if o.geoip != "" || o.resolve {
		first, err := readDSNFile(m.Shards[0].LoaderDSNFiles[0])
		if err != nil {
			return err
		}
		for i, s := range shards {
			dsn, err := readDSNFile(s.LoaderDSNFiles[0])
			if err != nil {
				return err
			}
			dsns := []string{dsn}
			if s.Name != m.Shards[0].Name {
				dsns = append(dsns, first)
			}
			res, stop, err := o.addrResolver(ctx, env, geo, dsns...)
			if err != nil {
				return err
			}
			defer stop()
			resolvers[i] = res
		}
	}
	type out struct {
		sum loader.Summary
		err error
	}
	res := make([]out, len(shards))
	var wg sync.WaitGroup
	for i, s := range shards {
		opt := base
		opt.Log = env.Log.With("shard", s.Name)
		opt.LockFile = filepath.Join(o.stateDir.String(), "load-"+s.Name+".lock")
		opt.Hosts = shardHosts(base.Registry, m, s.Name)
		if resolvers[i] != nil {
			opt.RemoteAddrs = resolvers[i]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i].sum, res[i].err = o.loadShard(ctx, s, opt)
		}()
	}
	wg.Wait()
	var errs []error
	var failed, quarantined int
	for i, s := range shards {
		r := res[i]
		if errors.Is(r.err, loader.ErrLocked) {
			env.Log.Info("another loader is running on this shard; nothing to do", "shard", s.Name)
			continue
		}
		fmt.Fprintf(env.Stdout, "shard %s: %s\n", s.Name, r.sum.String())
		if r.err != nil {
			errs = append(errs, fmt.Errorf("shard %s: %w", s.Name, r.err))
		}
		failed += r.sum.Failed
		quarantined += r.sum.Quarantined + r.sum.ChainBreaks
	}
	switch {
	case len(errs) > 0:
		return errors.Join(errs...)
	case failed > 0:
		return fmt.Errorf("%d segments left in the inboxes after errors; see the log", failed)
	case quarantined > 0:
		return cli.Exit(3, nil)
	}
	return nil
}

// loadShard runs one pass (or --watch) of shard s's loader. It connects
// with the first of the shard's loader DSN files; the others (Galera
// nodes) are its failover nodes.
func (o *loadOptions) loadShard(ctx context.Context, s fleet.Shard, opt loader.Options) (loader.Summary, error) {
	dsn, err := readDSNFile(s.LoaderDSNFiles[0])
	if err != nil {
		return loader.Summary{}, err
	}
	opt.DSN = dsn
	for _, f := range s.LoaderDSNFiles[1:] {
		d, err := readDSNFile(f)
		if err != nil {
			return loader.Summary{}, err
		}
		opt.FailoverDSNs = append(opt.FailoverDSNs, d)
	}
	l, err := loader.New(opt)
	if err != nil {
		return loader.Summary{}, err
	}
	defer l.Close()
	if o.watch > 0 {
		sum, err := l.Watch(ctx, o.watch)
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		return sum, err
	}
	return l.Run(ctx)
}
