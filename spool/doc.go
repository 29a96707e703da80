// Package spool is the on-disk segment format: writer, reader and verifier,
// and the quota that bounds the spool directory.
package spool
