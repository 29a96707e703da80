-- pofr schema, migration 014: page-compressed event tables.
--
-- InnoDB page compression (PAGE_COMPRESSED=1) compresses each 16 KiB page
-- when it is written and punches a hole in the data file for the rest, so
-- the event tables take what their pages compress to: on the busy-host mix
-- of make bench (Loader/storage) about a quarter of the logical size, with
-- no measurable cost to the loader (docs/design.md has the table of
-- options). The algorithm and level are the server's
-- (innodb_compression_algorithm, zlib by default; innodb_compression_level,
-- 6); the data directory's file system must punch holes (ext4, XFS, btrfs)
-- or nothing is saved. pofr-server schema apply warns when the server's
-- settings defeat it.
--
-- Each ALTER rebuilds the table, so the rows already loaded are converted
-- (it needs free space for one copy of the largest partition at a time
-- and takes about as long as loading the rows again). ROW_FORMAT=DYNAMIC
-- and KEY_BLOCK_SIZE=0 undo an administrator's ROW_FORMAT=COMPRESSED,
-- which page compression cannot be combined with. Partitions added later
-- (retention, schema apply) inherit the table's options.
ALTER TABLE proc_events ROW_FORMAT=DYNAMIC KEY_BLOCK_SIZE=0 PAGE_COMPRESSED=1 PAGE_COMPRESSION_LEVEL=1;
ALTER TABLE file_events ROW_FORMAT=DYNAMIC KEY_BLOCK_SIZE=0 PAGE_COMPRESSED=1 PAGE_COMPRESSION_LEVEL=1;
ALTER TABLE sock_events ROW_FORMAT=DYNAMIC KEY_BLOCK_SIZE=0 PAGE_COMPRESSED=1 PAGE_COMPRESSION_LEVEL=1;
ALTER TABLE dns_events ROW_FORMAT=DYNAMIC KEY_BLOCK_SIZE=0 PAGE_COMPRESSED=1 PAGE_COMPRESSION_LEVEL=1;
ALTER TABLE login_events ROW_FORMAT=DYNAMIC KEY_BLOCK_SIZE=0 PAGE_COMPRESSED=1 PAGE_COMPRESSION_LEVEL=1;
