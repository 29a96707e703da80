-- timeline: process, file and socket rows of a host interleaved in time order.
--
-- Parameters:
--   @host  host_id
--   @from  DATETIME(6) UTC or NULL: rows at or after it (included)
--   @to    DATETIME(6) UTC or NULL: rows before it (excluded)
--   @pid   process id or NULL: only rows of that pid
--
-- exe is the executable of the process the row belongs to (for file and
-- socket rows: of its newest exec at or before the row). detail is, for
-- proc rows, what changed (the view proc_event_details: parent, exit
-- status, new ids or name); for file
-- rows the path (old -> new for renames); for socket rows protocol,
-- direction and endpoints, and the name the remote address was resolved
-- from (as in query conns: the latest DNS answer on the host holding it, the
-- socket's own process first, up to a day before the row, 5 s after; from
-- dns_names, the answers keyed by address); for login rows (kind login:
-- login, logout, failed, …) the tty and the remote address, user being the
-- name the record holds. argv is set on exec and snapshot rows.
--
-- The innermost derived table (t) takes the rows of the range in order and,
-- when the caller pages, its LIMIT and OFFSET (the Querier puts them at the
-- page mark, a comment, so the file run by hand is unpaged); each part
-- (proc, file, sock, login) first reads at most LIMIT+OFFSET rows of the
-- range in (host_id, ts) order (the Querier's LIMIT at each rows mark), so a
-- page costs its own rows, in a busy window as in a quiet one, and its own
-- rows' lookups, not the whole range's. This is also the web interface's
-- timeline (pofr-server ui, the host page). Then user, exe
-- and the DNS name are looked up for those rows only, with joins ranked by ROW_NUMBER() (the
-- newest match at or before the row's time first; exe: an exec's exe before
-- a comm) instead of correlated subqueries: Spider (a fleet's head) sends a
-- subquery's outer column to the shard, which fails (Error 1054).
-- (_order, _segment_id, _row_no) is a row's key within a host.
SELECT d.time, d._ts_ns, d._tz_offset, d.kind, d.event, d.pid, d.uid, d.user, d.exe,
  CASE WHEN d.kind = 'sock' AND d._remote_port <> 0 THEN CONCAT(d.detail, COALESCE(CONCAT(' name ', d._qname), ''))
       ELSE d.detail END AS detail,
  d.argv
FROM (
SELECT v.time, v._ts_ns, v._tz_offset, v.kind, v.event, v.pid, v.uid,
  CASE WHEN v.kind = 'login' THEN v._user ELSE v._uname END AS user,
  CASE WHEN v.kind = 'login' THEN NULL
       WHEN v.kind = 'proc' THEN COALESCE(v._exe, v._pexe, v._comm)
       ELSE COALESCE(v._pexe, v._pcomm) END AS exe,
  v.detail,
  v.argv, v._remote_port, v._order, v._segment_id, v._row_no, n.qname AS _qname,
  ROW_NUMBER() OVER (PARTITION BY v._order, v._segment_id, v._row_no
                     ORDER BY (n.boot_id = v._boot_id AND n.pid <=> v.pid AND n.proc_start <=> v._proc_start) DESC,
                       n.ts DESC) AS _nrank
FROM (
  SELECT w.*, a.name AS _uname,
    ROW_NUMBER() OVER (PARTITION BY w._order, w._segment_id, w._row_no
                       ORDER BY a.ts <= w.time DESC, a.ts DESC) AS _urank
  FROM (
    SELECT t.*, p.exe AS _pexe, p.comm AS _pcomm,
      ROW_NUMBER() OVER (PARTITION BY t._order, t._segment_id, t._row_no
                         ORDER BY p.exe IS NOT NULL DESC, p.ts <= t.time DESC, p.ts DESC) AS _xrank
    FROM (
      (SELECT e.ts AS time, e.ts_ns AS _ts_ns, e.tz_offset AS _tz_offset, 'proc' AS kind, e.event,
        e.pid, e.uid, e.boot_id AS _boot_id, e.proc_start AS _proc_start, e.exe AS _exe, e.comm AS _comm,
        NULL AS _user, NULL AS _remote_addr, NULL AS _remote_port,
        e.detail,
        CASE WHEN e.event IN ('exec', 'snapshot') THEN e.argv END AS argv,
        0 AS _order, e.segment_id AS _segment_id, e.row_no AS _row_no
      FROM proc_event_details e
      WHERE e.host_id = @host
        AND (@from IS NULL OR e.ts >= @from) AND (@to IS NULL OR e.ts < @to)
        AND (@pid IS NULL OR e.pid = @pid)
      ORDER BY e.ts, e.ts_ns, e.segment_id, e.row_no /*rows*/)
      UNION ALL
      (SELECT f.ts, f.ts_ns, f.tz_offset, 'file', f.op,
        f.pid, f.uid, f.boot_id, f.proc_start, NULL, NULL, NULL, NULL, NULL,
        CASE WHEN f.new_path IS NULL THEN f.path ELSE CONCAT(f.path, ' -> ', f.new_path) END,
        NULL, 1, f.segment_id, f.row_no
      FROM file_events f
      WHERE f.host_id = @host
        AND (@from IS NULL OR f.ts >= @from) AND (@to IS NULL OR f.ts < @to)
        AND (@pid IS NULL OR f.pid = @pid)
      ORDER BY f.ts, f.ts_ns, f.segment_id, f.row_no /*rows*/)
      UNION ALL
      (SELECT s.ts, s.ts_ns, s.tz_offset, 'sock', s.event,
        s.pid, s.uid, s.boot_id, s.proc_start, NULL, NULL, NULL, s.remote_addr, s.remote_port,
        CONCAT(s.proto, ' ', COALESCE(s.direction, '?'), ' ',
               COALESCE(CONVERT(INET6_NTOA(s.local_addr) USING ascii), '?'), ':', s.local_port, ' -> ',
               COALESCE(CONVERT(INET6_NTOA(s.remote_addr) USING ascii), '?'), ':', s.remote_port,
               COALESCE(CONCAT(' ', s.state), '')),
        NULL, 2, s.segment_id, s.row_no
      FROM sock_events s
      WHERE s.host_id = @host
        AND (@from IS NULL OR s.ts >= @from) AND (@to IS NULL OR s.ts < @to)
        AND (@pid IS NULL OR s.pid = @pid)
      ORDER BY s.ts, s.ts_ns, s.segment_id, s.row_no /*rows*/)
      UNION ALL
      (SELECT l.ts, l.ts_ns, l.tz_offset, 'login', l.kind,
        l.pid, NULL, l.boot_id, NULL, NULL, NULL, l.user, NULL, NULL,
        CONCAT(COALESCE(l.tty, '?'), ' from ', COALESCE(CONVERT(INET6_NTOA(l.remote_addr) USING ascii), l.remote_host, '?')),
        NULL, 3, l.segment_id, l.row_no
      FROM login_events l
      WHERE l.host_id = @host
        AND (@from IS NULL OR l.ts >= @from) AND (@to IS NULL OR l.ts < @to)
        AND (@pid IS NULL OR l.pid = @pid)
      ORDER BY l.ts, l.ts_ns, l.segment_id, l.row_no /*rows*/)
      ORDER BY time, _ts_ns, _order, _segment_id, _row_no
      /*page*/
    ) t
    LEFT JOIN proc_events p
      ON p.host_id = @host AND p.boot_id = t._boot_id AND p.pid = t.pid
        AND p.proc_start = t._proc_start AND (p.exe IS NOT NULL OR p.comm IS NOT NULL)
        AND t.kind <> 'login' AND (t.kind <> 'proc' OR t._exe IS NULL)
  ) w
  LEFT JOIN accounts a
    ON a.host_id = @host AND a.kind = 'user' AND a.id = w.uid AND w.kind <> 'login'
  WHERE w._xrank = 1
) v
LEFT JOIN dns_names n
  ON n.host_id = @host AND n.addr = v._remote_addr AND v.kind = 'sock' AND v._remote_port <> 0
    AND n.ts <= v.time + INTERVAL 5 SECOND AND n.ts > v.time - INTERVAL 1 DAY
WHERE v._urank = 1
) d
WHERE d._nrank = 1
ORDER BY d.time, d._ts_ns, d._order, d._segment_id, d._row_no
