// Package sockdiag is the collector's socket source: every TCP and UDP
// endpoint of the host and its owning process, from NETLINK_SOCK_DIAG dumps
// and destroy notifications, with a /proc/net fallback. Owners come from an
// fd scan of the processes at each dump and, for outbound connections too
// short for a dump, from kernel tracepoints (Options.ConnOwners, package
// sockowner) when they can be read.
//
// Its parts: decode.go parses inet_diag messages and /proc/net files (pure,
// fuzzed against captured frames in testdata), table.go diffs dumps and
// destroy notifications into rows (pure), owner_linux.go finds the process
// holding a socket inode, destroy_linux.go reads the destroy notifications
// in batches, and source_linux.go owns the dumps, the goroutines and the
// per-namespace child sources. docs/design.md ("Socket
// source") has the rationale and the measurements.
package sockdiag
