-- gaps: every interval in which the record of a host is incomplete, and why.
--
-- Parameters:
--   @host  host_id
--   @from  DATETIME(6) UTC or NULL: intervals ending at or after it
--   @to    DATETIME(6) UTC or NULL: intervals starting before it
--
-- Three sources: gap rows the collector wrote (kernel drops, collector not
-- running, spool quota evictions); holes in the custody ledger (sequence
-- numbers never loaded: source 'ledger'); and hash-chain breaks (a segment
-- whose prev_digest is not its loaded predecessor: source 'chain').
SELECT * FROM (
  SELECT g.from_ts AS from_time, g.to_ts AS to_time, g.source, g.lost, g.reason,
         (SELECT MAX(s.tz_offset) FROM segments s WHERE s.segment_id = g.segment_id) AS _tz_offset
  FROM gaps g
  WHERE g.host_id = @host
  UNION ALL
  SELECT l.prev_to, l.ts_from, 'ledger', NULL,
         CONCAT('segments ', l.prev_seq + 1, '..', l.seq - 1, ' not loaded'), l.tz_offset
  FROM (
    SELECT seq, ts_from, tz_offset,
           LAG(seq)   OVER (ORDER BY seq) AS prev_seq,
           LAG(ts_to) OVER (ORDER BY seq) AS prev_to
    FROM segments WHERE host_id = @host
  ) l
  WHERE l.prev_seq IS NOT NULL AND l.seq <> l.prev_seq + 1
  UNION ALL
  SELECT c.ts_from, c.ts_to, 'chain', NULL,
         CONCAT('segment ', c.seq, ' does not link to the loaded segment ', c.seq - 1), c.tz_offset
  FROM segments c
  WHERE c.host_id = @host AND c.chain_ok = 0
) x
WHERE (@from IS NULL OR x.to_time >= @from)
  AND (@to IS NULL OR x.from_time < @to)
ORDER BY x.from_time, x.to_time, x.source
