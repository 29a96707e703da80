-- logins: logins, logouts and failed logins (wtmp, btmp) fleet-wide, with
-- the audit session of a login and how many programs ran in it.
--
-- Parameters (NULL means no filter):
--   @host        host_id
--   @from, @to   DATETIME(6) UTC: record at or after @from, before @to
--   @failed      1: failed logins (btmp) only
--   @user        user name exactly as recorded (bytes)
--   @remote      set when a CIDR filter is given; then
--   @lo4, @hi4   4-byte range of remote IPv4 addresses
--   @lo6, @hi6   16-byte range of remote IPv6 addresses
--
-- session_id is the audit session (/proc/PID/sessionid) of the login
-- process (ut_pid) as the process rows recorded it within an hour before
-- and a minute after the login; execs counts the exec rows of that session
-- from the login on.
SELECT x.*,
  (SELECT COUNT(*) FROM proc_events e
    WHERE e.host_id = x.host AND e.session_id = x.session_id AND e.event = 'exec' AND e.ts >= x.time) AS execs
FROM (
  SELECT l.host_id AS host, l.ts AS time, l.ts_ns AS _ts_ns, l.tz_offset AS _tz_offset,
    l.kind, l.user, l.tty, l.remote_host, INET6_NTOA(l.remote_addr) AS remote_ip, l.pid,
    IF(l.kind = 'login', (SELECT p.session_id FROM proc_events p
       WHERE p.host_id = l.host_id AND p.pid = l.pid AND p.session_id IS NOT NULL
         AND p.ts BETWEEN l.ts - INTERVAL 1 HOUR AND l.ts + INTERVAL 1 MINUTE
       ORDER BY p.ts DESC LIMIT 1), NULL) AS session_id,
    l.segment_id AS _segment_id, l.row_no AS _row_no
  FROM login_events l
  WHERE (@host IS NULL OR l.host_id = @host)
    AND (@from IS NULL OR l.ts >= @from) AND (@to IS NULL OR l.ts < @to)
    AND (@failed IS NULL OR l.kind = 'failed')
    AND (@user IS NULL OR l.user = @user)
    AND (@remote IS NULL
         OR (LENGTH(l.remote_addr) = 4 AND l.remote_addr BETWEEN @lo4 AND @hi4)
         OR (LENGTH(l.remote_addr) = 16 AND l.remote_addr BETWEEN @lo6 AND @hi6))
) x
ORDER BY x.time, x._ts_ns, x.host, x._segment_id, x._row_no
