// Package ui is pofr-server's read-only web interface: the fleet's custody at
// a glance, a host's process tree at a moment and its timeline with every
// gap drawn, one process life with its argv shown exactly, and the query
// questions as forms. An analyst can be given a browser instead of a MariaDB
// account.
//
// Pages are rendered on the server with html/template and work without
// JavaScript; one small script (static/app.js, no library) adds filtering as
// you type and expand/collapse-all to the tree. Every asset is embedded
// (go:embed): no CDN, no external font.
//
// Every answer comes from the query package's SQL files (hosts.sql, tree.sql,
// timeline.sql, proc.sql, ran.sql, …) or from the few of this package's own
// (sql/*.sql, in the same form), run through [query.Querier] with a row
// limit, and every page shows the statements it ran as a script an analyst
// can paste into the mariadb client.
//
// # Security
//
// Every byte a host recorded (argv, paths, comm, hostnames) is hostile. It is
// first made visible text by [query.Safe] and [query.FormatArgv] (control,
// bidi and invisible characters and invalid UTF-8 become \xNN and \uNNNN
// escapes), then HTML-escaped by html/template; no template value is ever
// marked as trusted HTML. Responses carry a Content-Security-Policy without
// inline script or style, only GET and HEAD are served (there is no state to
// change), and the server only reads: it is meant to use the reader account,
// and its connections are set read-only. Authentication is optional: HTTP
// basic with bcrypt hashes (--auth-file) and/or TLS client certificates
// (--client-ca). Without either, requests must name the server by an IP
// address or localhost, which defeats DNS rebinding against a loopback UI.
package ui
