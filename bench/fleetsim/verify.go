package fleetsim

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/pofr/pofr/bench"
)

// checksumTables are the per-host checksums compared between the head,
// the shards and a Galera shard's nodes: rows and a CRC of a column that
// differs from row to row.
var checksumTables = []struct{ table, col string }{
	{"proc_events", "argv"}, {"file_events", "path"}, {"sock_events", "remote_port"},
}

// checksums returns "table host rows crc" lines of db, one per table and
// host.
func checksums(ctx context.Context, db *sql.DB) (map[string]bool, error) {
	out := map[string]bool{}
	for _, t := range checksumTables {
		rows, err := db.QueryContext(ctx, fmt.Sprintf("SELECT host_id, COUNT(*), COALESCE(SUM(CRC32(%s)), 0) FROM %s GROUP BY host_id", t.col, t.table))
		if err != nil {
			return nil, fmt.Errorf("checksum %s: %w", t.table, err)
		}
		for rows.Next() {
			var h string
			var n, crc int64
			if err := rows.Scan(&h, &n, &crc); err != nil {
				rows.Close()
				return nil, err
			}
			out[fmt.Sprintf("%s %s %d %d", t.table, h, n, crc)] = true
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// diff counts the lines in one set and not the other.
func diff(a, b map[string]bool) int {
	n := 0
	for k := range a {
		if !b[k] {
			n++
		}
	}
	for k := range b {
		if !a[k] {
			n++
		}
	}
	return n
}

// verify checks the ledger (every sealed segment loaded exactly once, on
// its own shard, nothing quarantined), the rows (each host's rows on its
// shard equal what it wrote), the head (per-host checksums equal the
// shards'), the Galera replicas still running (equal to node 1), and
// measures database bytes per row (node 1 of every shard).
func (f *fleetRun) verify(ctx context.Context, head *sql.DB) ([]bench.Check, float64, error) {
	name := f.c.Name()
	var errs []error
	var segs, onceOwn, quarantined, rowDiff, replicaDiff int
	var dbBytes, dbRows int64
	shardSums := map[string]bool{}
	ledger := map[string]map[string]map[uint64]int{} // shard → host → seq → count
	written := map[string][3]int64{}
	for _, h := range f.hosts {
		h.mu.Lock()
		written[h.id] = h.rows
		h.mu.Unlock()
	}
	for _, s := range f.dbs.shards {
		db, err := sql.Open("mysql", s.dsn(0))
		if err != nil {
			return nil, math.NaN(), err
		}
		defer db.Close()
		l := map[string]map[uint64]int{}
		rows, err := db.QueryContext(ctx, "SELECT host_id, seq FROM segments")
		if err != nil {
			errs = append(errs, fmt.Errorf("shard %s: ledger: %w", s.name, err))
			continue
		}
		for rows.Next() {
			var h string
			var seq uint64
			if err := rows.Scan(&h, &seq); err == nil {
				if l[h] == nil {
					l[h] = map[uint64]int{}
				}
				l[h][seq]++
			}
		}
		rows.Close()
		ledger[s.name] = l
		var q int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM quarantine").Scan(&q); err != nil {
			errs = append(errs, err)
		}
		quarantined += q
		sums, err := checksums(ctx, db)
		if err != nil {
			errs = append(errs, fmt.Errorf("shard %s: %w", s.name, err))
			continue
		}
		for k := range sums {
			shardSums[k] = true
		}
		// Rows per host against what it wrote.
		for _, h := range f.hosts {
			if f.shardOf[h.id] != s.name {
				continue
			}
			w := written[h.id]
			for i, t := range checksumTables {
				var n int64
				if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+t.table+" WHERE host_id = ?", h.id).Scan(&n); err != nil {
					errs = append(errs, err)
				}
				rowDiff += int(abs(n - w[i]))
			}
		}
		// Bytes per row on this copy.
		b, n, err := tableBytes(ctx, db)
		if err != nil {
			errs = append(errs, fmt.Errorf("shard %s: %w", s.name, err))
		}
		dbBytes, dbRows = dbBytes+b, dbRows+n
		// Every Galera node still running holds the same rows.
		for i := 1; i < len(s.nodes); i++ {
			if !s.nodes[i].Running() {
				continue
			}
			cfg := s.nodes[i].Config("root", "", dbName)
			cfg.Params = map[string]string{"wsrep_sync_wait": "1"}
			rdb, err := sql.Open("mysql", cfg.FormatDSN())
			if err != nil {
				return nil, math.NaN(), err
			}
			rs, err := checksums(ctx, rdb)
			rdb.Close()
			if err != nil {
				errs = append(errs, fmt.Errorf("shard %s node %d: %w", s.name, i+1, err))
				continue
			}
			replicaDiff += diff(rs, sums)
		}
	}
	for _, h := range f.hosts {
		seqs, err := h.seqs()
		if err != nil {
			return nil, math.NaN(), err
		}
		own := f.shardOf[h.id]
		for seq := range seqs {
			segs++
			ok := ledger[own][h.id][seq] == 1
			for sn, l := range ledger {
				if sn != own && l[h.id][seq] != 0 {
					ok = false
				}
			}
			if ok {
				onceOwn++
			}
		}
		for sn, l := range ledger {
			for seq, n := range l[h.id] {
				if !seqs[seq] || (sn != own && n > 0) {
					errs = append(errs, fmt.Errorf("host %s: segment seq %d in the ledger of shard %s was not sealed by it or not on its shard (%s)", h.id, seq, sn, own))
				}
			}
		}
	}
	headSums, err := checksums(ctx, head)
	headDiff := math.NaN()
	if err != nil {
		errs = append(errs, fmt.Errorf("head: %w", err))
	} else {
		headDiff = float64(diff(headSums, shardSums))
	}
	checks := []bench.Check{
		{Name: name + ": sealed segments loaded exactly once, on their own shard", Got: bench.Percent(onceOwn, segs), Limit: 100, Unit: "%", Budget: true,
			Context: fmt.Sprintf("%d segments", segs)},
		{Name: name + ": segments quarantined", Got: float64(quarantined), Limit: 0, AtMost: true, Budget: true},
		{Name: name + ": rows lost or duplicated (each host's rows on its shard against what it wrote)", Got: float64(rowDiff), Limit: 0, AtMost: true, Budget: true},
		{Name: name + ": per-host checksums through the head that differ from the shards'", Got: headDiff, Limit: 0, AtMost: true, Budget: true,
			Why: "head not readable", Context: fmt.Sprintf("%d host×table sums", len(shardSums))},
	}
	if f.c.Galera {
		checks = append(checks, bench.Check{Name: name + ": per-host checksums of running Galera replicas that differ from node 1",
			Got: float64(replicaDiff), Limit: 0, AtMost: true, Budget: true})
	}
	bpr := math.NaN()
	if dbRows > 0 {
		bpr = float64(dbBytes) / float64(dbRows)
	}
	return checks, bpr, errors.Join(errs...)
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// tableBytes returns DATA_LENGTH + INDEX_LENGTH of the event tables' day
// partitions that hold rows (after ANALYZE TABLE), and their rows: the
// empty partitions' fixed pages would dominate a short run's few MB.
func tableBytes(ctx context.Context, db *sql.DB) (bytes, rows int64, err error) {
	var names []string
	for _, t := range checksumTables {
		names = append(names, t.table)
	}
	if _, err := db.ExecContext(ctx, "ANALYZE TABLE "+strings.Join(names, ", ")); err != nil {
		return 0, 0, fmt.Errorf("analyze: %w", err)
	}
	for _, t := range names {
		var n, b int64
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+t).Scan(&n); err != nil {
			return 0, 0, err
		}
		if err := db.QueryRowContext(ctx, `SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) FROM information_schema.PARTITIONS
			WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND TABLE_ROWS > 0`, t).Scan(&b); err != nil {
			return 0, 0, err
		}
		bytes, rows = bytes+b, rows+n
	}
	return bytes, rows, nil
}
