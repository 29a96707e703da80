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
  AND (@user IS NULL
       OR @uid IN (e.uid, e.euid, e.auid)
       OR EXISTS (SELECT 1 FROM accounts a
                  WHERE a.host_id = e.host_id AND a.kind = 'user' AND a.name = @user
                    AND a.id IN (e.uid, e.euid, e.auid)))
ORDER BY e.ts, e.ts_ns, e.host_id, e.segment_id, e.row_no
