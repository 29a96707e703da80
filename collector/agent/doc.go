// Package agent is the collector's composition root: Run opens the spool,
// starts the process, file, socket and account sources and the uplink,
// wires them together (the file source tells the process source of
// executables, the socket source asks it for owners), keeps status.json
// current, and stops everything in order: sources, then the spool's seal,
// then a last push. cmd/pofr-collector's run command parses flags, takes
// the lock and loads the host's identity, then calls Run.
package agent
