// Package bench holds the workload generators and the benchmark harness
// behind make bench.
package bench
