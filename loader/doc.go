// Package loader verifies received segments and loads them into MariaDB,
// exactly once.
//
// One pass ([Loader.Run]) takes every segment file in the server's inboxes
// (<state>/inbox/<host_id>/<host_id>_<seq>_<digest16>.pofr) and, on several
// workers at once (also for one busy host):
//
//  1. verifies it with spool.Verify against the signing key the host
//     registered, for the host its inbox names (member digests, signature,
//     host id, sizes);
//  2. in ONE transaction: inserts its custody row into segments (unique
//     (host_id, seq) and digest), streams each table's rows into
//     LOAD DATA LOCAL INFILE 'Reader::…' (go-sql-driver/mysql reader
//     handlers; no temporary file), checks that MariaDB took every row and
//     raised no warning, and commits;
//  3. moves the file to <state>/archive/<host_id>/.
//
// A crash at any point leaves the segment loaded once or not at all: the
// ledger row and the rows commit together, and a file whose digest the
// ledger already holds is only archived. A second loader racing on the same
// segment blocks on the ledger's unique key and then skips it.
//
// The hash chain is checked against the ledger: prev_digest must equal the
// digest of the loaded segment seq-1. A break is recorded (segments.chain_ok
// = 0) and reported, not refused; a predecessor that is not loaded yet leaves
// chain_ok NULL until it is (settled, logged and counted when it commits,
// and checked again after every pass).
//
// A segment that fails verification or decoding, claims a seq that the
// ledger holds with another digest (a fork of the chain: logged as an error
// and counted), has a timestamp outside 1970–2200, or has a value longer
// than its column is moved to <state>/quarantine/<host_id>/ with a .reason
// file beside it and a row in the quarantine table; the loader goes on with
// the next. So is a segment of a revoked (deregistered) host still in its
// inbox (class revoked_host): the registry says so at the start of a pass,
// and hosts.status, read under a shared lock in the segment's transaction,
// says so at once ([PurgeHost] sets it before deleting the host's rows).
//
// The rule behind it: anything the database refuses as data for one
// segment (an error about a value or a constraint, class database, or a
// warning from LOAD DATA, which would otherwise truncate silently, class
// load) quarantines that segment with the database's reason, so no segment
// can block the inbox; only errors of the server itself (connection,
// account, lock waits) leave it in the inbox for the next pass.
//
// The custody audit, file retention and purges of what a pass leaves
// behind are package custody; partitions and accounts are package schema.
// A pass reports its advance through [Progress], which the command line
// renders.
//
// # Memory
//
// Whatever a segment says, the loader holds at most Options.MaxMemory
// (pofr-server load --max-memory, default 256 MiB) of segment data: a
// quarter for files being verified, half for decoded segments waiting or
// loading (admitted before anything is decompressed), the rest for the
// runtime and the workers, whose LOAD DATA buffers stay near 256 KiB
// because long values are escaped in pieces. A value longer than its SQL
// column is refused before it is decompressed and again, exactly, before it
// is rendered (class too_long).
//
// # Escaping
//
// Rows travel in LOAD DATA's default text format (fields separated by tab,
// lines by newline, escape character backslash). Byte columns are sent as
// their own bytes with \\ \t \n \r and NUL escaped, under CHARACTER SET
// binary so no character set conversion touches them ([Escaped], the
// default), or as hexadecimal stored with UNHEX() ([Hex]); NULL is \N.
// Small-vocabulary columns (event, op, state, …) must be printable ASCII, or
// the segment is quarantined. Timestamps are DATETIME(6) in UTC plus ts_ns,
// the nanoseconds beyond the microsecond of each table's main ts.
package loader
