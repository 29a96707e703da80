package ui

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/pofr/pofr/query"
)

// Shards routes a host's pages, read through a Spider head, to the shard
// that holds the host's rows, which answers as fast as one server where
// the head pulls the rows through Spider. It keeps one pair of
// connection pools (statement limit, tree budget) per shard, opened on
// first use and closed by Close.
type Shards struct {
	// Of returns the name and reader DSN of host's shard, reading the head
	// db; "" leaves the page on the head.
	Of func(ctx context.Context, head *sql.DB, host string) (name, dsn string, err error)

	head          *sql.DB
	log           *slog.Logger
	enrich        *query.Enricher
	limit, budget time.Duration
	mu            sync.Mutex
	open          map[string][2]*query.Querier
}

// route returns the Queriers (statement limit, tree budget) of host's
// shard, or nil: the page then reads the head.
func (sh *Shards) route(ctx context.Context, log *slog.Logger, host string) (*query.Querier, *query.Querier) {
	name, dsn, err := sh.Of(ctx, sh.head, host)
	if err != nil {
		log.Warn("per-host page through the head: no shard", "host", query.SafeString(host), "err", err)
	}
	if err != nil || name == "" {
		return nil, nil
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	qs, ok := sh.open[name]
	if !ok {
		db, err := OpenReader(dsn, sh.limit)
		if err != nil {
			log.Warn("per-host page through the head: open the shard", "shard", name, "err", err)
			return nil, nil
		}
		quick, err := OpenReader(dsn, sh.budget)
		if err != nil {
			db.Close()
			log.Warn("per-host page through the head: open the shard", "shard", name, "err", err)
			return nil, nil
		}
		qs = [2]*query.Querier{{DB: db, Log: log, Enrich: sh.enrich}, {DB: quick, Log: log}}
		sh.open[name] = qs
	}
	log.Debug("per-host page on the host's shard", "host", query.SafeString(host), "shard", name)
	return qs[0], qs[1]
}

// Close closes the shards' connection pools.
func (sh *Shards) Close() error {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var errs []error
	for name, qs := range sh.open {
		errs = append(errs, qs[0].DB.Close(), qs[1].DB.Close())
		delete(sh.open, name)
	}
	return errors.Join(errs...)
}
