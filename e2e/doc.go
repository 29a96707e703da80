// Package e2e holds pofr's end-to-end tests: they build pofr-collector and
// pofr-server, start a private MariaDB, `pofr-server serve` on loopback and
// `pofr-collector run` on this host, register the host with a one-time token,
// run a workload, load what arrived and check it in SQL.
//
// The tests are of tier "e2e" (see internal/testutil): they need root (the
// collector's kernel interfaces), MariaDB and the go command, and skip with a
// reason otherwise (or fail, with POFR_TEST_REQUIRE=all). The collector sees
// the whole machine, so every assertion is filtered to the processes, paths
// and ports the test itself created. They check the reliability bars that need
// the whole pipeline:
//
//   - TestPipeline: hostile argv (tabs, newlines, quotes, invalid UTF-8)
//     byte-exact in proc_events, exe and the parent keys of a process tree,
//     file rows of a directory, sockets with their owning process, and the
//     custody ledger (every seq, chain intact, nothing quarantined);
//   - TestCollectorKill: kill -9 of the collector, then a restart, records
//     an "unclean stop" gap and the hash chain continues across it;
//   - TestServerOutage: the receiver down while the collector records, then
//     back: every segment arrives and loads once, seqs contiguous;
//   - TestLatency: exec → queryable latency with the default profile and
//     `pofr-server load --watch`, logged (no timing assertion).
//
// The package has no non-test code.
package e2e
