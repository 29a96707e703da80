-- treecost: how many process rows the tree at @at must read: those the
-- ledger counts in the segments of the boot the host was recording at @at,
-- up to @at. The host page waits for the tree only when they are few.
--
-- Parameters:
--   @host  host_id
--   @at    DATETIME(6) UTC: the moment
WITH boot AS (
  SELECT boot_id FROM segments
  WHERE host_id = @host AND ts_from <= @at
  ORDER BY ts_from DESC, seq DESC LIMIT 1
)
SELECT COALESCE(SUM(s.rows_proc), 0) AS proc_rows
FROM segments s
JOIN boot b ON b.boot_id = s.boot_id
WHERE s.host_id = @host AND s.ts_from <= @at
ORDER BY 1
