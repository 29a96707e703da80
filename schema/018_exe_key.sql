-- pofr schema, migration 018: exec rows name the file they executed.
--
-- proc_events.exe_key is the identity (device, inode, size, mtime, ctime)
-- of the file an exec executed, as a 64-bit key (event.ExeKey: the first 8
-- bytes of the SHA-256 of the five numbers in decimal joined by commas),
-- from the fanotify FAN_OPEN_EXEC of that exec. exe_ids gets the same key
-- of its identity, so an exec joins the hash of its own file exactly,
-- instead of the exe_ids row of the same path whose time range covers it
-- (which two files executed at one path within that range both matched).
-- The processes view shows the describing exec's key and hash.

ALTER TABLE proc_events ADD COLUMN IF NOT EXISTS exe_key BIGINT UNSIGNED NULL
  COMMENT 'exec rows: identity of the executed file (the one exe names) as a key: CONV(LEFT(SHA2(CONCAT_WS('','', dev, inode, size, mtime_ns, ctime_ns), 256), 16), 16, 10) of the exe_ids row of that file; NULL on other rows, when fanotify did not report the exec, and in rows of collectors before it.';

ALTER TABLE exe_ids ADD COLUMN IF NOT EXISTS exe_key BIGINT UNSIGNED NULL
  COMMENT 'Key of the identity that exec rows carry (proc_events.exe_key): CONV(LEFT(SHA2(CONCAT_WS('','', dev, inode, size, mtime_ns, ctime_ns), 256), 16), 16, 10); set by the loader after each merge.',
  ADD KEY IF NOT EXISTS host_key (host_id, exe_key);

CREATE OR REPLACE VIEW processes AS
SELECT
  k.host_id, k.boot_id, k.pid, k.proc_start,
  k.start_ts,
  k.fork_ts,
  k.exec_count,
  d.ts           AS exec_ts,
  d.exe,
  CONVERT(d.exe USING utf8mb4) AS exe_text,
  d.argv,
  d.cmdline,
  d.comm,
  CONVERT(d.comm USING utf8mb4) AS comm_text,
  d.cwd,
  d.uid, d.euid, d.gid, d.egid, d.auid, d.session_id,
  d.tty, d.cgroup, d.container_id,
  k.exit_ts, k.exit_code, k.exit_signal,
  k.parent_pid, k.parent_start,
  k.flags,
  k.tz_offset,
  d.exe_key,
  x.sha256 AS exe_sha256
FROM (
  SELECT host_id, boot_id, pid, proc_start,
    MIN(ts)                                                   AS start_ts,
    MIN(CASE WHEN event = 'fork' THEN ts END)                 AS fork_ts,
    SUM(event = 'exec')                                       AS exec_count,
    MAX(CASE WHEN event = 'exit' THEN ts END)                 AS exit_ts,
    MAX(CASE WHEN event = 'exit' THEN exit_code END)          AS exit_code,
    MAX(CASE WHEN event IN ('exit', 'coredump') THEN exit_signal END) AS exit_signal,
    COALESCE(MAX(CASE WHEN event = 'fork' THEN ppid END),
             MAX(CASE WHEN event = 'snapshot' THEN ppid END),
             MAX(CASE WHEN event = 'exec' THEN ppid END))     AS parent_pid,
    COALESCE(MAX(CASE WHEN event = 'fork' THEN parent_start END),
             MAX(CASE WHEN event = 'snapshot' THEN parent_start END),
             MAX(CASE WHEN event = 'exec' THEN parent_start END)) AS parent_start,
    BIT_OR(flags)                                             AS flags,
    MAX(tz_offset)                                            AS tz_offset,
    -- describing row: rank (1), ts (20: YYYYMMDDhhmmssffffff), ts_ns (3),
    -- segment_id (20), row_no (10)
    MIN(CASE WHEN event IN ('exec', 'snapshot', 'fork') THEN
      CONCAT(CASE event WHEN 'exec' THEN '0' WHEN 'snapshot' THEN '1' ELSE '2' END,
             DATE_FORMAT(ts, '%Y%m%d%H%i%s%f'), LPAD(ts_ns, 3, '0'),
             LPAD(segment_id, 20, '0'), LPAD(row_no, 10, '0')) END) AS d_key
  FROM proc_events
  GROUP BY host_id, boot_id, pid, proc_start
) k
LEFT JOIN proc_events d
  ON d.segment_id = CAST(SUBSTRING(k.d_key, 25, 20) AS UNSIGNED)
 AND d.row_no = CAST(SUBSTRING(k.d_key, 45, 10) AS UNSIGNED)
 AND d.ts = CAST(STR_TO_DATE(SUBSTRING(k.d_key, 2, 20), '%Y%m%d%H%i%s%f') AS DATETIME(6))
LEFT JOIN exe_ids x ON x.host_id = k.host_id AND x.exe_key = d.exe_key;

-- The key of every exe_ids row that has none yet. The loader runs this very
-- statement after each segment's merge (loader/exeids.go), with
-- "AND host_id = ?" added: only the identities that segment added.
UPDATE exe_ids SET exe_key = CAST(CONV(LEFT(SHA2(CONCAT_WS(',', dev, inode, size, mtime_ns, ctime_ns), 256), 16), 16, 10) AS UNSIGNED)
WHERE exe_key IS NULL;
