-- pofr schema: the views, in their current form.
--
-- Views hold no rows, so unlike the numbered migrations they are not
-- history: this file is their one definition, and Apply runs it after the
-- migrations every time (a "repeatable" script, like Flyway's R__ files).
-- Every statement is CREATE OR REPLACE VIEW, so running it again changes
-- nothing. A change to a view goes here, with a new migration (which may
-- hold only a comment saying what changed) so that Check tells the older
-- databases to run schema apply.
--
-- Byte columns stay exact in the views (exe, argv, path, ...); columns ending
-- in _text are their display form (CONVERT ... USING utf8mb4: invalid UTF-8
-- becomes ?), and cmdline is argv with its NULs turned into spaces.
--
-- Per host, one host's cost: a view filtered to one host reads that host's
-- rows only. MariaDB pushes "host_id = ..." (and the other life columns)
-- into a grouped derived table but not a join condition, and not into a
-- window function's derived table (what 002's processes view used). So
-- processes computes its describing row's primary key in its grouping and
-- reads the row by it, and process_tree and connections take the parent's
-- or owner's few columns from that life's describing row directly (by the
-- proc index) instead of joining a second processes.

-- processes: one row per process life (host_id, boot_id, pid, proc_start),
-- assembled from its events. The describing row (exe, argv, uid, ...) is the
-- first exec of the life, or, for a process that never exec'd while
-- recorded, its first snapshot or fork row: the minimum of a fixed-width
-- text key in that order (exec, then snapshot, then fork; then ts, ts_ns,
-- segment_id, row_no). exe_key and exe_sha256 are the describing exec's
-- file identity and its hash (exe_ids).
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

-- proc_event_details: proc_events with what each row changed in words
-- (detail): the parent of a fork, the exit code or signal of an exit or a
-- coredump, the new ids of uid, gid and sid rows, the new name of a comm
-- row, the tracer of a ptrace row; NULL on other rows. query timeline and
-- query proc show it. A plain view over proc_events (MariaDB merges it into
-- a query), so filters use proc_events' indexes.
CREATE OR REPLACE VIEW proc_event_details AS
SELECT e.*,
  CASE e.event
    WHEN 'fork' THEN CONCAT('parent ', e.ppid)
    WHEN 'exit' THEN CASE WHEN e.exit_signal IS NOT NULL THEN CONCAT('signal ', e.exit_signal)
                          ELSE CONCAT('code ', e.exit_code) END
    WHEN 'coredump' THEN CONCAT('signal ', e.exit_signal)
    WHEN 'uid' THEN CONCAT('uid ', COALESCE(e.uid, '?'), ' euid ', COALESCE(e.euid, '?'))
    WHEN 'gid' THEN CONCAT('gid ', COALESCE(e.gid, '?'), ' egid ', COALESCE(e.egid, '?'))
    WHEN 'sid' THEN CONCAT('session ', COALESCE(e.session_id, '?'))
    WHEN 'comm' THEN e.comm
    WHEN 'ptrace' THEN CONCAT('tracer ', e.tracer_pid)
    ELSE NULL END AS detail
FROM proc_events e;

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

-- peer_connections: connections between two monitored hosts, one row per
-- pair of sockets (client end, server end), with the owner process life on
-- both ends. The same rules as query/peers.sql (pofr-server query peers):
--
--   * a socket is one (host_id, boot_id, cookie); its lifetime runs from
--     its first_ts (or first row) to its last row; listen rows and
--     unconnected sockets (remote_port 0) take no part;
--   * the client socket (direction out, or unknown) on one host and the
--     server socket (direction in, or unknown) on ANOTHER host are the two
--     ends of one connection when the client's remote address:port is the
--     server's local address:port, the server's remote port is the client's
--     local port (its remote address may differ behind NAT), the protocol is
--     the same, and their lifetimes overlap within 5 seconds of clock skew
--     (query peers --slack sets another);
--   * loopback and unspecified addresses never cross hosts and are left out.
--
-- A connection between two hosts whose directions are both unknown appears
-- twice, once from each end. The owner columns are NULL when the owner (or
-- its process life) was not recorded; client_exe and server_exe come from
-- the processes view (the life's first exec). client_user and server_user
-- are the account names the host reported for the owning uid, as of the
-- socket's first sight.
CREATE OR REPLACE VIEW peer_connections AS
SELECT
  x.proto, x.family,
  x.client_host, x.client_boot, x.client_cookie,
  INET6_NTOA(x.client_addr) AS client_ip, x.client_port, x.client_addr,
  x.client_first_ts, x.client_last_ts, x.client_tz_offset,
  x.client_pid, x.client_proc_start, x.client_uid,
  (SELECT n.name FROM accounts n
    WHERE n.host_id = x.client_host AND n.kind = 'user' AND n.id = x.client_uid
    ORDER BY n.ts <= x.client_first_ts DESC, n.ts DESC LIMIT 1) AS client_user,
  ca.exe AS client_exe, ca.exe_text AS client_exe_text, ca.argv AS client_argv, ca.cmdline AS client_cmdline,
  x.client_bytes_sent, x.client_bytes_recv,
  x.server_host, x.server_boot, x.server_cookie,
  INET6_NTOA(x.server_addr) AS server_ip, x.server_port, x.server_addr,
  INET6_NTOA(x.server_seen_addr) AS server_seen_ip, x.server_seen_addr,
  x.server_first_ts, x.server_last_ts, x.server_tz_offset,
  x.server_pid, x.server_proc_start, x.server_uid,
  (SELECT n.name FROM accounts n
    WHERE n.host_id = x.server_host AND n.kind = 'user' AND n.id = x.server_uid
    ORDER BY n.ts <= x.server_first_ts DESC, n.ts DESC LIMIT 1) AS server_user,
  sa.exe AS server_exe, sa.exe_text AS server_exe_text, sa.argv AS server_argv, sa.cmdline AS server_cmdline
FROM (
  SELECT
    a.host_id AS client_host, a.boot_id AS client_boot, a.cookie AS client_cookie,
    b.host_id AS server_host, b.boot_id AS server_boot, b.cookie AS server_cookie,
    MAX(a.proto) AS proto, MAX(a.family) AS family,
    MAX(a.local_addr) AS client_addr, MAX(a.local_port) AS client_port,
    MAX(b.local_addr) AS server_addr, MAX(b.local_port) AS server_port,
    MAX(b.remote_addr) AS server_seen_addr,
    MIN(COALESCE(a.first_ts, a.ts)) AS client_first_ts, MAX(a.ts) AS client_last_ts,
    MIN(COALESCE(b.first_ts, b.ts)) AS server_first_ts, MAX(b.ts) AS server_last_ts,
    MAX(a.tz_offset) AS client_tz_offset, MAX(b.tz_offset) AS server_tz_offset,
    MAX(a.pid) AS client_pid, MAX(a.proc_start) AS client_proc_start, MAX(a.uid) AS client_uid,
    MAX(b.pid) AS server_pid, MAX(b.proc_start) AS server_proc_start, MAX(b.uid) AS server_uid,
    MAX(a.bytes_sent) AS client_bytes_sent, MAX(a.bytes_recv) AS client_bytes_recv
  FROM sock_events a
  JOIN sock_events b
    ON b.local_addr = a.remote_addr AND b.local_port = a.remote_port AND b.remote_port = a.local_port
   AND b.proto = a.proto AND b.host_id <> a.host_id
  WHERE a.event <> 'listen' AND b.event <> 'listen' AND a.remote_port <> 0
    AND NOT (LENGTH(a.remote_addr) = 4 AND (LEFT(a.remote_addr, 1) = 0x7f OR a.remote_addr = 0x00000000))
    AND NOT (LENGTH(a.remote_addr) = 16 AND (a.remote_addr = 0x00000000000000000000000000000001
                                             OR a.remote_addr = 0x00000000000000000000000000000000
                                             OR LEFT(a.remote_addr, 13) = 0x00000000000000000000ffff7f))
  GROUP BY a.host_id, a.boot_id, a.cookie, b.host_id, b.boot_id, b.cookie
  HAVING COALESCE(MAX(a.direction), 'out') = 'out' AND COALESCE(MAX(b.direction), 'in') = 'in'
     AND MIN(COALESCE(a.first_ts, a.ts)) <= MAX(b.ts) + INTERVAL 5 SECOND
     AND MIN(COALESCE(b.first_ts, b.ts)) <= MAX(a.ts) + INTERVAL 5 SECOND
) x
LEFT JOIN processes ca
  ON ca.host_id = x.client_host AND ca.boot_id = x.client_boot
 AND ca.pid = x.client_pid AND ca.proc_start = x.client_proc_start
LEFT JOIN processes sa
  ON sa.host_id = x.server_host AND sa.boot_id = x.server_boot
 AND sa.pid = x.server_pid AND sa.proc_start = x.server_proc_start;
