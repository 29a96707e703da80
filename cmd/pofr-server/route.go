package main

import (
	"context"
	"database/sql"
	"fmt"

	"log/slog"

	"github.com/pofr/pofr/fleet"
	"github.com/pofr/pofr/query"
)

// routeToShard returns, when q reads a Spider head and host (an id or a
// hostname) is one host, a Querier on that host's shard (hostShard).
// A per-host question then runs where the host's rows are, as fast as on
// one server, instead of pulling them through Spider. Otherwise it
// returns nil (ask q). query and export use it.
func routeToShard(ctx context.Context, log *slog.Logger, q *query.Querier, host, shardsFile string) (*query.Querier, func(), error) {
	if host == "" {
		return nil, nil, nil
	}
	m, err := loadShards(shardsFile)
	if err != nil || m == nil {
		return nil, nil, err
	}
	// Whatever fails from here leaves the question to q, which reports
	// it (or its own usage error) as without a map.
	if head, err := query.IsHead(ctx, q.DB); err != nil || !head {
		return nil, nil, nil
	}
	id, err := q.ResolveHost(ctx, host)
	if err != nil {
		return nil, nil, nil
	}
	name, dsn, err := hostShard(ctx, log, q.DB, m, id)
	if err != nil || name == "" {
		return nil, nil, err
	}
	db, err := query.OpenDB(dsn)
	if err != nil {
		return nil, nil, fmt.Errorf("shard %s: %w", name, err)
	}
	log.Debug("per-host query on the host's shard", "host", id, "shard", name)
	return &query.Querier{DB: db, Log: q.Log, Enrich: q.Enrich}, func() { db.Close() }, nil
}

// hostShard returns the name and reader DSN of the shard that holds host
// id's rows: the head's partitions (read through head, a Spider head)
// name the shard (head apply lists each shard's hosts), the shard map m
// its reader DSN file. "" when the head lists no shard for the host or m
// no reader DSN file for it: the question then stays on the head.
func hostShard(ctx context.Context, log *slog.Logger, head *sql.DB, m *fleet.Map, id string) (name, dsn string, err error) {
	name, err = query.HeadShardOf(ctx, head, id)
	if err != nil || name == "" {
		log.Debug("per-host query through the head: the head lists no shard for the host", "host", id, "err", err)
		return "", "", nil
	}
	s := m.Shard(name)
	if s == nil || s.ReaderDSNFile == "" {
		log.Debug("per-host query through the head: the shard map has no reader DSN file for the host's shard", "host", id, "shard", name)
		return "", "", nil
	}
	dsn, err = readDSNFile(s.ReaderDSNFile)
	if err != nil {
		return "", "", err
	}
	return name, dsn, nil
}

// uiShards returns the ui's Config.Shard for the shard map in shardsFile
// (nil without a map): the shard of a host's pages, by hostShard.
func uiShards(log *slog.Logger, shardsFile string) (func(ctx context.Context, head *sql.DB, host string) (string, string, error), error) {
	m, err := loadShards(shardsFile)
	if err != nil || m == nil {
		return nil, err
	}
	return func(ctx context.Context, head *sql.DB, host string) (string, string, error) {
		return hostShard(ctx, log, head, m, host)
	}, nil
}
