-- pofr schema, migration 002: views for analysts.
--
-- Byte columns stay exact in the views (exe, argv, path, ...); columns ending
-- in _text are their display form (CONVERT ... USING utf8mb4: invalid UTF-8
-- becomes ?), and cmdline is argv with its NULs turned into spaces.

-- processes: one row per process life (host_id, boot_id, pid, proc_start),
-- assembled from its events. The describing row (exe, argv, uid, ...) is the
-- first exec of the life, or, for a process that never exec'd while
-- recorded, its first snapshot or fork row.
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
    MAX(tz_offset)                                            AS tz_offset
  FROM proc_events
  GROUP BY host_id, boot_id, pid, proc_start
) k
LEFT JOIN (
  SELECT e.*,
    ROW_NUMBER() OVER (PARTITION BY host_id, boot_id, pid, proc_start
                       ORDER BY CASE event WHEN 'exec' THEN 0 WHEN 'snapshot' THEN 1 ELSE 2 END,
                                ts, ts_ns, segment_id, row_no) AS n
  FROM proc_events e
  WHERE event IN ('exec', 'snapshot', 'fork')
) d ON d.host_id = k.host_id AND d.boot_id = k.boot_id AND d.pid = k.pid
   AND d.proc_start = k.proc_start AND d.n = 1;

-- process_tree: one row per parent -> child edge between process lives.
-- The parent columns are NULL when the parent's life was not recorded.
CREATE OR REPLACE VIEW process_tree AS
SELECT
  c.host_id, c.boot_id,
  c.parent_pid, c.parent_start,
  p.exe        AS parent_exe,
  p.cmdline    AS parent_cmdline,
  c.pid        AS child_pid,
  c.proc_start AS child_start,
  c.exe        AS child_exe,
  c.cmdline    AS child_cmdline,
  c.start_ts   AS child_start_ts,
  c.exit_ts    AS child_exit_ts,
  c.uid        AS child_uid
FROM processes c
LEFT JOIN processes p
  ON p.host_id = c.host_id AND p.boot_id = c.boot_id
 AND p.pid = c.parent_pid AND p.proc_start = c.parent_start;

-- timeline: process, file and socket rows interleaved, one line each.
CREATE OR REPLACE VIEW timeline AS
SELECT ts, ts_ns, host_id, boot_id, pid, proc_start, CAST('proc' AS CHAR(4) CHARACTER SET ascii) AS kind, event AS what,
  CONVERT(COALESCE(exe, comm) USING utf8mb4) AS detail, segment_id, row_no
FROM proc_events
UNION ALL
SELECT ts, ts_ns, host_id, boot_id, pid, proc_start, 'file', op,
  CONVERT(CASE WHEN new_path IS NULL THEN path ELSE CONCAT(path, ' -> ', new_path) END USING utf8mb4),
  segment_id, row_no
FROM file_events
UNION ALL
SELECT ts, ts_ns, host_id, boot_id, pid, proc_start, 'sock', event,
  CONCAT_WS(' ', CONVERT(proto USING utf8mb4), CONVERT(COALESCE(direction, '?') USING utf8mb4),
         CONCAT(CONVERT(COALESCE(INET6_NTOA(local_addr), '?') USING utf8mb4), ':', local_port),
         CONCAT(CONVERT(COALESCE(INET6_NTOA(remote_addr), '?') USING utf8mb4), ':', remote_port)),
  segment_id, row_no
FROM sock_events;

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
  o.exe, o.exe_text, o.argv, o.cmdline,
  s.flags, s.segment_id, s.row_no
FROM sock_events s
LEFT JOIN processes o
  ON o.host_id = s.host_id AND o.boot_id = s.boot_id
 AND o.pid = s.pid AND o.proc_start = s.proc_start;
