package bench

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/pofr/pofr/loader"
	"github.com/pofr/pofr/schema"
)

// StorageOption is one way of storing the event tables that
// [CompareStorageOptions] measures: table options given to ALTER TABLE on
// each event table after the schema, and the server's
// innodb_compression_algorithm while its rows are loaded and flushed (page
// compression uses the global algorithm when a page is written).
type StorageOption struct {
	Name      string
	Table     string // "" keeps the schema's tables as they are
	Algorithm string // "" leaves the server's setting
	// Slow options (ROW_FORMAT=COMPRESSED loads about 8× slower) are
	// measured at the quick size only.
	Slow bool
}

// StorageOptions are the candidates docs/design.md compares.
var StorageOptions = []StorageOption{
	{Name: "uncompressed", Table: "PAGE_COMPRESSED=0 PAGE_COMPRESSION_LEVEL=DEFAULT"},
	{Name: "page zlib 1", Table: "PAGE_COMPRESSED=1 PAGE_COMPRESSION_LEVEL=1", Algorithm: "zlib"},
	{Name: "page zlib 6", Table: "PAGE_COMPRESSED=1 PAGE_COMPRESSION_LEVEL=6", Algorithm: "zlib"},
	{Name: "page zlib 9", Table: "PAGE_COMPRESSED=1 PAGE_COMPRESSION_LEVEL=9", Algorithm: "zlib"},
	{Name: "page lz4", Table: "PAGE_COMPRESSED=1", Algorithm: "lz4"},
	{Name: "compressed 4K", Table: "PAGE_COMPRESSED=0 PAGE_COMPRESSION_LEVEL=DEFAULT ROW_FORMAT=COMPRESSED KEY_BLOCK_SIZE=4", Slow: true},
}

// StorageOptionResult is one option's measurement.
type StorageOptionResult struct {
	Option StorageOption
	Rows   int64
	// Tables are the event tables' sizes after the last round's loader run.
	Tables []tableSize
	// Loader and Ceiling are the best times of the rounds (the loader, and a
	// plain LOAD DATA of the same rows into the same tables); Flush is the
	// FLUSH TABLES … FOR EXPORT after the last loader run, where page
	// compression does its work.
	Loader, Ceiling, Flush time.Duration
	Skipped                string
}

// CompareStorageOptions loads the busy-host mix into one database per
// option of opts on the server m, interleaved: each round runs every option
// in turn (loader and plain LOAD DATA, alternating which goes first), so
// that a busy machine penalises all alike. Sizes are taken after the last
// round.
func CompareStorageOptions(ctx context.Context, m *MariaDB, opt LoadOptions, opts []StorageOption, log *slog.Logger) ([]StorageOptionResult, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	src, rows, pre, err := prerenderedSegments(opt)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(src)
	out := make([]StorageOptionResult, len(opts))
	dbs := make([]*sql.DB, len(opts))
	defer func() {
		for _, db := range dbs {
			if db != nil {
				db.Close()
			}
		}
	}()
	for i, o := range opts {
		out[i] = StorageOptionResult{Option: o, Rows: rows}
		name := fmt.Sprintf("pofr_storageopt_%d", i)
		if err := createDatabase(ctx, m, name); err != nil {
			return nil, err
		}
		db, err := loader.OpenDB(m.DSN("root", "", name))
		if err != nil {
			return nil, err
		}
		dbs[i] = db
		if _, err := schema.Apply(ctx, db); err != nil {
			return nil, err
		}
		if err := setAlgorithm(ctx, db, o.Algorithm); err != nil {
			out[i].Skipped = err.Error()
			log.Warn("storage option skipped", "option", o.Name, "err", err)
			continue
		}
		if o.Table != "" {
			for _, t := range storageTables {
				if _, err := db.ExecContext(ctx, "ALTER TABLE "+t+" "+o.Table); err != nil {
					return nil, fmt.Errorf("%s: alter %s: %w", o.Name, t, err)
				}
			}
		}
	}
	rounds := max(opt.Rounds, 1)
	for round := range rounds {
		for i, o := range opts {
			if out[i].Skipped != "" {
				continue
			}
			db, r := dbs[i], &out[i]
			if err := setAlgorithm(ctx, db, o.Algorithm); err != nil {
				return nil, err
			}
			for k := range 2 {
				if (k+round+i)%2 == 0 {
					d, _, err := benchCeiling(ctx, db, pre, 2)
					if err != nil {
						return nil, fmt.Errorf("%s: ceiling: %w", o.Name, err)
					}
					if r.Ceiling == 0 || d < r.Ceiling {
						r.Ceiling = d
					}
					continue
				}
				d, _, err := benchLoader(ctx, db, src, 2, rows, len(pre))
				if err != nil {
					return nil, fmt.Errorf("%s: loader: %w", o.Name, err)
				}
				if r.Loader == 0 || d < r.Loader {
					r.Loader = d
				}
			}
			// The loader ran last in odd turns; load once more so that the
			// sizes are of the loader's rows in every option.
			if (1+round+i)%2 == 0 {
				if _, _, err := benchLoader(ctx, db, src, 2, rows, len(pre)); err != nil {
					return nil, fmt.Errorf("%s: loader: %w", o.Name, err)
				}
			}
			t0 := time.Now()
			if _, err := db.ExecContext(ctx, "FLUSH TABLES "+strings.Join(storageTables, ", ")+" FOR EXPORT"); err != nil {
				return nil, fmt.Errorf("%s: flush: %w", o.Name, err)
			}
			r.Flush = time.Since(t0)
			if _, err := db.ExecContext(ctx, "UNLOCK TABLES"); err != nil {
				return nil, err
			}
			if round == rounds-1 {
				if r.Tables, err = tableSizes(ctx, db, storageTables); err != nil {
					return nil, fmt.Errorf("%s: %w", o.Name, err)
				}
			}
			log.Info("storage option", "option", o.Name, "round", round, "loader", r.Loader, "ceiling", r.Ceiling, "flush", r.Flush)
		}
	}
	return out, nil
}

// setAlgorithm sets innodb_compression_algorithm ("" leaves it); lz4 and
// the others but zlib need their provider plugin, installed here if the
// server has not loaded it.
func setAlgorithm(ctx context.Context, db *sql.DB, algo string) error {
	if algo == "" {
		return nil
	}
	set := "SET GLOBAL innodb_compression_algorithm = '" + algo + "'"
	if _, err := db.ExecContext(ctx, set); err == nil {
		return nil
	}
	if _, err := db.ExecContext(ctx, "INSTALL SONAME 'provider_"+algo+"'"); err != nil {
		return fmt.Errorf("algorithm %s: install provider_%s: %w", algo, algo, err)
	}
	_, err := db.ExecContext(ctx, set)
	return err
}

// String formats r as a line of docs/design.md's table.
func (r StorageOptionResult) String() string {
	if r.Skipped != "" {
		return fmt.Sprintf("%s: skipped: %s", r.Option.Name, r.Skipped)
	}
	var b strings.Builder
	var disk, logical, n int64
	for _, t := range r.Tables {
		disk, logical, n = disk+t.disk, logical+t.logical, n+t.rows
	}
	fmt.Fprintf(&b, "%s: disk %.0f B/row (logical %.0f)", r.Option.Name, float64(disk)/float64(n), float64(logical)/float64(n))
	for _, t := range r.Tables {
		fmt.Fprintf(&b, "; %s %.0f (%.0f)", strings.TrimSuffix(t.table, "_events"), float64(t.disk)/float64(t.rows), float64(t.logical)/float64(t.rows))
	}
	lr, cr := float64(r.Rows)/r.Loader.Seconds(), float64(r.Rows)/r.Ceiling.Seconds()
	fmt.Fprintf(&b, "; loader %.0f rows/s, LOAD DATA %.0f rows/s, ratio %.2f; flush %.1f s", lr, cr, lr/cr, r.Flush.Seconds())
	return b.String()
}
