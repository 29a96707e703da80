// Package fleetsim is the fleet simulator behind make bench-fleet
// (bench/cmd/pofr-fleet): a whole pofr fleet on one machine, built from the
// real components, to measure what docs/scale.md extrapolates from.
//
// N simulated hosts register with one-time tokens through the receivers'
// registration endpoint (real keys), write a busy host's row mix at a
// configured rate into the real spool writer (signed segments sealed by
// age) and push them with the uplink pusher over SSH, through a TCP
// balancer, to R pofr-server serve processes, each with its own state
// directory and the same host key, sharing the registry in MariaDB. S
// shards are private mariadbd processes (or 3-node Galera clusters), a
// Spider head is a mariadbd of its own built by pofr-server head apply, and
// a pofr-server load --watch beside each receiver loads what it took, each
// host's segments straight into the host's shard.
//
// A run reports rows/s end to end, exec → queryable through the head
// (from the marked exec row's timestamp to the row answering a head query),
// the CPU of every server process (receivers, loaders, every mariadbd, read
// from /proc/PID/stat) per simulated host and per row, and database bytes
// per row; and checks that every sealed segment is in its own shard's
// ledger exactly once, that the head's per-host row checksums equal the
// shards', and that nothing is lost when a receiver (and, with Galera, a
// replica node) is killed mid-run.
//
// Results: docs/benchmarks.md ("Fleet simulator"); the plan: docs/scale.md.
package fleetsim
