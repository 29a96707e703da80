package loader

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// exeIDsMerge merges the executables rows of one segment (segment_id = ?)
// into exe_ids, one row per identity (schema/015_exe_ids.sql): the
// segment's rows of an identity are first summed up (a window per
// identity: one upsert per identity and segment, not per row), then merged
// with the identity's row: the first exec with its path and segment from
// the earliest row, the last exec from the latest, execs summed, a hash
// once any row brought one (else the skip reason of the newest row). The
// migration runs the same text without the segment filter over every
// loaded row (TestExeIDsMergeIsTheMigrations).
const exeIDsMerge = `INSERT INTO exe_ids (host_id, dev, inode, size, mtime_ns, ctime_ns, first_ts, last_ts, execs, sha256, how, skip, path,
  first_segment_id, last_segment_id, rows_merged)
SELECT g.host_id, g.dev, g.inode, g.size, g.mtime_ns, g.ctime_ns, g.first_ts, g.last_ts, g.execs, g.sha256,
  IF(g.sha256 IS NULL, NULL, g.how), IF(g.sha256 IS NULL, g.skip, NULL), g.path, g.first_segment_id, g.last_segment_id, g.n
FROM (
  SELECT x.host_id, x.dev, x.inode, x.size, x.mtime_ns, x.ctime_ns,
    MIN(x.ts) OVER w AS first_ts, MAX(x.last_ts) OVER w AS last_ts, SUM(x.count) OVER w AS execs,
    MAX(x.sha256) OVER w AS sha256, MAX(IF(x.sha256 IS NULL, NULL, x.how)) OVER w AS how,
    FIRST_VALUE(x.skip) OVER (w ORDER BY x.segment_id DESC, x.row_no DESC) AS skip,
    FIRST_VALUE(x.path) OVER (w ORDER BY x.ts, x.segment_id, x.row_no) AS path,
    FIRST_VALUE(x.segment_id) OVER (w ORDER BY x.ts, x.segment_id, x.row_no) AS first_segment_id,
    MAX(x.segment_id) OVER w AS last_segment_id, COUNT(*) OVER w AS n,
    ROW_NUMBER() OVER (w ORDER BY x.segment_id, x.row_no) AS k
  FROM executables x
  WHERE x.segment_id = ?
  WINDOW w AS (PARTITION BY x.host_id, x.dev, x.inode, x.size, x.mtime_ns, x.ctime_ns)
) g
WHERE g.k = 1
ORDER BY g.first_segment_id, g.first_ts
ON DUPLICATE KEY UPDATE
  path = IF(VALUES(first_ts) < exe_ids.first_ts, VALUES(path), exe_ids.path),
  first_segment_id = IF(VALUES(first_ts) < exe_ids.first_ts, VALUES(first_segment_id), exe_ids.first_segment_id),
  first_ts = LEAST(exe_ids.first_ts, VALUES(first_ts)),
  last_ts = GREATEST(exe_ids.last_ts, VALUES(last_ts)),
  execs = exe_ids.execs + VALUES(execs),
  how = IF(exe_ids.sha256 IS NULL, VALUES(how), exe_ids.how),
  skip = IF(exe_ids.sha256 IS NULL, VALUES(skip), NULL),
  sha256 = COALESCE(exe_ids.sha256, VALUES(sha256)),
  last_segment_id = GREATEST(exe_ids.last_segment_id, VALUES(last_segment_id)),
  rows_merged = exe_ids.rows_merged + VALUES(rows_merged)`

// exeIDsMigrationText is exeIDsMerge as the migration holds it.
func exeIDsMigrationText() string {
	return strings.Replace(exeIDsMerge, "  WHERE x.segment_id = ?\n", "", 1)
}

// mergeExeIDs merges the executables rows just loaded under segmentID in tx
// into exe_ids. Each identity is one insert (1 affected row) or one update
// (2, or 0 when it changed nothing), so the affected rows are at most twice
// the segment's.
func mergeExeIDs(ctx context.Context, tx *sql.Tx, segmentID uint64, rows int64) error {
	res, err := tx.ExecContext(ctx, exeIDsMerge, segmentID)
	if err != nil {
		return fmt.Errorf("merge exe_ids: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n > 2*rows {
		return fmt.Errorf("%w: merge exe_ids: %d rows affected by %d executables rows (%v)", ErrRejected, n, rows, err)
	}
	return nil
}
