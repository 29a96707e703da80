package main

import (
	"context"
	"fmt"

	"log/slog"

	"github.com/pofr/pofr/query"
)

// routeToShard returns, when q reads a Spider head and host (an id or a
// hostname) is one host, a Querier on that host's shard: the head's
// partitions name the shard (head apply lists each shard's hosts), the
// shard map in shardsFile its reader DSN file. A per-host question then
// runs where the host's rows are, as fast as on one server, instead of
// pulling them through Spider. Otherwise it returns nil (ask q).
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
	name, err := query.HeadShardOf(ctx, q.DB, id)
	if err != nil || name == "" {
		log.Debug("per-host query through the head: the head lists no shard for the host", "host", id, "err", err)
		return nil, nil, nil
	}
	s := m.Shard(name)
	if s == nil || s.ReaderDSNFile == "" {
		log.Debug("per-host query through the head: the shard map has no reader DSN file for the host's shard", "host", id, "shard", name)
		return nil, nil, nil
	}
	dsn, err := readDSNFile(s.ReaderDSNFile)
	if err != nil {
		return nil, nil, err
	}
	db, err := query.OpenDB(dsn)
	if err != nil {
		return nil, nil, fmt.Errorf("shard %s: %w", name, err)
	}
	log.Debug("per-host query on the host's shard", "host", id, "shard", name)
	return &query.Querier{DB: db, Log: q.Log, Enrich: q.Enrich}, func() { db.Close() }, nil
}
