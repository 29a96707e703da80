-- tree: the processes of a host alive at a moment, with argv and user name.
--
-- Parameters:
--   @host  host_id
--   @at    DATETIME(6) UTC: the moment
--
-- The boot is the one the host was recording at @at (the newest segment
-- starting at or before it). A process is alive if its first row is at or
-- before @at and it has no exit row at or before @at. Rows come in start
-- order; pofr-server query tree indents each child under its parent
-- (parent_pid, parent_start). user is the name of uid on that host at the
-- time (accounts), login the name of the audit login uid.
WITH boot AS (
  SELECT boot_id FROM segments
  WHERE host_id = @host AND ts_from <= @at
  ORDER BY ts_from DESC, seq DESC LIMIT 1
)
SELECT
  p.pid,
  p.parent_pid                 AS ppid,
  p.proc_start,
  p.parent_start               AS _parent_start,
  p.start_ts                   AS started,
  p.tz_offset                  AS _tz_offset,
  p.uid,
  (SELECT a.name FROM accounts a
    WHERE a.host_id = p.host_id AND a.kind = 'user' AND a.id = p.uid
    ORDER BY a.ts <= @at DESC, a.ts DESC LIMIT 1)          AS user,
  (SELECT a.name FROM accounts a
    WHERE a.host_id = p.host_id AND a.kind = 'user' AND a.id = p.auid
    ORDER BY a.ts <= @at DESC, a.ts DESC LIMIT 1)          AS login,
  COALESCE(p.exe, p.comm)      AS exe,
  p.argv
FROM processes p
JOIN boot b ON b.boot_id = p.boot_id
WHERE p.host_id = @host
  AND p.start_ts <= @at
  AND (p.exit_ts IS NULL OR p.exit_ts > @at)
ORDER BY p.start_ts, p.pid
