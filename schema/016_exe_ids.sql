-- pofr schema, migration 016: exe_ids, one row per executed file identity
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
-- with "WHERE x.segment_id = ?" added before the GROUP BY. The rows of an
-- identity are summed up first (one upsert per identity, not per row);
-- the earliest row's path and segment and the newest row's skip reason are
-- carried as fixed-width sortable prefixes (ts 20 digits, segment_id 20,
-- row_no 10) with the value after them.
INSERT INTO exe_ids (host_id, dev, inode, size, mtime_ns, ctime_ns, first_ts, last_ts, execs, sha256, how, skip, path,
  first_segment_id, last_segment_id, rows_merged)
SELECT g.host_id, g.dev, g.inode, g.size, g.mtime_ns, g.ctime_ns, g.first_ts, g.last_ts, g.execs, g.sha256,
  IF(g.sha256 IS NULL, NULL, g.how), IF(g.sha256 IS NULL, NULLIF(SUBSTRING(g.newest, 31), ''), NULL),
  IF(SUBSTRING(g.earliest, 51, 1) = '1', SUBSTRING(g.earliest, 52), NULL), CAST(SUBSTRING(g.earliest, 21, 20) AS UNSIGNED),
  g.last_segment_id, g.n
FROM (
  SELECT x.host_id, x.dev, x.inode, x.size, x.mtime_ns, x.ctime_ns,
    MIN(x.ts) AS first_ts, MAX(x.last_ts) AS last_ts, SUM(x.count) AS execs,
    MAX(x.sha256) AS sha256, MAX(IF(x.sha256 IS NULL, NULL, x.how)) AS how,
    MAX(CONCAT(LPAD(x.segment_id, 20, '0'), LPAD(x.row_no, 10, '0'), COALESCE(x.skip, ''))) AS newest,
    MIN(CONCAT(DATE_FORMAT(x.ts, '%Y%m%d%H%i%s%f'), LPAD(x.segment_id, 20, '0'), LPAD(x.row_no, 10, '0'),
      IF(x.path IS NULL, '0', CONCAT('1', x.path)))) AS earliest,
    MAX(x.segment_id) AS last_segment_id, COUNT(*) AS n
  FROM executables x
  GROUP BY x.host_id, x.dev, x.inode, x.size, x.mtime_ns, x.ctime_ns
) g
ORDER BY g.first_ts
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
