package loader

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/pofr/pofr/schema"
)

// exeIDsMerge merges the executables rows of one segment (segment_id = ?)
// into exe_ids, one row per identity: migration 016's merge of every loaded
// row (schema/016_exe_ids.sql, its last statement) with a segment filter.
// The segment's rows of an identity are first summed up (GROUP BY: one
// upsert per identity and segment, not per row), then merged
// with the identity's row: the first exec with its path and segment from
// the earliest row, the last exec from the latest, execs summed, a hash
// once any row brought one (else the skip reason of the newest row).
var exeIDsMerge = func() string {
	const before = "  GROUP BY x.host_id"
	for _, m := range schema.Migrations() {
		if strings.HasSuffix(m.Name, "_exe_ids.sql") {
			sts := schema.Statements(m.SQL)
			st := sts[len(sts)-1]
			st = st[strings.Index(st, "INSERT INTO exe_ids"):]
			if i := strings.Index(st, before); i > 0 && strings.Count(st, before) == 1 {
				return st[:i] + "  WHERE x.segment_id = ?\n" + st[i:]
			}
		}
	}
	panic("loader: no exe_ids merge in the schema's migrations")
}()

// exeKeyFill sets exe_key, the key exec rows carry (event.ExeKey), on the
// host's exe_ids rows that have none (host_id = ?): migration 018's last
// statement, which keys the rows merged before it, with a host filter; the
// (host_id, exe_key) index finds the rows with none.
var exeKeyFill = func() string {
	for _, m := range schema.Migrations() {
		if strings.HasSuffix(m.Name, "_exe_key.sql") {
			sts := schema.Statements(m.SQL)
			st := sts[len(sts)-1]
			st = st[strings.Index(st, "UPDATE exe_ids"):]
			if strings.HasSuffix(st, "WHERE exe_key IS NULL") {
				return st + " AND host_id = ?"
			}
		}
	}
	panic("loader: no exe_ids key statement in the schema's migrations")
}()

// mergeExeIDs merges the executables rows just loaded under segmentID in tx
// into exe_ids and keys the identities it added. Each identity is one insert
// (1 affected row) or one update (2, or 0 when it changed nothing), so the
// affected rows are at most twice the segment's.
func mergeExeIDs(ctx context.Context, tx *sql.Tx, segmentID uint64, host string, rows int64) error {
	res, err := tx.ExecContext(ctx, exeIDsMerge, segmentID)
	if err != nil {
		return fmt.Errorf("merge exe_ids: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n > 2*rows {
		return fmt.Errorf("%w: merge exe_ids: %d rows affected by %d executables rows (%v)", ErrRejected, n, rows, err)
	}
	if _, err := tx.ExecContext(ctx, exeKeyFill, host); err != nil {
		return fmt.Errorf("key exe_ids: %w", err)
	}
	return nil
}
