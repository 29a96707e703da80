-- ran: what a user ran, where a program ran, or which command lines match,
-- fleet-wide. One row per exec (and per snapshot of a process that was
-- already running when recording started).
--
-- Parameters (NULL means no filter):
--   @host       host_id
--   @from, @to  DATETIME(6) UTC: exec at or after @from, before @to
--   @user       user name or uid (text): matches the real, effective or
--               login (audit) uid, by name through the accounts of each host
--   @uid        the same as a number when @user is numeric, else NULL
--   @exe        executable path; without a slash, its base name
--   @argv_like  LIKE pattern on the command line (arguments joined by
--               spaces, cmdline column), e.g. 'nmap -P0 192.168.18.34%'
--   @sha256     32 bytes: the executed file had this SHA-256. An exec row
--               names its file's identity (exe_key) and joins the exe_ids
--               row (one per identity) with that key on its host. An exec
--               row without exe_key (collectors before it, or an exec that
--               fanotify did not report) is joined as before: to the
--               exe_ids row of the same host and path whose [first_ts,
--               last_ts] (widened by 2 s: fanotify's read time is not the
--               exec time) covers it.
--   @container  container name or Kubernetes pod name (bytes): the exec ran
--               in a container the containers table names so on its host
SELECT e.host_id AS host, e.ts AS time, e.ts_ns AS _ts_ns, e.tz_offset AS _tz_offset,
  e.event, e.pid, e.ppid, e.proc_start, e.uid,
  (SELECT a.name FROM accounts a WHERE a.host_id = e.host_id AND a.kind = 'user' AND a.id = e.uid
    ORDER BY a.ts <= e.ts DESC, a.ts DESC LIMIT 1) AS user,
  (SELECT a.name FROM accounts a WHERE a.host_id = e.host_id AND a.kind = 'user' AND a.id = e.auid
    ORDER BY a.ts <= e.ts DESC, a.ts DESC LIMIT 1) AS login,
  e.exe, e.argv
FROM proc_events e
WHERE e.event IN ('exec', 'snapshot')
  AND (@host IS NULL OR e.host_id = @host)
  AND (@from IS NULL OR e.ts >= @from) AND (@to IS NULL OR e.ts < @to)
  AND (@exe IS NULL OR e.exe = @exe OR (LOCATE('/', @exe) = 0 AND e.exe LIKE CONCAT('%/', @exe)))
  AND (@argv_like IS NULL OR e.cmdline LIKE @argv_like)
  AND (@sha256 IS NULL OR EXISTS (SELECT 1 FROM exe_ids x
       WHERE x.sha256 = @sha256 AND x.host_id = e.host_id
         AND (x.exe_key = e.exe_key
              OR (e.exe_key IS NULL AND x.path = e.exe
                  AND e.ts BETWEEN x.first_ts - INTERVAL 2 SECOND AND x.last_ts + INTERVAL 2 SECOND))))
  AND (@container IS NULL OR EXISTS (SELECT 1 FROM containers c
       WHERE c.host_id = e.host_id AND c.container_id = e.container_id
         AND (c.name = @container OR c.pod = @container)))
  AND (@user IS NULL
       OR @uid IN (e.uid, e.euid, e.auid)
       OR EXISTS (SELECT 1 FROM accounts a
                  WHERE a.host_id = e.host_id AND a.kind = 'user' AND a.name = @user
                    AND a.id IN (e.uid, e.euid, e.auid)))
ORDER BY e.ts, e.ts_ns, e.host_id, e.segment_id, e.row_no
