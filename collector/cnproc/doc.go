// Package cnproc is the collector's process source: every process that
// starts and ends on the host, from the netlink proc connector (cn_proc),
// enriched from /proc and kept in a live process table that the other
// sources query through collector.Processes.
//
// Its parts: decode.go parses cn_proc datagrams (pure, fuzzed against
// captured frames in testdata), table.go is the process table (pure: fed
// decoded events, it writes rows; lives.go applies fork, exec and exit),
// ring.go hands events from the reader thread to the table goroutine, and
// source_linux.go owns the socket and the threads. docs/design.md
// ("Process source") has the rationale and the measurements.
package cnproc
