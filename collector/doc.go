// Package collector holds the kernel event sources (cn_proc, sock_diag,
// fanotify) and the live process and socket tables that enrich them.
package collector
