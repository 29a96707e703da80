// Package fanotify is the collector's file source: which process opened,
// executed, wrote, created, deleted or renamed which file, from fanotify
// filesystem marks (or, where fanotify is unavailable, /proc/PID/fd scans),
// aggregated per window into rows.
//
// Its parts: decode.go parses fanotify read buffers (pure, fuzzed against
// captured buffers in testdata), cache.go is the directory-handle path
// cache, mounts.go chooses the file systems to mark, options.go holds the
// aggregation window, and source_linux.go owns the fanotify group.
// docs/design.md ("File source") has the rationale and the measurements.
package fanotify
