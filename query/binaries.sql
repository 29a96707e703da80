-- binaries: every distinct executable file a host ran, by identity (device,
-- inode, size, mtime, ctime), first seen first, with its SHA-256.
--
-- Parameters (NULL means no filter):
--   @host       host_id
--   @from, @to  DATETIME(6) UTC: executed at some time in [@from, @to)
--   @sha256     32 bytes: only this hash
SELECT x.host_id AS host, MIN(x.ts) AS first_seen, MAX(x.last_ts) AS last_seen, SUM(x.count) AS execs,
  LOWER(HEX(x.sha256)) AS sha256, x.skip, x.size, MIN(x.path) AS path, x.dev, x.inode
FROM executables x
WHERE (@host IS NULL OR x.host_id = @host)
  AND (@sha256 IS NULL OR x.sha256 = @sha256)
  AND (@from IS NULL OR x.last_ts >= @from) AND (@to IS NULL OR x.ts < @to)
GROUP BY x.host_id, x.dev, x.inode, x.size, x.mtime_ns, x.ctime_ns, x.sha256, x.skip
ORDER BY first_seen, x.host_id, path
