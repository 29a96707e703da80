-- peers: connections between monitored hosts, joined to the process on
-- both ends. No single host's record can say this.
--
-- Parameters (NULL means no filter):
--   @host        host_id on either end
--   @from, @to   DATETIME(6) UTC: sockets with a row at or after @from, before @to
--   @slack       seconds of clock skew allowed between the hosts (INT)
--
-- A client socket (direction out) on host A and a server socket (direction
-- in) on host B are the two ends of one connection when A's remote
-- address:port is B's local address:port, B's remote port is A's local port
-- (the source address may differ behind NAT), the protocol is the same and
-- their lifetimes overlap (within @slack). Loopback and unspecified addresses
-- never cross hosts and are left out.
WITH s AS (
  SELECT host_id, boot_id, cookie,
    MIN(COALESCE(first_ts, ts)) AS t0, MAX(ts) AS t1, MAX(tz_offset) AS tz,
    MAX(proto) AS proto, MAX(direction) AS direction,
    MAX(local_addr) AS la, MAX(local_port) AS lp, MAX(remote_addr) AS ra, MAX(remote_port) AS rp,
    MAX(pid) AS pid, MAX(proc_start) AS ps, MAX(uid) AS uid
  FROM sock_events
  WHERE (@from IS NULL OR ts >= @from) AND (@to IS NULL OR ts < @to)
    AND event <> 'listen' AND remote_port <> 0
  GROUP BY host_id, boot_id, cookie
)
SELECT
  a.t0 AS time, a.tz AS _tz_offset, a.proto,
  a.host_id AS client_host, a.pid AS client_pid,
  (SELECT n.name FROM accounts n WHERE n.host_id = a.host_id AND n.kind = 'user' AND n.id = a.uid
    ORDER BY n.ts <= a.t0 DESC, n.ts DESC LIMIT 1) AS client_user,
  (SELECT COALESCE(p.exe, p.comm) FROM proc_events p
    WHERE p.host_id = a.host_id AND p.boot_id = a.boot_id AND p.pid = a.pid AND p.proc_start = a.ps
      AND (p.exe IS NOT NULL OR p.comm IS NOT NULL)
    ORDER BY p.exe IS NOT NULL DESC, p.ts <= a.t0 DESC, p.ts DESC LIMIT 1) AS client_exe,
  a.la AS client_addr, a.lp AS client_port,
  b.host_id AS server_host, b.la AS server_addr, b.lp AS server_port, b.pid AS server_pid,
  (SELECT n.name FROM accounts n WHERE n.host_id = b.host_id AND n.kind = 'user' AND n.id = b.uid
    ORDER BY n.ts <= b.t0 DESC, n.ts DESC LIMIT 1) AS server_user,
  (SELECT COALESCE(p.exe, p.comm) FROM proc_events p
    WHERE p.host_id = b.host_id AND p.boot_id = b.boot_id AND p.pid = b.pid AND p.proc_start = b.ps
      AND (p.exe IS NOT NULL OR p.comm IS NOT NULL)
    ORDER BY p.exe IS NOT NULL DESC, p.ts <= b.t0 DESC, p.ts DESC LIMIT 1) AS server_exe
FROM s a
JOIN s b
  ON b.host_id <> a.host_id
 AND b.la = a.ra AND b.lp = a.rp AND b.rp = a.lp AND b.proto = a.proto
 AND a.t0 <= b.t1 + INTERVAL @slack SECOND AND b.t0 <= a.t1 + INTERVAL @slack SECOND
WHERE COALESCE(a.direction, 'out') = 'out' AND COALESCE(b.direction, 'in') = 'in'
  AND NOT (LENGTH(a.ra) = 4 AND (LEFT(a.ra, 1) = 0x7f OR a.ra = 0x00000000))
  AND NOT (LENGTH(a.ra) = 16 AND (a.ra = 0x00000000000000000000000000000001
                                  OR a.ra = 0x00000000000000000000000000000000
                                  OR LEFT(a.ra, 13) = 0x00000000000000000000ffff7f))
  AND (@host IS NULL OR a.host_id = @host OR b.host_id = @host)
ORDER BY a.t0, a.host_id, a.cookie
