package query

import (
	"context"
	"database/sql/driver"
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
