// Package alert runs pofr-server's alert rules over the database and sends
// each new match, once, to webhooks, syslog and commands.
//
// Rules come from a JSON file: a host silent for longer than a duration,
// new gap rows (by reason), chain breaks, quarantined segments, revoked
// hosts, and saved SQL queries over the views as detection rules. A match
// fires when its row in alerts_fired is inserted: the primary key (rule,
// SHA-256 of the match's key) makes the insert succeed on one server only,
// so two servers running the same rules do not double-fire. When every sink
// fails the claim is deleted and the next run tries again.
package alert
