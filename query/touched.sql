-- touched: which processes opened, wrote, executed, created, deleted or
-- renamed a path (or anything under a directory), under which accounts.
--
-- Parameters (NULL means no filter):
--   @path       exact path (also matched as the new name of a rename)
--   @prefix     LIKE pattern for everything under a directory ('/usr/%',
--               with % _ \ in the directory escaped by a backslash), or NULL
--   @host       host_id
--   @from, @to  DATETIME(6) UTC: first access at or after @from, before @to
--   @op         open, exec, write, create, delete, rename, moved_from,
--               moved_to or fd
--   @exe        executable path of the process; without a slash, its base name
--
-- exe is the process's executable (its newest exec at or before the access);
-- user the name of the process's effective uid on that host.
SELECT * FROM (
  SELECT f.host_id AS host, f.ts AS time, f.ts_ns AS _ts_ns, f.tz_offset AS _tz_offset,
    f.last_ts AS last_time, f.count, f.op, f.path, f.new_path, f.pid, f.proc_start, f.uid,
    (SELECT a.name FROM accounts a WHERE a.host_id = f.host_id AND a.kind = 'user' AND a.id = f.uid
      ORDER BY a.ts <= f.ts DESC, a.ts DESC LIMIT 1) AS user,
    (SELECT COALESCE(p.exe, p.comm) FROM proc_events p
      WHERE p.host_id = f.host_id AND p.boot_id = f.boot_id AND p.pid = f.pid
        AND p.proc_start = f.proc_start AND (p.exe IS NOT NULL OR p.comm IS NOT NULL)
      ORDER BY p.exe IS NOT NULL DESC, p.ts <= f.ts DESC, p.ts DESC LIMIT 1) AS exe,
    f.segment_id AS _segment_id, f.row_no AS _row_no
  FROM file_events f
  WHERE (f.path = @path OR f.new_path = @path
         OR (@prefix IS NOT NULL AND (f.path LIKE @prefix OR f.new_path LIKE @prefix)))
    AND (@host IS NULL OR f.host_id = @host)
    AND (@from IS NULL OR f.ts >= @from) AND (@to IS NULL OR f.ts < @to)
    AND (@op IS NULL OR f.op = @op)
) t
WHERE (@exe IS NULL OR t.exe = @exe OR (LOCATE('/', @exe) = 0 AND t.exe LIKE CONCAT('%/', @exe)))
ORDER BY t.time, t._ts_ns, t.host, t._segment_id, t._row_no
