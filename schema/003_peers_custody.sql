-- pofr schema, migration 003: cross-host peer connections, archive retention
-- in the ledger, and the revoked_host quarantine class.

-- The join of peer_connections looks sockets up by their local end (this
-- host's address:port, and the remote port to narrow it): "who on which
-- host had this address:port open".
ALTER TABLE sock_events ADD INDEX IF NOT EXISTS local_end (local_addr, local_port, remote_port);

-- Archive retention (pofr-server retention --archive-keep) deletes archived
-- segment files; the ledger row stays and says when its file went, so that
-- pofr-server verify --archive tells an expired file from a missing one.
ALTER TABLE segments ADD COLUMN IF NOT EXISTS archive_removed_at DATETIME(6) NULL
  COMMENT 'When pofr-server retention deleted the archived segment file (UTC); NULL while it is kept.';

ALTER TABLE quarantine MODIFY class VARCHAR(32) CHARACTER SET ascii NOT NULL
  COMMENT 'Kind of refusal: corrupt, bad_signature, wrong_host, too_large, unsupported_version, name, replay, unknown_host, revoked_host (deregistered), decode, load.';

-- peer_connections: connections between two monitored hosts, one row per
-- pair of sockets (client end, server end), with the owner process life on
-- both ends. The same rules as query/peers.sql (pofr-server query peers):
--
--   * a socket is one (host_id, boot_id, cookie); its lifetime runs from
--     its first_ts (or first row) to its last row; listen rows and
--     unconnected sockets (remote_port 0) take no part;
--   * the client socket (direction out, or unknown) on one host and the
--     server socket (direction in, or unknown) on ANOTHER host are the two
--     ends of one connection when the client's remote address:port is the
--     server's local address:port, the server's remote port is the client's
--     local port (its remote address may differ behind NAT), the protocol is
--     the same, and their lifetimes overlap within 5 seconds of clock skew
--     (query peers --slack sets another);
--   * loopback and unspecified addresses never cross hosts and are left out.
--
-- A connection between two hosts whose directions are both unknown appears
-- twice, once from each end. The owner columns are NULL when the owner (or
-- its process life) was not recorded; client_exe and server_exe come from
-- the processes view (the life's first exec). client_user and server_user
-- are the account names the host reported for the owning uid, as of the
-- socket's first sight.
CREATE OR REPLACE VIEW peer_connections AS
SELECT
  x.proto, x.family,
  x.client_host, x.client_boot, x.client_cookie,
  INET6_NTOA(x.client_addr) AS client_ip, x.client_port, x.client_addr,
  x.client_first_ts, x.client_last_ts, x.client_tz_offset,
  x.client_pid, x.client_proc_start, x.client_uid,
  (SELECT n.name FROM accounts n
    WHERE n.host_id = x.client_host AND n.kind = 'user' AND n.id = x.client_uid
    ORDER BY n.ts <= x.client_first_ts DESC, n.ts DESC LIMIT 1) AS client_user,
  ca.exe AS client_exe, ca.exe_text AS client_exe_text, ca.argv AS client_argv, ca.cmdline AS client_cmdline,
  x.client_bytes_sent, x.client_bytes_recv,
  x.server_host, x.server_boot, x.server_cookie,
  INET6_NTOA(x.server_addr) AS server_ip, x.server_port, x.server_addr,
  INET6_NTOA(x.server_seen_addr) AS server_seen_ip, x.server_seen_addr,
  x.server_first_ts, x.server_last_ts, x.server_tz_offset,
  x.server_pid, x.server_proc_start, x.server_uid,
  (SELECT n.name FROM accounts n
    WHERE n.host_id = x.server_host AND n.kind = 'user' AND n.id = x.server_uid
    ORDER BY n.ts <= x.server_first_ts DESC, n.ts DESC LIMIT 1) AS server_user,
  sa.exe AS server_exe, sa.exe_text AS server_exe_text, sa.argv AS server_argv, sa.cmdline AS server_cmdline
FROM (
  SELECT
    a.host_id AS client_host, a.boot_id AS client_boot, a.cookie AS client_cookie,
    b.host_id AS server_host, b.boot_id AS server_boot, b.cookie AS server_cookie,
    MAX(a.proto) AS proto, MAX(a.family) AS family,
    MAX(a.local_addr) AS client_addr, MAX(a.local_port) AS client_port,
    MAX(b.local_addr) AS server_addr, MAX(b.local_port) AS server_port,
    MAX(b.remote_addr) AS server_seen_addr,
    MIN(COALESCE(a.first_ts, a.ts)) AS client_first_ts, MAX(a.ts) AS client_last_ts,
    MIN(COALESCE(b.first_ts, b.ts)) AS server_first_ts, MAX(b.ts) AS server_last_ts,
    MAX(a.tz_offset) AS client_tz_offset, MAX(b.tz_offset) AS server_tz_offset,
    MAX(a.pid) AS client_pid, MAX(a.proc_start) AS client_proc_start, MAX(a.uid) AS client_uid,
    MAX(b.pid) AS server_pid, MAX(b.proc_start) AS server_proc_start, MAX(b.uid) AS server_uid,
    MAX(a.bytes_sent) AS client_bytes_sent, MAX(a.bytes_recv) AS client_bytes_recv
  FROM sock_events a
  JOIN sock_events b
    ON b.local_addr = a.remote_addr AND b.local_port = a.remote_port AND b.remote_port = a.local_port
   AND b.proto = a.proto AND b.host_id <> a.host_id
  WHERE a.event <> 'listen' AND b.event <> 'listen' AND a.remote_port <> 0
    AND NOT (LENGTH(a.remote_addr) = 4 AND (LEFT(a.remote_addr, 1) = 0x7f OR a.remote_addr = 0x00000000))
    AND NOT (LENGTH(a.remote_addr) = 16 AND (a.remote_addr = 0x00000000000000000000000000000001
                                             OR a.remote_addr = 0x00000000000000000000000000000000
                                             OR LEFT(a.remote_addr, 13) = 0x00000000000000000000ffff7f))
  GROUP BY a.host_id, a.boot_id, a.cookie, b.host_id, b.boot_id, b.cookie
  HAVING COALESCE(MAX(a.direction), 'out') = 'out' AND COALESCE(MAX(b.direction), 'in') = 'in'
     AND MIN(COALESCE(a.first_ts, a.ts)) <= MAX(b.ts) + INTERVAL 5 SECOND
     AND MIN(COALESCE(b.first_ts, b.ts)) <= MAX(a.ts) + INTERVAL 5 SECOND
) x
LEFT JOIN processes ca
  ON ca.host_id = x.client_host AND ca.boot_id = x.client_boot
 AND ca.pid = x.client_pid AND ca.proc_start = x.client_proc_start
LEFT JOIN processes sa
  ON sa.host_id = x.server_host AND sa.boot_id = x.server_boot
 AND sa.pid = x.server_pid AND sa.proc_start = x.server_proc_start;
