// Package metrics exposes pofr-server's Prometheus metrics: an opt-in HTTP
// endpoint (--metrics-listen) for the long-running commands, a collector
// that reads the custody ledger on each scrape (segments loaded and
// quarantined, rows per table, chain breaks, gaps, each host's last
// segment, the inbox backlog) and one over the SSH receiver's counters.
//
// The ledger is the truth two loaders share, so its counts are read from
// the database rather than kept in one process: every server reports the
// same numbers and a restart resets nothing. docs/operations.md lists the
// metric names.
package metrics
