-- pofr schema, migration 018: exec rows name the file they executed.
--
-- proc_events.exe_key is the identity (device, inode, size, mtime, ctime)
-- of the file an exec executed, as a 64-bit key (event.ExeKey: the first 8
-- bytes of the SHA-256 of the five numbers in decimal joined by commas),
-- from the fanotify FAN_OPEN_EXEC of that exec. exe_ids gets the same key
-- of its identity, so an exec joins the hash of its own file exactly,
-- instead of the exe_ids row of the same path whose time range covers it
-- (which two files executed at one path within that range both matched).
-- The processes view (views.sql) shows the describing exec's key and hash.

ALTER TABLE proc_events ADD COLUMN IF NOT EXISTS exe_key BIGINT UNSIGNED NULL
  COMMENT 'exec rows: identity of the executed file (the one exe names) as a key: CONV(LEFT(SHA2(CONCAT_WS('','', dev, inode, size, mtime_ns, ctime_ns), 256), 16), 16, 10) of the exe_ids row of that file; NULL on other rows, when fanotify did not report the exec, and in rows of collectors before it.';

ALTER TABLE exe_ids ADD COLUMN IF NOT EXISTS exe_key BIGINT UNSIGNED NULL
  COMMENT 'Key of the identity that exec rows carry (proc_events.exe_key): CONV(LEFT(SHA2(CONCAT_WS('','', dev, inode, size, mtime_ns, ctime_ns), 256), 16), 16, 10); set by the loader after each merge.',
  ADD KEY IF NOT EXISTS host_key (host_id, exe_key);

-- The key of every exe_ids row that has none yet. The loader runs this very
-- statement after each segment's merge (loader/exeids.go), with
-- "AND host_id = ?" added: only the identities that segment added.
UPDATE exe_ids SET exe_key = CAST(CONV(LEFT(SHA2(CONCAT_WS(',', dev, inode, size, mtime_ns, ctime_ns), 256), 16), 16, 10) AS UNSIGNED)
WHERE exe_key IS NULL;
