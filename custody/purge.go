package custody

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"

	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/spool"
)

// PurgeTables are the tables PurgeHost deletes a host's rows from, in
// order: the ledger last, so that a purge cut short still shows, in
// segments, what remains to delete, and a second run finishes it.
var PurgeTables = []string{"proc_events", "file_events", "sock_events", "dns_events", "dns_names", "login_events", "gaps", "accounts", "executables", "exe_ids", "containers", "quarantine", "segments"}

// DefaultPurgeBatch is the number of rows PurgeHost deletes per statement.
const DefaultPurgeBatch = 10000

// PurgeHost deletes every row of host from the database: its events, gaps,
// accounts, quarantine rows and custody ledger (PurgeTables), batch rows per
// statement (0: DefaultPurgeBatch), each batch its own short transaction
// under READ COMMITTED, so that loaders and analysts are never locked out
// for long. The hosts row stays, with status revoked. It returns the rows
// deleted per table.
//
// It first marks the host revoked in hosts. A loader checks that status
// under a shared lock in the transaction of every segment, so a segment
// being loaded when the purge starts is either committed before the purge
// deletes (and deleted with the rest) or refused as ErrRevoked; revoke the
// host in the registry first (pofr-server deregister does) so that the
// next passes refuse its segments too. Needs DELETE on the tables: the
// administrator's DSN.
func PurgeHost(ctx context.Context, db *sql.DB, host string, batch int, log *slog.Logger) (map[string]int64, error) {
	if !spool.ValidHostID(host) {
		return nil, fmt.Errorf("purge host: invalid host id %q", host)
	}
	if batch <= 0 {
		batch = DefaultPurgeBatch
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("purge host %s: %w", host, err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET SESSION tx_isolation = 'READ-COMMITTED', autocommit = 1"); err != nil {
		return nil, fmt.Errorf("purge host %s: set session: %w", host, err)
	}
	if _, err := conn.ExecContext(ctx, `INSERT INTO hosts (host_id, status) VALUES (?, ?)
		ON DUPLICATE KEY UPDATE status = VALUES(status)`, host, registry.StatusRevoked); err != nil {
		return nil, fmt.Errorf("purge host %s: mark revoked: %w", host, err)
	}
	deleted := map[string]int64{}
	for _, table := range PurgeTables {
		for {
			res, err := conn.ExecContext(ctx, "DELETE FROM "+table+" WHERE host_id = ? LIMIT ?", host, batch)
			if err != nil {
				return deleted, fmt.Errorf("purge host %s: delete from %s: %w", host, table, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return deleted, fmt.Errorf("purge host %s: delete from %s: %w", host, table, err)
			}
			deleted[table] += n
			if n < int64(batch) {
				break
			}
		}
		log.Debug("purged table", "host", host, "table", table, "rows", deleted[table])
	}
	return deleted, nil
}
