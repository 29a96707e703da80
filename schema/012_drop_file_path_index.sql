-- pofr schema, migration 012: file_events without the path index.
--
-- KEY path (path(255)) served no documented query: touched.sql matches
-- path OR new_path (new_path has no index, so MariaDB cannot merge them and
-- reads by host_ts, or everything when no host is given), and the other
-- files queries find a process's rows by the proc index. It held about a
-- fifth of a file row's bytes (bench Loader/storage). Dropping a secondary
-- index is done in place, without copying rows; nothing else changes.
ALTER TABLE file_events DROP INDEX IF EXISTS path;
