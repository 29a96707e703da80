-- pofr schema, migration 001: tables.
--
-- Conventions (docs/schema.md explains each column again):
--   * One database for the fleet; every event row carries host_id and boot_id
--     (from the segment manifest) and the segment_id/row_no it came from.
--   * Timestamps are DATETIME(6) in UTC; the nanosecond remainder of the
--     main timestamp is in ts_ns, so ts + ts_ns is exactly what the host sent.
--     tz_offset is the host's UTC offset in seconds when the segment was sealed.
--   * Anything a process or the kernel names (comm, exe, argv, cwd, paths,
--     cgroup, tty, container id, account names, gap reasons) is VARBINARY/BLOB:
--     exact bytes. Views add display text.
--   * Event tables are partitioned by UTC day on ts (pYYYYMMDD, and pmax for
--     the rest); `pofr-server retention` adds and drops day partitions. Their
--     primary key (segment_id, row_no, ts) names each row's origin; it
--     includes ts because every unique key of a partitioned table must.
--   * Statements are idempotent (IF NOT EXISTS) so that a migration cut short
--     can be applied again.

CREATE TABLE IF NOT EXISTS schema_version (
  version    INT UNSIGNED NOT NULL PRIMARY KEY COMMENT 'Migration number (the NNN of schema/NNN_name.sql).',
  name       VARCHAR(255) NOT NULL COMMENT 'Migration file name.',
  applied_at DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6) COMMENT 'When it was applied (UTC).'
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='Migrations applied by pofr-server schema apply.';

CREATE TABLE IF NOT EXISTS hosts (
  host_id        VARCHAR(63) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY COMMENT 'Host id assigned by the server at registration approval.',
  hostname       VARCHAR(255) NULL COMMENT 'Hostname the host reported at registration.',
  machine_id     VARCHAR(64)  NULL COMMENT '/etc/machine-id of the host.',
  dmi_uuid       VARCHAR(64)  NULL COMMENT 'DMI product UUID of the host, if it has one.',
  ips            TEXT         NULL COMMENT 'IP addresses the host reported, comma-separated.',
  os             VARCHAR(255) NULL COMMENT 'Operating system the host reported.',
  kernel         VARCHAR(255) NULL COMMENT 'Kernel release the host reported.',
  version        VARCHAR(64)  NULL COMMENT 'pofr-collector version the host reported.',
  ssh_key_fp     VARCHAR(64)  NULL COMMENT 'SHA256 fingerprint of the upload (SSH) key, as ssh-keygen -l shows it.',
  signing_key    VARBINARY(32) NULL COMMENT 'Raw Ed25519 public key that signs the host''s segments.',
  status         VARCHAR(16) CHARACTER SET ascii NOT NULL COMMENT 'active or revoked.',
  registered_at  DATETIME(6)  NULL COMMENT 'When the registration was approved (UTC).',
  last_ip        VARCHAR(45)  NULL COMMENT 'Address of the host''s last upload connection.',
  last_seen      DATETIME(6)  NULL COMMENT 'End of the newest segment loaded for the host (UTC).',
  synced_at      DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6) COMMENT 'When the loader last copied this row from the registry.'
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='Registered hosts, copied from the server''s registry by the loader.';

CREATE TABLE IF NOT EXISTS segments (
  segment_id     BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY COMMENT 'Ledger row id; event rows refer to it.',
  host_id        VARCHAR(63) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'Host that signed the segment (manifest; equals its inbox).',
  boot_id        VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'Boot id of the host while the segment was recorded (manifest).',
  seq            BIGINT UNSIGNED NOT NULL COMMENT 'Sequence number of the segment on its host (manifest).',
  digest         BINARY(32) NOT NULL COMMENT 'SHA-256 of the manifest: the segment''s identity.',
  prev_digest    BINARY(32) NULL COMMENT 'Digest of the previous segment as the host recorded it (manifest); NULL for seq 1.',
  chain_ok       TINYINT NULL COMMENT '1: prev_digest equals the digest of the loaded segment seq-1, or seq is 1; 0: chain broken; NULL: predecessor not loaded (yet).',
  ts_from        DATETIME(6) NULL COMMENT 'Earliest event time in the segment (UTC, manifest).',
  ts_to          DATETIME(6) NULL COMMENT 'Latest event time in the segment (UTC, manifest).',
  tz_offset      MEDIUMINT NOT NULL DEFAULT 0 COMMENT 'Host''s UTC offset in seconds when the segment was sealed.',
  modes          VARCHAR(1024) NULL COMMENT 'Capture mode per source (manifest modes), as source=mode pairs sorted by source, comma-separated (e.g. proc=poll marks the /proc fallback).',
  sealed_at      DATETIME(6) NULL COMMENT 'When the host sealed the segment (UTC, manifest created).',
  collector_version VARCHAR(64) NULL COMMENT 'pofr-collector version that wrote the segment (manifest).',
  rows_proc      INT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'Rows loaded into proc_events.',
  rows_file      INT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'Rows loaded into file_events.',
  rows_sock      INT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'Rows loaded into sock_events.',
  rows_gap       INT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'Rows loaded into gaps.',
  rows_acct      INT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'Rows loaded into accounts.',
  counters       LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL COMMENT 'Per-source counters of the manifest ({"proc":{"seen":N,"lost":N},...}) as JSON.' CHECK (counters IS NULL OR JSON_VALID(counters)),
  file_name      VARCHAR(255) NOT NULL COMMENT 'File name the segment arrived under (now in archive/<host_id>/).',
  file_bytes     BIGINT UNSIGNED NOT NULL COMMENT 'Size of the segment file.',
  received_at    DATETIME(6) NULL COMMENT 'When the file arrived in the inbox (its modification time, UTC).',
  loaded_at      DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) COMMENT 'When the loader committed it (UTC).',
  UNIQUE KEY host_seq (host_id, seq),
  UNIQUE KEY digest (digest)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='Custody ledger: one row per loaded segment, written in the same transaction as its rows.';

CREATE TABLE IF NOT EXISTS quarantine (
  quarantine_id  BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY COMMENT 'Row id.',
  host_id        VARCHAR(63) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'Inbox the file was found in.',
  file           VARBINARY(1024) NOT NULL COMMENT 'File name (now in quarantine/<host_id>/, with a .reason file beside it).',
  class          VARCHAR(32) CHARACTER SET ascii NOT NULL COMMENT 'Kind of refusal: corrupt, bad_signature, wrong_host, too_large, name, replay, unknown_host, decode, load.',
  reason         TEXT NULL COMMENT 'The error, in words.',
  seq            BIGINT UNSIGNED NULL COMMENT 'Sequence number, if the manifest could be read.',
  digest         BINARY(32) NULL COMMENT 'Manifest digest, if it could be computed.',
  file_bytes     BIGINT UNSIGNED NULL COMMENT 'Size of the file.',
  at             DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) COMMENT 'When it was quarantined (UTC).',
  KEY host_at (host_id, at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='Segments the loader refused, and why.';

CREATE TABLE IF NOT EXISTS proc_events (
  segment_id   BIGINT UNSIGNED NOT NULL COMMENT 'Ledger row (segments) the row was loaded from.',
  row_no       INT UNSIGNED NOT NULL COMMENT 'Row index within the segment''s proc member.',
  host_id      VARCHAR(63) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'Host (from the segment manifest).',
  boot_id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'Boot of the host (from the segment manifest); with pid and proc_start it names one process life.',
  ts           DATETIME(6) NOT NULL COMMENT 'When the event happened (UTC, microseconds): kernel event time for cn_proc events; sampling time for snapshot and poll rows.',
  ts_ns        SMALLINT UNSIGNED NOT NULL COMMENT 'Nanoseconds beyond the microsecond of ts (0-999).',
  tz_offset    MEDIUMINT NOT NULL COMMENT 'Host''s UTC offset in seconds (from the segment manifest).',
  event        VARCHAR(16) CHARACTER SET ascii NULL COMMENT 'fork, exec, exit, uid, gid, sid, comm, ptrace, coredump or snapshot (already running when recording started or resynchronised).',
  pid          INT NOT NULL COMMENT 'Process id (thread group id) in the initial pid namespace.',
  tid          INT NOT NULL COMMENT 'Thread id the kernel reported the event for; equals pid unless a non-leader thread.',
  ppid         INT NOT NULL COMMENT 'Parent process id at the time of the event (0 if unknown).',
  proc_start   BIGINT NOT NULL COMMENT 'Start of the process, ns since boot at clock-tick resolution (/proc/PID/stat starttime).',
  parent_start BIGINT NULL COMMENT 'proc_start of the parent; NULL if unknown (flag parent_unknown).',
  uid          INT UNSIGNED NULL COMMENT 'Real user id; NULL if unknown.',
  euid         INT UNSIGNED NULL COMMENT 'Effective user id; NULL if unknown.',
  gid          INT UNSIGNED NULL COMMENT 'Real group id; NULL if unknown.',
  egid         INT UNSIGNED NULL COMMENT 'Effective group id; NULL if unknown.',
  auid         INT UNSIGNED NULL COMMENT 'Login (audit) uid from /proc/PID/loginuid; NULL if unset or unknown.',
  session_id   INT UNSIGNED NULL COMMENT 'Audit session id (exec/snapshot rows) or the new session id (sid rows); NULL if unset or unknown.',
  tty          VARBINARY(1024) NULL COMMENT 'Controlling terminal (e.g. pts/0), exact bytes; NULL if none or unknown.',
  comm         VARBINARY(1024) NULL COMMENT 'Command name (/proc/PID/comm), exact bytes; on comm rows the new name.',
  exe          VARBINARY(4096) NULL COMMENT 'Path of the executable, exact bytes (from /proc/PID/exe or fanotify, flag exe_from_fanotify); NULL if unknown.',
  argv         MEDIUMBLOB NULL COMMENT 'Arguments exactly as /proc/PID/cmdline (each followed by a NUL byte); cut at the cap (flag argv_truncated); NULL if unread.',
  cmdline      MEDIUMTEXT CHARACTER SET utf8mb4 AS (CONVERT(REPLACE(TRIM(TRAILING 0x00 FROM argv), 0x00, 0x20) USING utf8mb4)) VIRTUAL COMMENT 'Display form of argv: arguments joined by spaces, invalid UTF-8 shown as ?. Not exact: use argv for evidence.',
  cwd          VARBINARY(4096) NULL COMMENT 'Working directory at exec, exact bytes; NULL if unknown.',
  exit_code    INT NULL COMMENT 'Exit status (0-255) on exit rows of a normal exit; NULL otherwise.',
  exit_signal  INT NULL COMMENT 'Signal that killed the process (exit and coredump rows); NULL otherwise.',
  tracer_pid   INT NULL COMMENT 'ptrace rows: tracer pid on attach, 0 on detach; NULL otherwise.',
  cgroup       VARBINARY(4096) NULL COMMENT 'cgroup v2 path of the process, exact bytes; NULL if unknown.',
  container_id VARBINARY(1024) NULL COMMENT 'Container id derived from the cgroup path; NULL if not in a recognised container.',
  ns_pid       INT UNSIGNED NULL COMMENT 'Inode of the pid namespace; NULL if unknown.',
  ns_mnt       INT UNSIGNED NULL COMMENT 'Inode of the mount namespace; NULL if unknown.',
  ns_net       INT UNSIGNED NULL COMMENT 'Inode of the network namespace; NULL if unknown.',
  ns_user      INT UNSIGNED NULL COMMENT 'Inode of the user namespace; NULL if unknown.',
  ns_uts       INT UNSIGNED NULL COMMENT 'Inode of the UTS namespace; NULL if unknown.',
  ns_ipc       INT UNSIGNED NULL COMMENT 'Inode of the IPC namespace; NULL if unknown.',
  ns_cgroup    INT UNSIGNED NULL COMMENT 'Inode of the cgroup namespace; NULL if unknown.',
  flags        INT UNSIGNED NOT NULL COMMENT 'Bit set: 1 gone, 2 late_read, 4 argv_truncated, 8 self, 16 poll, 32 thread, 64 exe_from_fanotify, 128 parent_unknown, 256 argv_from_proc.',
  PRIMARY KEY (segment_id, row_no, ts),
  KEY host_ts (host_id, ts),
  KEY proc (host_id, boot_id, pid, proc_start),
  KEY parent (host_id, boot_id, ppid, parent_start)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='Process events (cn_proc, or /proc polling in fallback mode).'
  PARTITION BY RANGE COLUMNS(ts) (PARTITION pmax VALUES LESS THAN (MAXVALUE));

CREATE TABLE IF NOT EXISTS file_events (
  segment_id   BIGINT UNSIGNED NOT NULL COMMENT 'Ledger row (segments) the row was loaded from.',
  row_no       INT UNSIGNED NOT NULL COMMENT 'Row index within the segment''s file member.',
  host_id      VARCHAR(63) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'Host (from the segment manifest).',
  boot_id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'Boot of the host (from the segment manifest).',
  ts           DATETIME(6) NOT NULL COMMENT 'First access in the aggregation window (UTC, microseconds).',
  ts_ns        SMALLINT UNSIGNED NOT NULL COMMENT 'Nanoseconds beyond the microsecond of ts (0-999).',
  tz_offset    MEDIUMINT NOT NULL COMMENT 'Host''s UTC offset in seconds (from the segment manifest).',
  last_ts      DATETIME(6) NOT NULL COMMENT 'Last access in the window (UTC, microseconds); equals ts when count is 1.',
  count        INT UNSIGNED NOT NULL COMMENT 'Accesses aggregated into this row (a lower bound).',
  pid          INT NOT NULL COMMENT 'Process id that made the access.',
  proc_start   BIGINT NULL COMMENT 'proc_start of that process; NULL if unknown (flag proc_unknown).',
  uid          INT UNSIGNED NULL COMMENT 'Effective user id of the process; NULL if unknown.',
  op           VARCHAR(16) CHARACTER SET ascii NULL COMMENT 'open, exec, write (closed after writing), create, delete, rename, moved_from, moved_to, or fd (/proc/PID/fd scan).',
  path         VARBINARY(4096) NULL COMMENT 'Absolute path, exact bytes; for unresolved rows only the name within the directory named by dev/inode.',
  new_path     VARBINARY(4096) NULL COMMENT 'rename rows: the new path, exact bytes; NULL otherwise.',
  inode        BIGINT UNSIGNED NULL COMMENT 'Inode of the file (of its directory for unresolved rows); NULL if unknown.',
  dev          BIGINT UNSIGNED NULL COMMENT 'Device number (st_dev) of the file system; NULL if unknown.',
  flags        INT UNSIGNED NOT NULL COMMENT 'Bit set: 1 unresolved, 2 self, 4 fallback, 8 dir, 16 proc_unknown.',
  PRIMARY KEY (segment_id, row_no, ts),
  KEY host_ts (host_id, ts),
  KEY proc (host_id, boot_id, pid, proc_start),
  KEY path (path(255))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='File accesses (fanotify), aggregated per (process, path, op) and window.'
  PARTITION BY RANGE COLUMNS(ts) (PARTITION pmax VALUES LESS THAN (MAXVALUE));

CREATE TABLE IF NOT EXISTS sock_events (
  segment_id   BIGINT UNSIGNED NOT NULL COMMENT 'Ledger row (segments) the row was loaded from.',
  row_no       INT UNSIGNED NOT NULL COMMENT 'Row index within the segment''s sock member.',
  host_id      VARCHAR(63) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'Host (from the segment manifest).',
  boot_id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'Boot of the host (from the segment manifest).',
  ts           DATETIME(6) NOT NULL COMMENT 'Observation time (UTC, microseconds): destroy notification for close rows, dump time otherwise.',
  ts_ns        SMALLINT UNSIGNED NOT NULL COMMENT 'Nanoseconds beyond the microsecond of ts (0-999).',
  tz_offset    MEDIUMINT NOT NULL COMMENT 'Host''s UTC offset in seconds (from the segment manifest).',
  event        VARCHAR(16) CHARACTER SET ascii NULL COMMENT 'listen, open (connected socket first seen) or close (destroyed).',
  proto        VARCHAR(8) CHARACTER SET ascii NULL COMMENT 'tcp or udp.',
  family       TINYINT UNSIGNED NOT NULL COMMENT '4 for IPv4, 6 for IPv6.',
  state        VARCHAR(16) CHARACTER SET ascii NULL COMMENT 'TCP state name (ESTABLISHED, LISTEN, CLOSE, ...); for UDP ESTABLISHED if connected, CLOSE otherwise.',
  direction    VARCHAR(8) CHARACTER SET ascii NULL COMMENT 'out (we connected), in (accepted on a local listener) or listen; NULL if unknown.',
  local_addr   VARBINARY(16) NULL COMMENT 'Local address, 4 or 16 bytes in network order (INET6_NTOA shows it).',
  local_port   SMALLINT UNSIGNED NOT NULL COMMENT 'Local port.',
  remote_addr  VARBINARY(16) NULL COMMENT 'Remote address, 4 or 16 bytes in network order; all zero for listeners and unconnected UDP.',
  remote_port  SMALLINT UNSIGNED NOT NULL COMMENT 'Remote port; 0 for listeners and unconnected UDP.',
  inode        BIGINT UNSIGNED NULL COMMENT 'Socket inode; NULL if never seen alive in a dump.',
  cookie       BIGINT UNSIGNED NOT NULL COMMENT 'Kernel socket cookie: the same in every dump and in the destroy notification of one socket.',
  uid          INT UNSIGNED NULL COMMENT 'Owning user id from the dump; NULL if never seen alive.',
  pid          INT NULL COMMENT 'Owning process id; NULL if no owner was seen (flag owner_unknown).',
  proc_start   BIGINT NULL COMMENT 'proc_start of the owning process; NULL if unknown.',
  netns        BIGINT UNSIGNED NULL COMMENT 'Inode of the socket''s network namespace; NULL if unknown.',
  bytes_sent   BIGINT UNSIGNED NULL COMMENT 'TCP: bytes sent (tcp_info) at the time of the row; NULL for UDP or unknown.',
  bytes_recv   BIGINT UNSIGNED NULL COMMENT 'TCP: bytes received (tcp_info); NULL for UDP or unknown.',
  first_ts     DATETIME(6) NULL COMMENT 'When the socket was first seen alive (UTC, microseconds); NULL if never.',
  flags        INT UNSIGNED NOT NULL COMMENT 'Bit set: 1 self, 2 owner_unknown, 4 fallback, 8 from_destroy, 16 vanished, 32 owner_from_listener.',
  PRIMARY KEY (segment_id, row_no, ts),
  KEY host_ts (host_id, ts),
  KEY proc (host_id, boot_id, pid, proc_start),
  KEY remote (remote_addr, remote_port)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='Socket observations (sock_diag dumps and destroy notifications).'
  PARTITION BY RANGE COLUMNS(ts) (PARTITION pmax VALUES LESS THAN (MAXVALUE));

CREATE TABLE IF NOT EXISTS gaps (
  segment_id   BIGINT UNSIGNED NOT NULL COMMENT 'Ledger row (segments) the row was loaded from.',
  row_no       INT UNSIGNED NOT NULL COMMENT 'Row index within the segment''s gap member.',
  host_id      VARCHAR(63) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'Host (from the segment manifest).',
  boot_id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'Boot of the host (from the segment manifest).',
  from_ts      DATETIME(6) NOT NULL COMMENT 'Start of the incomplete interval (UTC, microseconds).',
  to_ts        DATETIME(6) NOT NULL COMMENT 'End of the incomplete interval (UTC, microseconds).',
  source       VARCHAR(16) CHARACTER SET ascii NULL COMMENT 'What is incomplete: proc, file, sock, spool (segments evicted by the quota) or collector (not running).',
  lost         BIGINT NULL COMMENT 'Events (for spool: rows) lost; NULL if unknown.',
  reason       BLOB NULL COMMENT 'Why, in words (exact bytes as the collector wrote them).',
  PRIMARY KEY (segment_id, row_no),
  KEY host_ts (host_id, from_ts)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='Intervals in which the record of a host is known to be incomplete. Not partitioned; kept forever (small).';

CREATE TABLE IF NOT EXISTS accounts (
  segment_id   BIGINT UNSIGNED NOT NULL COMMENT 'Ledger row (segments) the row was loaded from.',
  row_no       INT UNSIGNED NOT NULL COMMENT 'Row index within the segment''s acct member.',
  host_id      VARCHAR(63) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'Host (from the segment manifest).',
  boot_id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'Boot of the host (from the segment manifest).',
  ts           DATETIME(6) NOT NULL COMMENT 'When the mapping was read (UTC, microseconds).',
  kind         VARCHAR(8) CHARACTER SET ascii NULL COMMENT 'user or group.',
  id           INT UNSIGNED NOT NULL COMMENT 'The uid or gid.',
  name         VARBINARY(1024) NULL COMMENT 'Its name from /etc/passwd or /etc/group, exact bytes.',
  PRIMARY KEY (segment_id, row_no),
  KEY host_id (host_id, kind, id, ts)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='User and group names of a host over time. Not partitioned; kept forever (small).';
