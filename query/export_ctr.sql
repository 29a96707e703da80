-- export_ctr: every row of containers for pofr-server export, with the
-- sequence number of the segment it came from (a stable document id:
-- host_id:seq:ctr:row_no).
--
-- Parameters (NULL means no filter):
--   @host        host_id
--   @segment     segment_id: only the rows of this segment (export --follow)
--   @from, @to   DATETIME(6) UTC: ts at or after @from, before @to
SELECT sg.seq AS segment_seq, e.*
FROM containers e
JOIN segments sg ON sg.segment_id = e.segment_id
WHERE (@host IS NULL OR e.host_id = @host)
  AND (@segment IS NULL OR e.segment_id = @segment)
  AND (@from IS NULL OR e.ts >= @from) AND (@to IS NULL OR e.ts < @to)
ORDER BY e.ts, e.segment_id, e.row_no
