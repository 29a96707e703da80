-- pofr schema, migration 011: proc_events without the parent index.
--
-- KEY parent (host_id, boot_id, ppid, parent_start) served no documented
-- query or view (children are found through the processes view, whose
-- parent columns are computed per life, and the host_id/boot_id/pid prefix of
-- the proc index serves the rest); it cost about a fifth of a process row's
-- bytes. Dropping a secondary index is done in place, without copying rows.
ALTER TABLE proc_events DROP INDEX IF EXISTS parent;
