// Package loader verifies received segments and loads them into MariaDB,
// exactly once: a pass ([Loader.Run]) verifies each segment file in the
// server's inboxes against its host's key, loads its rows and its custody
// row in one transaction, and archives it; a segment the database refuses as
// data is quarantined so that no segment can block the inbox. Memory stays
// within Options.MaxMemory whatever a segment says.
//
// Design notes and measurements: docs/design.md, section "Loader memory bound and custody of loaded rows (loader, spool, custody)".
package loader
