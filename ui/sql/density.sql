-- density: how many process, file and socket rows a host recorded in each
-- of @buckets equal slices of [@from, @to), for the timeline chart.
--
-- Parameters:
--   @host     host_id
--   @from     DATETIME(6) UTC, included
--   @to       DATETIME(6) UTC, excluded
--   @buckets  number of slices (INT)
--
-- bucket is 0 .. @buckets-1. Each part reads only the (host_id, ts) index.
SELECT kind, bucket, COUNT(*) AS n FROM (
  SELECT 'proc' AS kind,
    FLOOR(TIMESTAMPDIFF(MICROSECOND, @from, ts) * @buckets / TIMESTAMPDIFF(MICROSECOND, @from, @to)) AS bucket
  FROM proc_events WHERE host_id = @host AND ts >= @from AND ts < @to
  UNION ALL
  SELECT 'file',
    FLOOR(TIMESTAMPDIFF(MICROSECOND, @from, ts) * @buckets / TIMESTAMPDIFF(MICROSECOND, @from, @to))
  FROM file_events WHERE host_id = @host AND ts >= @from AND ts < @to
  UNION ALL
  SELECT 'sock',
    FLOOR(TIMESTAMPDIFF(MICROSECOND, @from, ts) * @buckets / TIMESTAMPDIFF(MICROSECOND, @from, @to))
  FROM sock_events WHERE host_id = @host AND ts >= @from AND ts < @to
) x
GROUP BY kind, bucket
ORDER BY kind, bucket
