-- pofr schema, migration 005: executables, the SHA-256 of every executed file
-- by its identity on the host (device, inode, size, mtime, ctime).

CREATE TABLE IF NOT EXISTS executables (
  segment_id   BIGINT UNSIGNED NOT NULL COMMENT 'Ledger row (segments) the row was loaded from.',
  row_no       INT UNSIGNED NOT NULL COMMENT 'Row index within the segment''s exe member.',
  host_id      VARCHAR(63) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'Host (from the segment manifest).',
  boot_id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'Boot of the host (from the segment manifest).',
  ts           DATETIME(6) NOT NULL COMMENT 'First exec of this identity the row covers (UTC, microseconds).',
  last_ts      DATETIME(6) NOT NULL COMMENT 'Last exec of this identity before the row was sent (UTC, microseconds).',
  count        INT UNSIGNED NOT NULL COMMENT 'Execs of this identity the row covers (an ELF interpreter counts for every program it loads).',
  pid          INT NOT NULL COMMENT 'Process id of the first exec the row covers.',
  dev          BIGINT UNSIGNED NOT NULL COMMENT 'Device number (st_dev, Linux encoding) of the file''s file system.',
  inode        BIGINT UNSIGNED NOT NULL COMMENT 'Inode number of the file.',
  size         BIGINT NOT NULL COMMENT 'Size of the file in bytes.',
  mtime_ns     BIGINT NOT NULL COMMENT 'Modification time of the file, ns since the Unix epoch.',
  ctime_ns     BIGINT NOT NULL COMMENT 'Status change time of the file, ns since the Unix epoch.',
  sha256       VARBINARY(32) NULL COMMENT 'SHA-256 of the file (32 bytes; HEX() to print); NULL if skipped (see skip).',
  how          VARCHAR(8) CHARACTER SET ascii NULL COMMENT 'How the file was opened for hashing: handle (open_by_handle_at of the fanotify file handle) or proc (/proc/PID/exe).',
  skip         VARCHAR(16) CHARACTER SET ascii NULL COMMENT 'Why there is no hash: too_large, changed (modified while read) or read_error; NULL when hashed.',
  path         VARBINARY(4096) NULL COMMENT 'Path of the file at the first exec, exact bytes; NULL if unknown.',
  PRIMARY KEY (segment_id, row_no),
  KEY sha256 (sha256, host_id),
  KEY host_identity (host_id, dev, inode, ts),
  KEY host_path (host_id, path(255), ts)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='Executed files of a host by identity, with their SHA-256: one row when an identity is first executed and one per refresh interval while it still is. Not partitioned; kept until the host is purged (small).';
