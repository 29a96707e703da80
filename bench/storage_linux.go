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
// into its own database and reports what each event table holds per row
// (DATA_LENGTH + INDEX_LENGTH from information_schema.TABLES after ANALYZE
// TABLE) beside the spool's bytes per row (the segment files).
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
	src, err := os.MkdirTemp("", "pofr-bench-storage-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(src)
	rows, err := WriteLoadSegments(statedir.Dir(src), opt.Hosts, opt.Segments, opt.RowsPerSegment)
	if err != nil {
		return fail(fmt.Errorf("write bench segments: %w", err))
	}
	spoolBytes, files, err := inboxBytes(statedir.Dir(src))
	if err != nil {
		return fail(err)
	}
	d, _, err := benchLoader(ctx, db, src, 2, rows, files)
	if err != nil {
		return fail(fmt.Errorf("load: %w", err))
	}
	if _, err := db.ExecContext(ctx, "ANALYZE TABLE "+strings.Join(storageTables, ", ")); err != nil {
		return fail(fmt.Errorf("analyze: %w", err))
	}
	r := Result{Name: "Loader/storage", N: int(rows)}
	var total, counted int64
	for _, t := range storageTables {
		var n, size int64
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+t).Scan(&n); err != nil {
			return fail(fmt.Errorf("count %s: %w", t, err))
		}
		if err := db.QueryRowContext(ctx, `SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) FROM information_schema.TABLES
			WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`, t).Scan(&size); err != nil {
			return fail(fmt.Errorf("size of %s: %w", t, err))
		}
		total, counted = total+size, counted+n
		if n > 0 {
			short := strings.TrimSuffix(t, "_events")
			r.Add(float64(size)/float64(n), short+"-B/row")
			idx, err := indexBytes(ctx, db, t)
			if err != nil {
				return fail(err)
			}
			for _, ix := range idx {
				r.Add(float64(ix.bytes)/float64(n), short+"."+ix.name+"-B/row")
			}
		}
	}
	if counted != rows {
		return fail(fmt.Errorf("tables hold %d rows, want %d", counted, rows))
	}
	perRow := float64(total) / float64(rows)
	spoolPerRow := float64(spoolBytes) / float64(rows)
	r.Add(perRow, "db-B/row")
	r.Add(spoolPerRow, "spool-B/row")
	r.Add(perRow/spoolPerRow, "db/spool")
	r.Add(float64(rows)/d.Seconds(), "rows/s")
	check.Got = perRow
	check.Context = fmt.Sprintf("spool %.1f B/row", spoolPerRow)
	return r, []Check{check}, nil
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
