-- pofr schema, migration 006: DNS messages seen on the hosts (dns_events),
-- tied to the process that owned the client socket, and the segment ledger's
-- count of them.

CREATE TABLE IF NOT EXISTS dns_events (
  segment_id   BIGINT UNSIGNED NOT NULL COMMENT 'Ledger row (segments) the row was loaded from.',
  row_no       INT UNSIGNED NOT NULL COMMENT 'Row index within the segment''s dns member.',
  host_id      VARCHAR(63) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'Host (from the segment manifest).',
  boot_id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'Boot of the host (from the segment manifest).',
  ts           DATETIME(6) NOT NULL COMMENT 'When the packet was read from the packet socket (UTC, microseconds).',
  ts_ns        SMALLINT UNSIGNED NOT NULL COMMENT 'Nanoseconds beyond the microsecond of ts (0-999).',
  tz_offset    MEDIUMINT NOT NULL COMMENT 'Host''s UTC offset in seconds (from the segment manifest).',
  event        VARCHAR(16) CHARACTER SET ascii NULL COMMENT 'query (QR bit clear) or response (QR bit set).',
  proto        VARCHAR(8) CHARACTER SET ascii NULL COMMENT 'udp or tcp (DNS over TCP).',
  client_addr  VARBINARY(16) NULL COMMENT 'Address of the side that asked, 4 or 16 bytes in network order (INET6_NTOA shows it).',
  client_port  SMALLINT UNSIGNED NOT NULL COMMENT 'Port of the side that asked.',
  server_addr  VARBINARY(16) NULL COMMENT 'Address of the side that answers, 4 or 16 bytes in network order.',
  server_port  SMALLINT UNSIGNED NOT NULL COMMENT 'Port of the side that answers (53).',
  pid          INT NULL COMMENT 'Process id of the client socket''s owner; NULL if unknown (flag owner_unknown).',
  proc_start   BIGINT NULL COMMENT 'proc_start of that process; NULL if unknown.',
  dns_id       SMALLINT UNSIGNED NOT NULL COMMENT 'DNS message id (pairs a response with its query).',
  qname        VARBINARY(1024) NULL COMMENT 'Name of the first question: its labels'' exact bytes joined by dots, with a final dot (a label holding a dot makes the message malformed); NULL if the message has no question.',
  qtype        SMALLINT UNSIGNED NULL COMMENT 'Type of the first question (1 A, 28 AAAA, 5 CNAME, 12 PTR, 15 MX, 16 TXT, 33 SRV, 65 HTTPS, ...); NULL if none.',
  rcode        TINYINT UNSIGNED NULL COMMENT 'Response code of a response (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED, ...); NULL for queries.',
  answers      BLOB NULL COMMENT 'Answer records of a response, one line each: name, type, TTL and data (address, target name, or the length of other data); NULL for queries.',
  answer_addrs VARBINARY(4096) NULL COMMENT 'The A and AAAA answer addresses as upper-case hex between commas (an A address also in its IPv4-mapped form): LOCATE(CONCAT('','', HEX(remote_addr), '',''), answer_addrs) finds the name an address was resolved from; NULL if none.',
  flags        INT UNSIGNED NOT NULL COMMENT 'Bit set: 1 truncated (TC bit), 2 malformed, 4 owner_unknown, 8 partial (TCP message not whole in one segment), 16 answers_cut.',
  PRIMARY KEY (segment_id, row_no, ts),
  KEY host_ts (host_id, ts),
  KEY proc (host_id, boot_id, pid, proc_start),
  KEY qname (qname(255))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='DNS queries and responses seen on a packet socket, with the process that owned the client socket.'
  PARTITION BY RANGE COLUMNS(ts) (PARTITION pmax VALUES LESS THAN (MAXVALUE));

ALTER TABLE segments ADD COLUMN IF NOT EXISTS rows_dns INT UNSIGNED NOT NULL DEFAULT 0
  COMMENT 'Rows loaded into dns_events.' AFTER rows_acct;
