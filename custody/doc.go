// Package custody checks and retires what the loader has taken into custody:
// the ledger (segments), the archived segment files and the quarantine.
//
// [Audit] (pofr-server verify) walks the ledger per host in seq order and
// reports holes, chain breaks and ledger rows that disagree with their own
// digests, settles chain_ok where it can, and re-verifies archived files
// against the registered key and the ledger's digest. [PruneFiles]
// (pofr-server retention --archive-keep) deletes archived files by the
// ledger's ts_to, recording segments.archive_removed_at, and quarantined
// files by age. [PurgeHost] (pofr-server deregister --purge-rows) deletes a
// host's rows in short batches.
//
// It never loads: package loader does; the tests audit, prune and purge
// what a real load pass took in.
package custody
