// Package spool is pofr's on-disk segment format: the writer that seals the
// collector's rows into signed, hash-chained segments ([Open]), the reader
// that verifies segments from untrusted bytes ([Verify]), and the quota that
// bounds the spool directory. The normative specification is
// docs/segment-format.md.
//
// Design notes and measurements: docs/design.md, section "Segment format and spool (spool)".
package spool
