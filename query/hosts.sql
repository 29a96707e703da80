-- hosts: the registered hosts, their last data, the state of their hash
-- chain and how much of their record is known to be missing.
--
-- Parameters: none.
--
-- chain is 'ok' when every loaded segment links to its predecessor, 'broken'
-- when a segment's prev_digest does not match the loaded predecessor,
-- 'waiting' when a predecessor is not loaded (yet), 'none' before the first
-- segment. missing_segments counts sequence numbers between the first and
-- the last loaded segment that are not in the ledger.
SELECT
  h.host_id,
  h.hostname,
  h.status,
  h.ips,
  h.last_ip,
  h.last_seen,
  COALESCE(s.segments, 0)                        AS segments,
  s.last_seq,
  s.last_loaded,
  CASE WHEN s.segments IS NULL THEN 'none'
       WHEN s.broken > 0 THEN 'broken'
       WHEN s.waiting > 0 THEN 'waiting'
       ELSE 'ok' END                              AS chain,
  COALESCE(s.last_seq - s.first_seq + 1 - s.segments, 0) AS missing_segments,
  (SELECT COUNT(*) FROM gaps g WHERE g.host_id = h.host_id)       AS gaps,
  (SELECT COUNT(*) FROM quarantine q WHERE q.host_id = h.host_id) AS quarantined
FROM hosts h
LEFT JOIN (
  SELECT host_id,
    COUNT(*)                  AS segments,
    MIN(seq)                  AS first_seq,
    MAX(seq)                  AS last_seq,
    MAX(loaded_at)            AS last_loaded,
    SUM(chain_ok = 0)         AS broken,
    SUM(chain_ok IS NULL)     AS waiting
  FROM segments
  GROUP BY host_id
) s ON s.host_id = h.host_id
ORDER BY h.host_id
