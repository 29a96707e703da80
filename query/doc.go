// Package query answers the analysts' questions from a pofr database: each
// question is one documented SQL file embedded here (hosts.sql, tree.sql,
// timeline.sql, proc.sql, ran.sql, touched.sql, conns.sql, peers.sql,
// gaps.sql; export's statement per table is built from one template) that
// reads its parameters from user variables (@host, @from, …), so that an
// analyst can run the very same SQL in the mariadb client after a SET. The Go code binds the parameters, shapes the
// rows (process trees), enriches remote addresses at query time (reverse
// DNS, a MaxMind database) and prints them as an aligned table, CSV or JSON
// lines.
//
// # Printing hostile bytes
//
// argv, paths, comm and every other byte column come from the monitored
// hosts: an attacker chooses them. Table and CSV output pass them through
// [Safe] (control characters, bidi controls and invalid UTF-8 escaped as
// \xNN, \uNNNN; backslash doubled) and argv through [FormatArgv] (shell-like
// quoting, $'…' for arguments that need escapes), so no terminal escape
// sequence reaches the terminal and the exact bytes can be read back. In
// CSV, a text cell that starts with =, +, -, @, tab or carriage return also
// gets a leading single quote, so that a spreadsheet shows it rather than
// runs it as a formula (OWASP's advice against CSV injection). JSON
// output is exact: a byte column is a JSON string when it is valid UTF-8
// (control characters escaped by JSON itself), else {"b64": "<base64>"};
// argv is an array of such values.
//
// # Times
//
// The database stores UTC. Output is UTC, or with [Output].Local each host's
// own UTC offset as its segments recorded it (tz_offset). Ranges are
// half-open: --from is included, --to is not.
package query
