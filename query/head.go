package query

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/pofr/pofr/fleet"
)

// headConnector sets fleet.HeadSession on every new connection to a Spider
// head (a database whose schema_version table is a Spider table), so that
// query, export and ui need no flag to read a fleet; a single server gets
// its connections unchanged.
type headConnector struct{ driver.Connector }

// isHeadQuery names the engine of schema_version when Spider is active.
const isHeadQuery = `SELECT t.ENGINE FROM information_schema.PLUGINS p JOIN information_schema.TABLES t
	ON t.TABLE_SCHEMA = DATABASE() AND t.TABLE_NAME = 'schema_version'
	WHERE p.PLUGIN_NAME = 'SPIDER' AND p.PLUGIN_STATUS = 'ACTIVE'`

func (c headConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	q, ok1 := conn.(driver.QueryerContext)
	e, ok2 := conn.(driver.ExecerContext)
	if !ok1 || !ok2 {
		return conn, nil
	}
	head, err := isHead(ctx, q)
	if err == nil && head {
		for _, s := range fleet.HeadSession {
			if _, err = e.ExecContext(ctx, s, nil); err != nil {
				err = fmt.Errorf("spider head session (%s): %w", s, err)
				break
			}
		}
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// isHead reports whether conn is connected to a Spider head.
func isHead(ctx context.Context, q driver.QueryerContext) (bool, error) {
	rows, err := q.QueryContext(ctx, isHeadQuery, nil)
	if err != nil {
		return false, fmt.Errorf("detect spider head: %w", err)
	}
	defer rows.Close()
	v := make([]driver.Value, len(rows.Columns()))
	if err := rows.Next(v); err != nil {
		return false, nil // no row: not a head
	}
	return fmt.Sprintf("%s", v[0]) == "SPIDER", nil
}

// IsHead reports whether db reads a Spider head.
func IsHead(ctx context.Context, db *sql.DB) (bool, error) {
	var engine string
	err := db.QueryRowContext(ctx, isHeadQuery).Scan(&engine)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("detect spider head: %w", err)
	}
	return engine == "SPIDER", nil
}

// HeadShardOf returns the shard that holds host id's rows, as the head's
// partitions list it ('head apply' makes one partition per shard, named
// after it, listing its hosts); "" when no partition lists the host.
func HeadShardOf(ctx context.Context, db *sql.DB, id string) (string, error) {
	var name string
	err := db.QueryRowContext(ctx, `SELECT PARTITION_NAME FROM information_schema.PARTITIONS
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'hosts'
		AND FIND_IN_SET(QUOTE(?), REPLACE(PARTITION_DESCRIPTION, ' ', '')) > 0`, id).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("shard of host %s: %w", id, err)
	}
	return name, nil
}
