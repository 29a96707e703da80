// Package collector holds what the collector's kernel event sources share:
// ProcInfo and the Processes and ExecObserver interfaces through which the
// sources enrich each other's rows, and the account source (uid and gid
// names). Each kernel source lives in a package of its own:
//
//   - collector/cnproc: processes, from the netlink proc connector
//   - collector/sockdiag: TCP and UDP endpoints, from sock_diag
//   - collector/fanotify: file access, from fanotify
//
// docs/design.md explains how they work and why, with the measurements.
package collector
