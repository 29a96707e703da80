// Package bench holds the workload generators and the benchmark harness
// behind make bench (cmd/pofr-bench): it measures pofr-collector side by side
// with its peers (auditd, a POFR-style /proc poller) and the server's loader
// against a plain LOAD DATA, in the same run and on the same workloads, so
// that pofr's cost claims rest on numbers from one machine and one moment.
// Start with [Check], [WriteBench] and [WriteMarkdown] for the output.
//
// Design notes and measurements: docs/design.md, section "Benchmark harness (bench)".
package bench
