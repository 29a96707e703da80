-- timeline: one page of a host's process, file and socket rows in time
-- order: the rows and columns of the query package's timeline.sql, read
-- page first. Each part reads at most LIMIT+OFFSET rows of the window in
-- (host_id, ts) order, and the user, exe and DNS name of a row are looked
-- up for the page's rows only (derived table t), so a page costs the same in
-- a busy window as in a quiet one. The lookups are LEFT JOINs ranked by
-- ROW_NUMBER(), as in the query package's timeline.sql, not correlated
-- subqueries: Spider (a fleet's head) sends a subquery's outer column to the
-- shard, which fails (Error 1054). The web interface writes the page's numbers into the text (the
-- LIMIT clauses below); the SQL a page shows is the text that ran.
--
-- Parameters:
--   @host  host_id
--   @from  DATETIME(6) UTC: rows at or after it (included)
--   @to    DATETIME(6) UTC: rows before it (excluded)
--
-- exe is the executable of the process the row belongs to (for file and
-- socket rows: of its newest exec at or before the row). detail is, for
-- proc rows, what changed; for file rows the path (old -> new for
-- renames); for socket rows protocol, direction and endpoints, and the DNS
-- name the remote address was resolved from (dns_names, as query conns
-- finds it). argv is set on exec and snapshot rows.
SELECT d.time, d._ts_ns, d._tz_offset, d.kind, d.event, d.pid, d.uid, d.user, d.exe,
  CASE WHEN d.kind = 'sock' AND d._remote_port <> 0 THEN CONCAT(d.detail, COALESCE(CONCAT(' name ', d._qname), ''))
       ELSE d.detail END AS detail,
  d.argv
FROM (
SELECT v.time, v._ts_ns, v._tz_offset, v.kind, v.event, v.pid, v.uid, v._uname AS user, v.exe, v.detail,
  v.argv, v._remote_port, v._order, v._segment_id, v._row_no, n.qname AS _qname,
  ROW_NUMBER() OVER (PARTITION BY v._order, v._segment_id, v._row_no
                     ORDER BY (n.boot_id = v._boot_id AND n.pid <=> v.pid AND n.proc_start <=> v._proc_start) DESC,
                       n.ts DESC) AS _nrank
FROM (
  SELECT w.*, a.name AS _uname,
    ROW_NUMBER() OVER (PARTITION BY w._order, w._segment_id, w._row_no
                       ORDER BY a.ts <= w.time DESC, a.ts DESC) AS _urank
  FROM (
    SELECT t.*, COALESCE(t._exe, p.exe, p.comm) AS exe,
      ROW_NUMBER() OVER (PARTITION BY t._order, t._segment_id, t._row_no
                         ORDER BY p.exe IS NOT NULL DESC, p.ts <= t.time DESC, p.ts DESC) AS _xrank
    FROM (
  SELECT * FROM (
    (SELECT e.ts AS time, e.ts_ns AS _ts_ns, e.tz_offset AS _tz_offset, 'proc' AS kind, e.event,
      e.pid, e.uid, e.boot_id AS _boot_id, e.proc_start AS _proc_start, e.exe AS _exe,
      NULL AS _remote_addr, NULL AS _remote_port,
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
        ELSE NULL END AS detail,
      CASE WHEN e.event IN ('exec', 'snapshot') THEN e.argv END AS argv,
      0 AS _order, e.segment_id AS _segment_id, e.row_no AS _row_no
    FROM proc_events e
    WHERE e.host_id = @host AND e.ts >= @from AND e.ts < @to
    ORDER BY e.ts, e.ts_ns, e.segment_id, e.row_no
    LIMIT {{rows}})
    UNION ALL
    (SELECT f.ts, f.ts_ns, f.tz_offset, 'file', f.op, f.pid, f.uid, f.boot_id, f.proc_start, NULL, NULL, NULL,
      CASE WHEN f.new_path IS NULL THEN f.path ELSE CONCAT(f.path, ' -> ', f.new_path) END,
      NULL, 1, f.segment_id, f.row_no
    FROM file_events f
    WHERE f.host_id = @host AND f.ts >= @from AND f.ts < @to
    ORDER BY f.ts, f.ts_ns, f.segment_id, f.row_no
    LIMIT {{rows}})
    UNION ALL
    (SELECT s.ts, s.ts_ns, s.tz_offset, 'sock', s.event, s.pid, s.uid, s.boot_id, s.proc_start, NULL, s.remote_addr, s.remote_port,
      CONCAT(s.proto, ' ', COALESCE(s.direction, '?'), ' ',
             COALESCE(CONVERT(INET6_NTOA(s.local_addr) USING ascii), '?'), ':', s.local_port, ' -> ',
             COALESCE(CONVERT(INET6_NTOA(s.remote_addr) USING ascii), '?'), ':', s.remote_port,
             COALESCE(CONCAT(' ', s.state), '')),
      NULL, 2, s.segment_id, s.row_no
    FROM sock_events s
    WHERE s.host_id = @host AND s.ts >= @from AND s.ts < @to
    ORDER BY s.ts, s.ts_ns, s.segment_id, s.row_no
    LIMIT {{rows}})
  ) u
  ORDER BY u.time, u._ts_ns, u._order, u._segment_id, u._row_no
  LIMIT {{limit}} OFFSET {{offset}}
    ) t
    LEFT JOIN proc_events p
      ON p.host_id = @host AND p.boot_id = t._boot_id AND p.pid = t.pid
        AND p.proc_start = t._proc_start AND (p.exe IS NOT NULL OR p.comm IS NOT NULL)
        AND t._exe IS NULL
  ) w
  LEFT JOIN accounts a
    ON a.host_id = @host AND a.kind = 'user' AND a.id = w.uid
  WHERE w._xrank = 1
) v
LEFT JOIN dns_names n
  ON n.host_id = @host AND n.addr = v._remote_addr AND v.kind = 'sock' AND v._remote_port <> 0
    AND n.ts <= v.time + INTERVAL 5 SECOND AND n.ts > v.time - INTERVAL 1 DAY
WHERE v._urank = 1
) d
WHERE d._nrank = 1
ORDER BY d.time, d._ts_ns, d._order, d._segment_id, d._row_no
