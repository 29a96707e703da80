package bench

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"os"
	"strings"

	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/loader"
	"github.com/pofr/pofr/schema"
)

// StorageTarget is the bar for database bytes (data + indexes) per event
// row of the busy-host mix.
const StorageTarget = 120

// storageTables are the event tables the busy-host mix fills.
var storageTables = []string{"proc_events", "file_events", "sock_events"}

// storage loads the busy-host mix (LoadRows, opt's sizes) with the loader
// into its own database and reports what each event table takes per row on
// disk ([schema.DiskBytes]; the bar) and logically (DATA_LENGTH + INDEX_LENGTH from
// information_schema.TABLES after ANALYZE TABLE, per index from
// mysql.innodb_index_stats) beside the spool's bytes per row.
func (lb LoaderBench) storage(ctx context.Context, m *MariaDB, opt LoadOptions) (Result, []Check, error) {
	const dbname = "pofr_storagebench"
	check := Check{Name: fmt.Sprintf("database bytes per row ≤ %d (busy-host mix, data + indexes)", StorageTarget),
		Limit: StorageTarget, AtMost: true, Unit: "B/row"}
	fail := func(err error) (Result, []Check, error) {
		check.Got, check.Why = math.NaN(), "not measured: "+err.Error()
		return Result{}, []Check{check}, err
	}
	if err := createDatabase(ctx, m, dbname); err != nil {
		return fail(err)
	}
	db, err := loader.OpenDB(m.DSN("root", "", dbname))
	if err != nil {
		return fail(err)
	}
	defer db.Close()
	if _, err := schema.Apply(ctx, db); err != nil {
		return fail(fmt.Errorf("apply schema: %w", err))
	}
	src, rows, err := loadSegmentsDir(opt)
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(src)
	spoolBytes, files, err := inboxBytes(statedir.Dir(src))
	if err != nil {
		return fail(err)
	}
	d, _, err := benchLoader(ctx, db, src, 2, rows, files)
	if err != nil {
		return fail(fmt.Errorf("load: %w", err))
	}
	r := Result{Name: storageResult, N: int(rows)}
	sizes, err := tableSizes(ctx, db, storageTables)
	if err != nil {
		return fail(err)
	}
	var disk, logical, counted int64
	for _, ts := range sizes {
		disk, logical, counted = disk+ts.disk, logical+ts.logical, counted+ts.rows
		if ts.rows == 0 {
			continue
		}
		short := strings.TrimSuffix(ts.table, "_events")
		r.Add(float64(ts.disk)/float64(ts.rows), short+"-B/row")
		r.Add(float64(ts.logical)/float64(ts.rows), short+"-logical-B/row")
		for _, ix := range ts.indexes {
			r.Add(float64(ix.bytes)/float64(ts.rows), short+"."+ix.name+"-B/row")
		}
	}
	if counted != rows {
		return fail(fmt.Errorf("tables hold %d rows, want %d", counted, rows))
	}
	perRow := float64(disk) / float64(rows)
	spoolPerRow := float64(spoolBytes) / float64(rows)
	r.Add(perRow, "db-B/row")
	r.Add(float64(logical)/float64(rows), "db-logical-B/row")
	r.Add(spoolPerRow, "spool-B/row")
	r.Add(perRow/spoolPerRow, "db/spool")
	r.Add(float64(rows)/d.Seconds(), "rows/s")
	check.Got = perRow
	check.Context = fmt.Sprintf("on disk; logical (information_schema) %.0f B/row, spool %.1f B/row", float64(logical)/float64(rows), spoolPerRow)
	return r, []Check{check}, nil
}

// tableSize is one table's rows and bytes after a load.
type tableSize struct {
	table         string
	rows          int64
	disk, logical int64
	indexes       []indexSize
}

// tableSizes analyzes tables and reads their row counts, logical sizes
// (information_schema.TABLES and each index's pages) and bytes on disk.
func tableSizes(ctx context.Context, db *sql.DB, tables []string) ([]tableSize, error) {
	if _, err := db.ExecContext(ctx, "ANALYZE TABLE "+strings.Join(tables, ", ")); err != nil {
		return nil, fmt.Errorf("analyze: %w", err)
	}
	var out []tableSize
	for _, t := range tables {
		ts := tableSize{table: t}
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+t).Scan(&ts.rows); err != nil {
			return nil, fmt.Errorf("count %s: %w", t, err)
		}
		if err := db.QueryRowContext(ctx, `SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) FROM information_schema.TABLES
			WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`, t).Scan(&ts.logical); err != nil {
			return nil, fmt.Errorf("size of %s: %w", t, err)
		}
		var err error
		if ts.indexes, err = indexBytes(ctx, db, t); err != nil {
			return nil, err
		}
		if ts.disk, err = schema.DiskBytes(ctx, db, t); err != nil {
			return nil, err
		}
		out = append(out, ts)
	}
	return out, nil
}

// inboxBytes sums the sizes of the segment files in every host's inbox of
// state and counts them.
func inboxBytes(state statedir.Dir) (int64, int, error) {
	hosts, err := registry.List(state)
	if err != nil {
		return 0, 0, err
	}
	var total int64
	var files int
	for _, h := range hosts {
		ents, err := os.ReadDir(state.Host(h.HostID).Inbox)
		if err != nil {
			return 0, 0, err
		}
		for _, e := range ents {
			fi, err := e.Info()
			if err != nil {
				return 0, 0, err
			}
			if fi.Mode().IsRegular() {
				total += fi.Size()
				files++
			}
		}
	}
	return total, files, nil
}

// indexSize is the size of one index of a table: PRIMARY is the rows
// themselves (InnoDB's clustered index), the others are secondary indexes.
type indexSize struct {
	name  string
	bytes int64
}

// indexBytes reads the pages allocated to each index of table t (every
// partition summed) from mysql.innodb_index_stats, which ANALYZE TABLE
// refreshed; their sum is the table's DATA_LENGTH + INDEX_LENGTH.
func indexBytes(ctx context.Context, db *sql.DB, t string) ([]indexSize, error) {
	rows, err := db.QueryContext(ctx, `SELECT index_name, SUM(stat_value) * @@innodb_page_size
		FROM mysql.innodb_index_stats
		WHERE database_name = DATABASE() AND stat_name = 'size'
		  AND (table_name = ? OR table_name LIKE CONCAT(?, '#P#%'))
		GROUP BY index_name ORDER BY index_name = 'PRIMARY' DESC, index_name`, t, t)
	if err != nil {
		return nil, fmt.Errorf("index sizes of %s: %w", t, err)
	}
	defer rows.Close()
	var out []indexSize
	for rows.Next() {
		var ix indexSize
		if err := rows.Scan(&ix.name, &ix.bytes); err != nil {
			return nil, err
		}
		out = append(out, ix)
	}
	return out, rows.Err()
}
