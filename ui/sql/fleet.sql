-- fleet: what the fleet page shows beside hosts.sql, per registered host:
-- the capture modes of its newest segment, and its gap rows and quarantined
-- files of the last 24 hours.
--
-- Parameters:
--   @now  DATETIME(6) UTC: the end of the 24 hours
SELECT
  h.host_id,
  (SELECT s.modes FROM segments s WHERE s.host_id = h.host_id
    ORDER BY s.seq DESC LIMIT 1)                                 AS modes,
  (SELECT COUNT(*) FROM gaps g WHERE g.host_id = h.host_id
    AND g.to_ts >= @now - INTERVAL 1 DAY AND g.from_ts < @now)   AS gaps_24h,
  (SELECT COUNT(*) FROM quarantine q WHERE q.host_id = h.host_id
    AND q.at >= @now - INTERVAL 1 DAY)                           AS quarantined_24h
FROM hosts h
ORDER BY h.host_id
