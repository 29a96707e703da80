-- export_sock: every row of sock_events for pofr-server export, with the sequence
-- number of the segment it came from (a stable document id:
-- host_id:seq:sock:row_no), and where the remote address is (addr_info, as
-- the loader stored it with --geoip/--resolve; NULL when it did not).
--
-- Parameters (NULL means no filter):
--   @host        host_id
--   @segment     segment_id: only the rows of this segment (export --follow)
--   @from, @to   DATETIME(6) UTC: ts at or after @from, before @to
SELECT sg.seq AS segment_seq, e.*, a.country AS remote_country, a.city AS remote_city, a.asn AS remote_asn,
  a.as_org AS remote_as_org, a.ptr AS remote_ptr, a.edition AS remote_geo_edition
FROM sock_events e
JOIN segments sg ON sg.segment_id = e.segment_id
LEFT JOIN addr_info a ON a.addr = e.remote_addr
WHERE (@host IS NULL OR e.host_id = @host)
  AND (@segment IS NULL OR e.segment_id = @segment)
  AND (@from IS NULL OR e.ts >= @from) AND (@to IS NULL OR e.ts < @to)
ORDER BY e.ts, e.segment_id, e.row_no
