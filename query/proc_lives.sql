-- proc_lives: the recorded lives of one pid on a host, newest first. Used by
-- pofr-server query proc to find the life PID (without @START) means.
--
-- Parameters:
--   @host   host_id
--   @pid    process id
--   @start  proc_start or NULL (any)
SELECT p.boot_id, p.pid, p.proc_start, p.start_ts, p.exit_ts, COALESCE(p.exe, p.comm) AS exe
FROM processes p
WHERE p.host_id = @host AND p.pid = @pid
  AND (@start IS NULL OR p.proc_start = @start)
ORDER BY p.start_ts DESC
