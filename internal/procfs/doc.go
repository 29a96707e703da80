// Package procfs is the collector's one way into /proc: an FS rooted at a
// procfs mount (tests use a fixture tree) that lists processes, reads their
// start time and walks their file descriptors, and the parsers of
// /proc/PID/stat, status, cgroup, loginuid, namespace links and mountinfo.
//
// The parsers take bytes and never allocate, because the process source
// runs them on its exec hot path with reused buffers (docs/design.md,
// "/proc access"); the cold-path reads (process listing, the start time of
// a socket's owner) use github.com/prometheus/procfs.
package procfs
