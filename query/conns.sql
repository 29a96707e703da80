-- conns: network endpoints with their owning process, one row per socket
-- (the rows of one socket share host, boot and cookie).
--
-- Parameters (NULL means no filter):
--   @host        host_id
--   @from, @to   DATETIME(6) UTC: sockets with a row at or after @from, before @to
--   @lo4, @hi4   4-byte range of remote IPv4 addresses (a CIDR block)
--   @lo6, @hi6   16-byte range of remote IPv6 addresses (for an IPv4 block:
--                its IPv4-mapped form); with @remote NULL no address filter
--   @remote      the address or CIDR as typed, NULL for none
--   @ports       comma-separated ports matching the local or the remote port
--   @listening   1: only listeners; 0: only connected sockets
--   @hour_from, @hour_to  time-of-day window in the HOST's local time
--                (hours; from included, to excluded; from > to wraps midnight)
--   @user        user name or uid (text), @uid the number if numeric
--   @exe         executable path of the owner; without a slash, its base name
--   @container   container name or Kubernetes pod name (bytes) of the owner's
--                container, as the containers table names it on the host
--
-- first_seen is when the socket was first seen alive (or its only row),
-- last_seen its last row (its close, if seen). bytes are tcp_info counters at
-- the last row. Owner columns are NULL when no owner was seen. dns_name is
-- the question of the latest DNS response on the host (the socket's own
-- process first) that answered with the remote address, up to a day before
-- the socket was first seen (5 s after, for the reader's delay); NULL if none.
-- It is looked up in dns_names, the answers keyed by address.
SELECT * FROM (
  SELECT k.host, k.first_seen, k.last_seen, k._tz_offset, k.proto, k.direction, k.state,
    k.local_addr, k.local_port, k.remote_addr, k.remote_port,
    CASE WHEN k.remote_port <> 0 THEN
      (SELECT n.qname FROM dns_names n
        WHERE n.host_id = k.host AND n.addr = k.remote_addr
          AND n.ts <= k.first_seen + INTERVAL 5 SECOND AND n.ts > k.first_seen - INTERVAL 1 DAY
        ORDER BY (n.boot_id = k._boot_id AND n.pid <=> k.pid AND n.proc_start <=> k.proc_start) DESC, n.ts DESC
        LIMIT 1) END AS dns_name,
    k.pid, k.proc_start, k.uid,
    (SELECT a.name FROM accounts a WHERE a.host_id = k.host AND a.kind = 'user' AND a.id = k.uid
      ORDER BY a.ts <= k.first_seen DESC, a.ts DESC LIMIT 1) AS user,
    (SELECT COALESCE(p.exe, p.comm) FROM proc_events p
      WHERE p.host_id = k.host AND p.boot_id = k._boot_id AND p.pid = k.pid
        AND p.proc_start = k.proc_start AND (p.exe IS NOT NULL OR p.comm IS NOT NULL)
      ORDER BY p.exe IS NOT NULL DESC, p.ts <= k.first_seen DESC, p.ts DESC LIMIT 1) AS exe,
    k.bytes_sent, k.bytes_recv, k._boot_id, k.cookie
  FROM (
    SELECT s.host_id AS host, s.boot_id AS _boot_id, s.cookie,
      MIN(COALESCE(s.first_ts, s.ts)) AS first_seen,
      MAX(s.ts)                       AS last_seen,
      MAX(s.tz_offset)                AS _tz_offset,
      MAX(s.proto)                    AS proto,
      MAX(s.direction)                AS direction,
      SUBSTRING_INDEX(GROUP_CONCAT(s.state ORDER BY s.ts DESC, s.row_no DESC), ',', 1) AS state,
      MAX(s.local_addr)  AS local_addr,  MAX(s.local_port)  AS local_port,
      MAX(s.remote_addr) AS remote_addr, MAX(s.remote_port) AS remote_port,
      MAX(s.pid) AS pid, MAX(s.proc_start) AS proc_start, MAX(s.uid) AS uid,
      MAX(s.bytes_sent) AS bytes_sent, MAX(s.bytes_recv) AS bytes_recv
    FROM sock_events s
    WHERE (@host IS NULL OR s.host_id = @host)
      AND (@from IS NULL OR s.ts >= @from) AND (@to IS NULL OR s.ts < @to)
      AND (@remote IS NULL
           OR (LENGTH(s.remote_addr) = 4 AND s.remote_addr BETWEEN @lo4 AND @hi4)
           OR (LENGTH(s.remote_addr) = 16 AND s.remote_addr BETWEEN @lo6 AND @hi6))
      AND (@ports IS NULL OR FIND_IN_SET(s.local_port, @ports) > 0 OR FIND_IN_SET(s.remote_port, @ports) > 0)
      AND (@listening IS NULL
           OR @listening = (s.event = 'listen' OR s.direction <=> 'listen' OR s.state <=> 'LISTEN'))
      AND (@hour_from IS NULL
           OR (@hour_from < @hour_to AND HOUR(s.ts + INTERVAL s.tz_offset SECOND) >= @hour_from
                                     AND HOUR(s.ts + INTERVAL s.tz_offset SECOND) < @hour_to)
           OR (@hour_from > @hour_to AND (HOUR(s.ts + INTERVAL s.tz_offset SECOND) >= @hour_from
                                       OR HOUR(s.ts + INTERVAL s.tz_offset SECOND) < @hour_to)))
    GROUP BY s.host_id, s.boot_id, s.cookie
  ) k
) c
WHERE (@user IS NULL OR c.uid = @uid
       OR (SELECT COUNT(*) FROM accounts a WHERE a.host_id = c.host AND a.kind = 'user'
           AND a.id = c.uid AND a.name = @user) > 0)
  AND (@exe IS NULL OR c.exe = @exe OR (LOCATE('/', @exe) = 0 AND c.exe LIKE CONCAT('%/', @exe)))
  AND (@container IS NULL OR EXISTS (SELECT 1 FROM proc_events p JOIN containers ct
       ON ct.host_id = p.host_id AND ct.container_id = p.container_id
       WHERE p.host_id = c.host AND p.boot_id = c._boot_id AND p.pid = c.pid AND p.proc_start = c.proc_start
         AND (ct.name = @container OR ct.pod = @container)))
ORDER BY c.first_seen, c.host, c.cookie
