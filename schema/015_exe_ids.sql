-- pofr schema, migration 015: exe_ids, one row per executed file identity
-- of a host (device, inode, size, mtime, ctime) with its SHA-256 and when it
-- was first and last executed. The collector sends an executables row when
-- an identity is first executed and again per refresh interval while it
-- still is; those rows stay in executables as the segments sent them (verify
-- --rows compares them), and the loader merges each segment's rows into
-- exe_ids in the same transaction. This migration merges the executables
-- rows already loaded.

CREATE TABLE IF NOT EXISTS exe_ids (
  host_id          VARCHAR(63) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'Host (from the segment manifest).',
  dev              BIGINT UNSIGNED NOT NULL COMMENT 'Device number (st_dev, Linux encoding) of the file''s file system.',
  inode            BIGINT UNSIGNED NOT NULL COMMENT 'Inode number of the file.',
  size             BIGINT NOT NULL COMMENT 'Size of the file in bytes.',
  mtime_ns         BIGINT NOT NULL COMMENT 'Modification time of the file, ns since the Unix epoch.',
  ctime_ns         BIGINT NOT NULL COMMENT 'Status change time of the file, ns since the Unix epoch.',
  first_ts         DATETIME(6) NOT NULL COMMENT 'First exec of this identity any loaded row covers (UTC, microseconds).',
  last_ts          DATETIME(6) NOT NULL COMMENT 'Last exec of this identity any loaded row covers (UTC, microseconds).',
  execs            BIGINT UNSIGNED NOT NULL COMMENT 'Execs of this identity, summed over its executables rows.',
  sha256           VARBINARY(32) NULL COMMENT 'SHA-256 of the file (32 bytes); the first one a row brought; NULL while every row skipped it.',
  how              VARCHAR(8) CHARACTER SET ascii NULL COMMENT 'How the file was opened for the hash kept: handle or proc; NULL if none.',
  skip             VARCHAR(16) CHARACTER SET ascii NULL COMMENT 'Why there is no hash (too_large, changed, read_error), as the newest row said; NULL once hashed.',
  path             VARBINARY(4096) NULL COMMENT 'Path of the file at the first exec, exact bytes; NULL if unknown.',
  first_segment_id BIGINT UNSIGNED NOT NULL COMMENT 'Ledger row (segments) of the earliest executables row of this identity.',
  last_segment_id  BIGINT UNSIGNED NOT NULL COMMENT 'Ledger row (segments) of the latest executables row merged.',
  rows_merged      INT UNSIGNED NOT NULL COMMENT 'executables rows merged into this one.',
  PRIMARY KEY (host_id, dev, inode, size, mtime_ns, ctime_ns),
  KEY sha256 (sha256, host_id),
  KEY host_first (host_id, first_ts),
  KEY host_path (host_id, path(255))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='Executed files of a host, one row per identity (device, inode, size, mtime, ctime), merged by the loader from the executables rows. Not partitioned; kept until the host is purged.';

-- The executables rows loaded before this migration, merged. The loader
-- runs this very statement (loader/exeids.go) for each segment it loads,
-- with "WHERE x.segment_id = ?" added before the WINDOW clause.
INSERT INTO exe_ids (host_id, dev, inode, size, mtime_ns, ctime_ns, first_ts, last_ts, execs, sha256, how, skip, path,
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
  rows_merged = exe_ids.rows_merged + VALUES(rows_merged);
