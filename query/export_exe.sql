-- export_exe: every row of executables for pofr-server export, with the
-- sequence number of the segment it came from (a stable document id:
-- host_id:seq:exe:row_no); the hash as 64 lower-case hex digits.
--
-- Parameters (NULL means no filter):
--   @host        host_id
--   @segment     segment_id: only the rows of this segment (export --follow)
--   @from, @to   DATETIME(6) UTC: ts at or after @from, before @to
SELECT sg.seq AS segment_seq, e.segment_id, e.row_no, e.host_id, e.boot_id, e.ts, e.last_ts, e.count, e.pid,
  e.dev, e.inode, e.size, e.mtime_ns, e.ctime_ns, LOWER(HEX(e.sha256)) AS sha256, e.how, e.skip, e.path
FROM executables e
JOIN segments sg ON sg.segment_id = e.segment_id
WHERE (@host IS NULL OR e.host_id = @host)
  AND (@segment IS NULL OR e.segment_id = @segment)
  AND (@from IS NULL OR e.ts >= @from) AND (@to IS NULL OR e.ts < @to)
ORDER BY e.ts, e.segment_id, e.row_no
