package sockdiag

import (
	"log/slog"
	"time"

	"github.com/pofr/pofr/collector"
	"github.com/pofr/pofr/collector/sockowner"
	"github.com/pofr/pofr/internal/event"
)

// Socket source: every TCP and UDP endpoint of the host and its owner.
//
// The source has two inputs, both NETLINK_SOCK_DIAG:
//
//   - Periodic inet_diag dumps (TCP, and UDP if enabled; IPv4 and IPv6) with a
//     state filter that leaves out TIME_WAIT and SYN_RECV / NEW_SYN_RECV
//     request sockets. Successive dumps are diffed by socket cookie: a socket
//     first seen yields a "listen" row (TCP LISTEN, or unconnected UDP) or an
//     "open" row (connected), with first_ts = the dump time.
//   - The destroy multicast groups SKNLGRP_INET{,6}_{TCP,UDP}_DESTROY on a
//     second socket (4 MiB receive buffer). The kernel sends one message per
//     freed socket, with its tuple, cookie, final state and (TCP) tcp_info, so
//     every socket yields a "close" row (flag from_destroy), even one that
//     lived for microseconds. A socket that disappears from the dumps without
//     a destroy message within sockVanishGrace gets a "close" row flagged
//     vanished.
//
// The destroy message carries no uid and no inode, so owners come from the
// dumps: each new socket's inode is looked up in /proc/*/fd (socket:[N]); the
// owner (pid, proc_start) is kept with the socket's cookie until the destroy
// message closes it. The fd scan is incremental: it runs only when a dump
// shows inodes without an owner, visits processes started since the last scan
// first, then processes that owned sockets before, then the rest, and stops
// as soon as every wanted inode is found. A socket that closes before any dump
// saw it has an unknown owner (pid null, flag owner_unknown, counted in
// [Stats].OwnerUnknown), with one exception: a connection accepted on a
// listening port that a dump did see is attributed to the listener's owner
// (also when a dump saw it only in the accept queue, before it had an inode).
// Such rows have pid set but inode null (and first_ts null if never dumped);
// no flag marks them (event has none for it yet); for a pre-forking
// server the pid is the process that holds the listener, which may differ
// from the one that accepted. Counted in [Stats].OwnerFromListener.
//
// Direction: "listen" for listeners; "in" when the local port is a port on
// which the source has seen a listener of the same protocol; "out" otherwise.
//
// Dump cadence: [DefaultDumpInterval] (1 s). Measured on the project VM
// (2 vCPUs, kernel 6.18, shared with other work; BenchmarkPrivSockCadence):
// about 40 connections/s each living 1–3 s, 15 s per run, share of their
// client sockets with a known owner / collector CPU (rusage, % of one core):
//
//	250 ms   100 %   2.9 %   (60 dumps)
//	1 s      100 %   1.9–2.4 % (15 dumps)
//	5 s      31–34 % 1.7–1.9 % (3 dumps)
//
// Most of that CPU is the per-socket destroy handling, the same at every
// cadence; a steady-state dump of 10,000 sockets takes 11–15 ms of wall and
// CPU time (TestPrivSock10k). A connection living ≥ 1 s always spans a 1 s
// dump, so 1 s attributes all of them at little more CPU than 5 s; 250 ms only helps
// connections living 250 ms–1 s. Profiles choose 250 ms (forensic), 1 s
// (default), 5 s (busy-host).
//
// Network namespaces: a destroy listener and a dump socket see only the
// network namespace they were created in. With AllNetns (every shipped
// profile) the source runs a census of the namespaces in use by processes
// (/proc/*/ns/net) every 5 s, and for each namespace other than its own a
// child source whose two sockets are created inside it (setns(2) on a
// thread that ends afterwards); its rows carry that namespace's inode in
// netns. Owners are found the same way (/proc/*/fd inodes are global). A
// child stops, after draining, at the first census that finds no process in
// its namespace: until then its sockets keep the namespace alive. Limits: a
// namespace's sockets are recorded from the census after its first process
// appears, so a container's connections in its first 0–5 s are missed; a
// namespace whose sockets cannot be opened (setns refused) is counted in
// [Stats].NetnsUncovered. Without AllNetns, NetnsUncovered counts every
// other namespace in use (census every 30 s), so the limit is visible.
//
// Fallback: where NETLINK_SOCK_DIAG does not work (or ForceProcNet is set),
// the source parses /proc/net/{tcp,tcp6,udp,udp6} at each interval instead:
// rows are flagged fallback, there are no cookies (0) and no byte counts, and
// sockets living less than one interval are missed; every close is flagged
// vanished.
//
// Self: a socket owned by SelfPID, or by a process that collector.Processes reports as
// Self, is flagged self.

// DefaultDumpInterval is the inet_diag dump cadence when
// Options.DumpInterval is zero.
const DefaultDumpInterval = time.Second

// Socket source modes ([Stats].Mode).
const (
	ModeNetlink        = "netlink" // inet_diag dumps + destroy notifications
	ModeProcNet        = "procnet" // /proc/net polling (fallback)
	sockVanishGrace    = 2 * time.Second
	sockDrainDelay     = 10 * time.Millisecond // batching of destroy messages
	sockNetnsCensus    = 30 * time.Second
	sockNetnsCensusAll = 5 * time.Second // with AllNetns
	sockMaxTracked     = 1 << 20         // sockets tracked at once; beyond, new sockets are not tracked (counted)
	sockMaxPending     = 1 << 18         // destroy messages queued between reader and main loop
	sockDestroyRcvBuf  = 4 << 20
)

// Options configure a [Source].
type Options struct {
	// Sink receives the sock rows and gap rows. Required.
	Sink event.Sink
	// Procs resolves an owner pid to its proc_start and self flag. If nil,
	// or if it does not know the pid, /proc/PID/stat is read.
	Procs collector.Processes
	// Log receives start-up, fallback and periodic summary messages. Nil
	// discards them.
	Log *slog.Logger
	// DumpInterval is the inet_diag dump cadence (and the /proc/net poll
	// cadence in fallback mode). Zero means DefaultDumpInterval.
	DumpInterval time.Duration
	// UDP enables UDP sockets (dumps and destroy groups); TCP is always on.
	UDP bool
	// SelfPID is the collector's own pid: its sockets are flagged self.
	// Zero means none.
	SelfPID int32
	// ProcRoot is the procfs mount point; "" means /proc.
	ProcRoot string
	// Now is the clock; nil means time.Now. It must be safe for concurrent use.
	Now func() time.Time
	// ForceProcNet selects the /proc/net fallback even if sock_diag works.
	ForceProcNet bool
	// AllNetns records the sockets of every network namespace in use by
	// processes, not only the collector's own: each one found by the census
	// (every sockNetnsCensusAll) gets its own dump and destroy sockets,
	// created inside it, until no process uses it any more.
	AllNetns bool
	// Netns, when set, is a network namespace file (/proc/PID/ns/net,
	// /run/netns/NAME) whose sockets the source records instead of its own
	// namespace's; there is no /proc/net fallback then.
	Netns string
	// DestroyRcvBuf is the destroy socket's receive buffer in bytes; zero
	// means 4 MiB (1–4 MB lost nothing in the bursts measured in
	// research/kernel-probes.md, the default 208 KiB did). Tests make it
	// tiny to force ENOBUFS.
	DestroyRcvBuf int
	// ConnOwners, if set, names the owners of outbound connections from
	// kernel tracepoints (sockowner.Source): it is synced before each batch
	// of destroy notifications and each dump, and a connection it knows
	// needs no fd scan, even one that closed before any dump saw it.
	// Sources of other network namespaces share it.
	ConnOwners ConnOwners
}

// ConnOwners is where the source takes connection owners from besides the
// fd scan. sockowner.Source implements it.
type ConnOwners interface {
	// Sync brings the owners up to date; it returns how many tracepoint
	// records the kernel dropped since the previous Sync.
	Sync() (lost uint64)
	// Lookup returns the owner of the connection with key k and local
	// address laddr.
	Lookup(k sockowner.Key, laddr [16]byte) (sockowner.Owner, bool)
}

// Stats are the counters of a [Source] since it started.
type Stats struct {
	// Mode is ModeNetlink or ModeProcNet ("" before Run decided).
	Mode string
	// Dumps counts completed dumps (or /proc/net polls); DumpErrors failed ones.
	Dumps, DumpErrors uint64
	// LastDump is how long the last dump took, fd scan for new owners included.
	LastDump time.Duration
	// Destroys counts destroy notifications received.
	Destroys uint64
	// Overruns counts ENOBUFS on the destroy socket: each lost an unknown
	// number of notifications (and yielded a gap row).
	Overruns uint64
	// Lost counts notifications dropped because the queue between the reader
	// and the main loop was full (also a gap row).
	Lost uint64
	// Rows by event.
	Listens, Opens, Closes uint64
	// Vanished counts close rows of sockets that left the dumps without a
	// destroy notification.
	Vanished uint64
	// OwnerKnown and OwnerUnknown split the close rows by whether an owner pid
	// is known; OwnerFromListener counts those of OwnerKnown attributed
	// through their listener only.
	OwnerKnown, OwnerUnknown, OwnerFromListener uint64
	// OwnerFromTracepoint counts sockets whose owner came from
	// Options.ConnOwners (close rows and sockets first seen in a dump);
	// OwnerRecordsLost the tracepoint records the kernel dropped (each
	// batch also a gap row).
	OwnerFromTracepoint, OwnerRecordsLost uint64
	// Unbound counts destroy messages of sockets that were never bound (local
	// and remote port 0, e.g. address-family probes): no row is written.
	Unbound uint64
	// Untracked counts sockets not tracked because sockMaxTracked was reached.
	Untracked uint64
	// Tracked is the number of live sockets in the table now.
	Tracked int
	// FDScans counts /proc/*/fd scans; FDScanProcs the processes they visited.
	FDScans, FDScanProcs uint64
	// NetnsUncovered is the number of network namespaces other than the
	// collector's in use by processes at the last census whose sockets are
	// not recorded (all of them without AllNetns).
	NetnsUncovered int
	// NetnsCovered is the number of other network namespaces recorded by
	// child sources (AllNetns).
	NetnsCovered int
}
