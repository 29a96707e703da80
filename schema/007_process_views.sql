-- pofr schema, migration 007: the processes view without a window function.
--
-- 002's processes view picked each life's describing row with ROW_NUMBER()
-- OVER (PARTITION BY the life) in a derived table over all of proc_events:
-- MariaDB cannot push a host filter into it, so one host's query read every
-- host's exec, snapshot and fork rows. Here the grouped derived table (into
-- which MariaDB pushes "host_id = ..." and the other life columns) also
-- computes the describing row's primary key, as the minimum of a fixed-width
-- text key in the same order as before (exec, then snapshot, then fork; then
-- ts, ts_ns, segment_id, row_no), and the row is read by that key. Columns
-- and meaning are those of 002.
--
-- process_tree and connections joined a second copy of processes for the
-- parent or owner life; MariaDB does not push a join condition into that
-- grouped derived table either, so they read every host's rows. They now
-- take the few columns they need from that life's describing row directly
-- (first exec, else snapshot, else fork, by the proc index), which is what
-- the processes view returns for it.
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
  k.tz_offset
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
 AND d.ts = CAST(STR_TO_DATE(SUBSTRING(k.d_key, 2, 20), '%Y%m%d%H%i%s%f') AS DATETIME(6));

-- process_tree: one row per parent -> child edge between process lives.
-- The parent columns are NULL when the parent's life was not recorded.
CREATE OR REPLACE VIEW process_tree AS
SELECT
  c.host_id, c.boot_id,
  c.parent_pid, c.parent_start,
  (SELECT x.exe FROM proc_events x
    WHERE x.host_id = c.host_id AND x.boot_id = c.boot_id AND x.pid = c.parent_pid AND x.proc_start = c.parent_start
      AND x.event IN ('exec', 'snapshot', 'fork')
    ORDER BY CASE x.event WHEN 'exec' THEN 0 WHEN 'snapshot' THEN 1 ELSE 2 END,
             x.ts, x.ts_ns, x.segment_id, x.row_no LIMIT 1) AS parent_exe,
  (SELECT x.cmdline FROM proc_events x
    WHERE x.host_id = c.host_id AND x.boot_id = c.boot_id AND x.pid = c.parent_pid AND x.proc_start = c.parent_start
      AND x.event IN ('exec', 'snapshot', 'fork')
    ORDER BY CASE x.event WHEN 'exec' THEN 0 WHEN 'snapshot' THEN 1 ELSE 2 END,
             x.ts, x.ts_ns, x.segment_id, x.row_no LIMIT 1) AS parent_cmdline,
  c.pid        AS child_pid,
  c.proc_start AS child_start,
  c.exe        AS child_exe,
  c.cmdline    AS child_cmdline,
  c.start_ts   AS child_start_ts,
  c.exit_ts    AS child_exit_ts,
  c.uid        AS child_uid
FROM processes c;

-- connections: socket rows with their addresses in text and the owner
-- process life's exe and argv (NULL when the owner is unknown).
CREATE OR REPLACE VIEW connections AS
SELECT
  s.ts, s.ts_ns, s.host_id, s.boot_id, s.event, s.proto, s.family, s.state, s.direction,
  INET6_NTOA(s.local_addr)  AS local_ip,  s.local_port,
  INET6_NTOA(s.remote_addr) AS remote_ip, s.remote_port,
  s.local_addr, s.remote_addr,
  s.bytes_sent, s.bytes_recv, s.first_ts, s.cookie, s.inode, s.uid,
  s.pid, s.proc_start,
  (SELECT x.exe FROM proc_events x
    WHERE x.host_id = s.host_id AND x.boot_id = s.boot_id AND x.pid = s.pid AND x.proc_start = s.proc_start
      AND x.event IN ('exec', 'snapshot', 'fork')
    ORDER BY CASE x.event WHEN 'exec' THEN 0 WHEN 'snapshot' THEN 1 ELSE 2 END,
             x.ts, x.ts_ns, x.segment_id, x.row_no LIMIT 1) AS exe,
  CONVERT((SELECT x.exe FROM proc_events x
    WHERE x.host_id = s.host_id AND x.boot_id = s.boot_id AND x.pid = s.pid AND x.proc_start = s.proc_start
      AND x.event IN ('exec', 'snapshot', 'fork')
    ORDER BY CASE x.event WHEN 'exec' THEN 0 WHEN 'snapshot' THEN 1 ELSE 2 END,
             x.ts, x.ts_ns, x.segment_id, x.row_no LIMIT 1) USING utf8mb4) AS exe_text,
  (SELECT x.argv FROM proc_events x
    WHERE x.host_id = s.host_id AND x.boot_id = s.boot_id AND x.pid = s.pid AND x.proc_start = s.proc_start
      AND x.event IN ('exec', 'snapshot', 'fork')
    ORDER BY CASE x.event WHEN 'exec' THEN 0 WHEN 'snapshot' THEN 1 ELSE 2 END,
             x.ts, x.ts_ns, x.segment_id, x.row_no LIMIT 1) AS argv,
  (SELECT x.cmdline FROM proc_events x
    WHERE x.host_id = s.host_id AND x.boot_id = s.boot_id AND x.pid = s.pid AND x.proc_start = s.proc_start
      AND x.event IN ('exec', 'snapshot', 'fork')
    ORDER BY CASE x.event WHEN 'exec' THEN 0 WHEN 'snapshot' THEN 1 ELSE 2 END,
             x.ts, x.ts_ns, x.segment_id, x.row_no LIMIT 1) AS cmdline,
  s.flags, s.segment_id, s.row_no
FROM sock_events s;
