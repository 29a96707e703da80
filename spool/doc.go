// Package spool is pofr's on-disk segment format: the writer that seals the
// collector's rows into signed segments, the reader that verifies segments
// from untrusted bytes, and the quota that bounds the spool directory. The
// normative specification is docs/segment-format.md; this is its summary.
//
// # Segment
//
// A segment is one immutable file named
//
//	<host_id>_<seq, 20 digits>_<first 16 hex digits of the digest>.pofr
//
// holding an uncompressed POSIX ustar archive whose headers are canonical
// (fully determined by member name, size and the manifest's creation time)
// and whose members are, in this order and no others:
//
//	manifest.json   canonical JSON: format, version, host_id, boot_id, seq,
//	                prev_digest, created, min_ts/max_ts, tz_offset_seconds,
//	                hostname, collector_version, modes, counters, members
//	                (name, table, rows, bytes, sha256 of each table member)
//	manifest.sig    raw 64-byte Ed25519 signature of the manifest bytes
//	proc.arrow …    one Arrow IPC stream per table that has rows, in the
//	                order proc, file, sock, gap, acct, exe, dns, login: schema, dictionaries,
//	                exactly one record batch, ZSTD buffer compression
//
// The digest of a segment is the SHA-256 of its manifest bytes; each
// manifest names the digest of the segment sealed before it (prev_digest),
// so the segments of a host form a hash chain, and seq counts them from 1
// across restarts. The signature covers the manifest, the manifest covers
// every member, and the canonical container covers the rest: every byte is
// authenticated.
//
// # Writing
//
// [Open] returns a [Writer], the collector's event.Sink. Appends never block
// on I/O and never fail; a background goroutine seals a segment when the rows
// reach [Options].MaxSegmentBytes (estimated in memory) or
// [Options].MaxSegmentAge. Sealing writes a temporary file, fsyncs it,
// renames it, fsyncs the directory, then re-reads and verifies it; only then
// does the chain advance. The writer's state (next seq, last digest, whether
// it stopped cleanly) lives in state.json in the spool, so a restart continues
// the chain and records the time it was not recording as a gap row. Beyond
// [Options].Quota the oldest segments are evicted and the eviction recorded
// as a gap row; if sealing keeps failing, rows are kept in memory up to a
// bound and what must be dropped is recorded as a gap row. The uplink uses
// [List] and [Remove].
//
// # Reading
//
// [Verify] reads a segment treating every byte as hostile: sizes are bounded
// before anything is read or decompressed, member names never reach the file
// system, the Arrow framing is checked before Arrow decodes it, and arrays
// are fully validated. Refusals wrap one of [ErrCorrupt], [ErrBadSignature],
// [ErrChainBroken], [ErrWrongHost], [ErrTooLarge] or [ErrUnsupportedVersion],
// so callers decide with errors.Is whether to retry or quarantine. A
// [Segment] gives the manifest, the digest, typed rows (Procs, Files, …) and
// each table as one Arrow record batch for column-wise loading.
package spool
