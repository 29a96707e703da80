-- pofr schema, migration 015: dns_names, the DNS answers of dns_events keyed
-- by address, so that "which name was this remote address resolved from" is
-- an index lookup (host, address, time) instead of a scan of the host's
-- responses. The loader fills it when it loads dns rows, in the same
-- transaction; this migration fills it from the dns_events already loaded.

CREATE TABLE IF NOT EXISTS dns_names (
  host_id     VARCHAR(63) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'Host (from the segment manifest).',
  addr        VARBINARY(16) NOT NULL COMMENT 'An A or AAAA answer address, 4 or 16 bytes in network order; an A answer has a row in both forms (4 bytes and IPv4-mapped 16), so it joins sock_events.remote_addr on equality.',
  ts          DATETIME(6) NOT NULL COMMENT 'When the response was read (dns_events.ts).',
  boot_id     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'Boot of the host (dns_events.boot_id).',
  pid         INT NULL COMMENT 'Process id of the client socket''s owner (dns_events.pid); NULL if unknown.',
  proc_start  BIGINT NULL COMMENT 'proc_start of that process (dns_events.proc_start); NULL if unknown.',
  qname       VARBINARY(1024) NULL COMMENT 'Name of the question the response answered (dns_events.qname), exact bytes.',
  segment_id  BIGINT UNSIGNED NOT NULL COMMENT 'Ledger row (segments) of the dns_events row this was taken from.',
  row_no      INT UNSIGNED NOT NULL COMMENT 'row_no of that dns_events row.',
  PRIMARY KEY (host_id, addr, ts, segment_id, row_no)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='DNS answer addresses by host and address: one row per address of each response''s answer_addrs, filled by the loader with the dns_events rows. Partitioned by day like dns_events and dropped with it.'
  PARTITION BY RANGE COLUMNS(ts) (PARTITION pmax VALUES LESS THAN (MAXVALUE));

-- The responses loaded before this migration: answer_addrs (",A,B,") split
-- at its commas, a token counting only between two commas and only when it
-- is 8 or 32 upper-case hex digits, as the loader does (loader/dnsnames.go).
-- A row has at most 2,048 tokens (answer_addrs holds 4,096 bytes), so the
-- recursion needs more than the default 1,000 iterations.
SET STATEMENT max_recursive_iterations = 5000 FOR
INSERT IGNORE INTO dns_names (host_id, addr, ts, boot_id, pid, proc_start, qname, segment_id, row_no)
WITH RECURSIVE s (segment_id, row_no, ts, host_id, boot_id, pid, proc_start, qname, rest) AS (
  SELECT segment_id, row_no, ts, host_id, boot_id, pid, proc_start, qname, SUBSTRING(answer_addrs, LOCATE(',', answer_addrs))
  FROM dns_events
  WHERE event = 'response' AND LOCATE(',', answer_addrs) > 0
  UNION ALL
  SELECT segment_id, row_no, ts, host_id, boot_id, pid, proc_start, qname, SUBSTRING(rest, LOCATE(',', rest, 2))
  FROM s WHERE LOCATE(',', rest, 2) > 0
)
SELECT host_id, UNHEX(tok), ts, boot_id, pid, proc_start, qname, segment_id, row_no
FROM (SELECT s.*, SUBSTRING(rest, 2, LOCATE(',', rest, 2) - 2) AS tok FROM s WHERE LOCATE(',', rest, 2) > 0) t
WHERE LENGTH(tok) IN (8, 32) AND tok REGEXP '^[0-9A-F]+$';
