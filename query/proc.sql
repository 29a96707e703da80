-- proc: one process life: its parent chain, its own events, its children,
-- the files it touched and its sockets.
--
-- Parameters:
--   @host   host_id
--   @boot   boot_id
--   @pid    process id
--   @start  proc_start (ns since boot; with boot and pid it names the life)
--
-- relation is 'parent', 'ancestor N' (N generations up), 'self', 'child',
-- 'file' or 'sock'. Ancestors come first, oldest first; the rest in time
-- order. The parent chain follows (ppid, parent_start) of each life's fork,
-- snapshot or exec rows, at most 64 generations. user is the name the host
-- reported for the row's uid as of the row's time (looked up once, over
-- every part's rows).
WITH RECURSIVE chain (depth, pid, proc_start, ppid, parent_start) AS (
  SELECT DISTINCT 0, e.pid, e.proc_start, e.ppid, e.parent_start
  FROM proc_events e
  WHERE e.host_id = @host AND e.boot_id = @boot AND e.pid = @pid AND e.proc_start = @start
    AND e.event IN ('fork', 'snapshot', 'exec')
  UNION
  SELECT c.depth + 1, e.pid, e.proc_start, e.ppid, e.parent_start
  FROM chain c
  JOIN proc_events e
    ON e.host_id = @host AND e.boot_id = @boot AND e.pid = c.ppid AND e.proc_start = c.parent_start
   AND e.event IN ('fork', 'snapshot', 'exec')
  WHERE c.depth < 64
)
SELECT x.relation, x.time, x._ts_ns, x._tz_offset, x.event, x.pid, x.proc_start,
  (SELECT n.name FROM accounts n WHERE n.host_id = @host AND n.kind = 'user' AND n.id = x._uid
    ORDER BY n.ts <= x.time DESC, n.ts DESC LIMIT 1) AS user,
  x.exe, x.detail, x.argv, x._section, x._k, x._row_no
FROM (
  SELECT CASE WHEN a.depth = 1 THEN 'parent' ELSE CONCAT('ancestor ', a.depth) END AS relation,
    p.start_ts AS time, 0 AS _ts_ns, p.tz_offset AS _tz_offset, 'start' AS event,
    p.pid, p.proc_start,
    p.uid AS _uid,
    COALESCE(p.exe, p.comm) AS exe,
    NULL AS detail,
    p.argv,
    0 AS _section, -a.depth AS _k, 0 AS _row_no
  FROM (SELECT MIN(depth) AS depth, pid, proc_start FROM chain WHERE depth > 0 GROUP BY pid, proc_start) a
  JOIN processes p ON p.host_id = @host AND p.boot_id = @boot AND p.pid = a.pid AND p.proc_start = a.proc_start
  UNION ALL
  SELECT 'self', e.ts, e.ts_ns, e.tz_offset, e.event, e.pid, e.proc_start,
    e.uid,
    COALESCE(e.exe, e.comm),
    e.detail,
    CASE WHEN e.event IN ('exec', 'snapshot') THEN e.argv END,
    1, 0, e.row_no
  FROM proc_event_details e
  WHERE e.host_id = @host AND e.boot_id = @boot AND e.pid = @pid AND e.proc_start = @start
  UNION ALL
  SELECT 'child', c.start_ts, 0, c.tz_offset, 'start', c.pid, c.proc_start,
    c.uid,
    COALESCE(c.exe, c.comm),
    CASE WHEN c.exit_ts IS NULL THEN NULL
         WHEN c.exit_signal IS NOT NULL THEN CONCAT('exited at ', c.exit_ts, ' signal ', c.exit_signal)
         ELSE CONCAT('exited at ', c.exit_ts, ' code ', c.exit_code) END,
    c.argv,
    1, 0, 0
  FROM processes c
  WHERE c.host_id = @host AND c.boot_id = @boot AND c.parent_pid = @pid AND c.parent_start = @start
  UNION ALL
  SELECT 'file', f.ts, f.ts_ns, f.tz_offset, f.op, f.pid, f.proc_start,
    f.uid,
    NULL,
    CASE WHEN f.new_path IS NULL THEN f.path ELSE CONCAT(f.path, ' -> ', f.new_path) END,
    NULL,
    1, 0, f.row_no
  FROM file_events f
  WHERE f.host_id = @host AND f.boot_id = @boot AND f.pid = @pid AND f.proc_start = @start
  UNION ALL
  SELECT 'sock', s.ts, s.ts_ns, s.tz_offset, s.event, s.pid, s.proc_start,
    s.uid,
    NULL,
    CONCAT(s.proto, ' ', COALESCE(s.direction, '?'), ' ',
           COALESCE(CONVERT(INET6_NTOA(s.local_addr) USING ascii), '?'), ':', s.local_port, ' -> ',
           COALESCE(CONVERT(INET6_NTOA(s.remote_addr) USING ascii), '?'), ':', s.remote_port,
           COALESCE(CONCAT(' ', s.state), '')),
    NULL,
    1, 0, s.row_no
  FROM sock_events s
  WHERE s.host_id = @host AND s.boot_id = @boot AND s.pid = @pid AND s.proc_start = @start
) x
ORDER BY x._section, x._k, x.time, x._ts_ns, x._row_no
