-- host: one host's registration and the span of its loaded record.
--
-- Parameters:
--   @host  host_id
--
-- first_data and last_data are the earliest and latest event times of its
-- loaded segments; modes are the capture modes of the newest segment.
SELECT
  h.host_id, h.hostname, h.status, h.ips, h.os, h.kernel, h.version, h.last_seen,
  (SELECT MIN(s.ts_from) FROM segments s WHERE s.host_id = h.host_id) AS first_data,
  (SELECT MAX(s.ts_to)   FROM segments s WHERE s.host_id = h.host_id) AS last_data,
  (SELECT s.modes FROM segments s WHERE s.host_id = h.host_id
    ORDER BY s.seq DESC LIMIT 1)                                     AS modes,
  (SELECT s.tz_offset FROM segments s WHERE s.host_id = h.host_id
    ORDER BY s.seq DESC LIMIT 1)                                     AS tz_offset
FROM hosts h
WHERE h.host_id = @host
ORDER BY h.host_id
