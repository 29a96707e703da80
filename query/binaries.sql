-- binaries: every distinct executable file a host ran, by identity (device,
-- inode, size, mtime, ctime), first seen first, with its SHA-256: the rows
-- of exe_ids, where the loader keeps one row per identity.
--
-- Parameters (NULL means no filter):
--   @host       host_id
--   @from, @to  DATETIME(6) UTC: executed at some time in [@from, @to)
--   @sha256     32 bytes: only this hash
SELECT x.host_id AS host, x.first_ts AS first_seen, x.last_ts AS last_seen, x.execs,
  LOWER(HEX(x.sha256)) AS sha256, x.skip, x.size, x.path, x.dev, x.inode
FROM exe_ids x
WHERE (@host IS NULL OR x.host_id = @host)
  AND (@sha256 IS NULL OR x.sha256 = @sha256)
  AND (@from IS NULL OR x.last_ts >= @from) AND (@to IS NULL OR x.first_ts < @to)
ORDER BY first_seen, x.host_id, path
