-- tree: the processes of a host alive at a moment; the same rows and
-- columns as the query package's tree.sql, read from proc_events directly
-- instead of through the processes view (whose per-life window function
-- MariaDB re-materializes for every life: minutes for a busy host).
--
-- Parameters:
--   @host  host_id
--   @at    DATETIME(6) UTC: the moment
--
-- The boot is the one the host was recording at @at (the newest segment
-- starting at or before it). A process life (pid, proc_start) is alive if
-- it has a row at or before @at and no exit row at or before @at. Its
-- describing row (exe, argv, uid, parent) is its first exec, else its
-- first snapshot, else its fork, as in the processes view.
WITH boot AS (
  SELECT boot_id FROM segments
  WHERE host_id = @host AND ts_from <= @at
  ORDER BY ts_from DESC, seq DESC LIMIT 1
),
alive AS (
  SELECT e.boot_id, e.pid, e.proc_start, MIN(e.ts) AS start_ts
  FROM proc_events e
  JOIN boot b ON b.boot_id = e.boot_id
  WHERE e.host_id = @host AND e.ts <= @at
  GROUP BY e.boot_id, e.pid, e.proc_start
  HAVING SUM(e.event = 'exit') = 0
),
described AS (
  SELECT l.boot_id, l.pid, l.proc_start, l.start_ts,
    (SELECT d.segment_id FROM proc_events d
      WHERE d.host_id = @host AND d.boot_id = l.boot_id AND d.pid = l.pid AND d.proc_start = l.proc_start
        AND d.event IN ('exec', 'snapshot', 'fork')
      ORDER BY CASE d.event WHEN 'exec' THEN 0 WHEN 'snapshot' THEN 1 ELSE 2 END, d.ts, d.ts_ns, d.segment_id, d.row_no
      LIMIT 1) AS d_segment,
    (SELECT d.row_no FROM proc_events d
      WHERE d.host_id = @host AND d.boot_id = l.boot_id AND d.pid = l.pid AND d.proc_start = l.proc_start
        AND d.event IN ('exec', 'snapshot', 'fork')
      ORDER BY CASE d.event WHEN 'exec' THEN 0 WHEN 'snapshot' THEN 1 ELSE 2 END, d.ts, d.ts_ns, d.segment_id, d.row_no
      LIMIT 1) AS d_row
  FROM alive l
)
SELECT
  l.pid,
  d.ppid,
  l.proc_start,
  d.parent_start               AS _parent_start,
  l.start_ts                   AS started,
  d.tz_offset                  AS _tz_offset,
  d.uid,
  (SELECT a.name FROM accounts a
    WHERE a.host_id = @host AND a.kind = 'user' AND a.id = d.uid
    ORDER BY a.ts <= @at DESC, a.ts DESC LIMIT 1)          AS user,
  (SELECT a.name FROM accounts a
    WHERE a.host_id = @host AND a.kind = 'user' AND a.id = d.auid
    ORDER BY a.ts <= @at DESC, a.ts DESC LIMIT 1)          AS login,
  COALESCE(d.exe, d.comm)      AS exe,
  d.argv
FROM described l
LEFT JOIN proc_events d ON d.segment_id = l.d_segment AND d.row_no = l.d_row
ORDER BY l.start_ts, l.pid
