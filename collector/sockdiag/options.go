package sockdiag

import (
	"log/slog"
	"time"

	"github.com/pofr/pofr/collector"
	"github.com/pofr/pofr/collector/sockowner"
	"github.com/pofr/pofr/internal/event"
)

// DefaultDumpInterval is the inet_diag dump cadence when
// Options.DumpInterval is zero.
const DefaultDumpInterval = time.Second

// dumpWait returns the wait before the next dump: the profile's interval
// after a dump that changed something, else twice the last wait, up to
// eight intervals and never beyond 10 s unless the interval itself is
// longer. An idle host's dumps are mostly the kernel walking empty hash
// buckets (docs/design.md, "Idle dumps"). A dump that changed something
// or followed destroy messages, or one Refresh asked for, brings the
// profile's interval back.
func dumpWait(interval, last time.Duration, quiet bool) time.Duration {
	if !quiet || last < interval {
		return interval
	}
	most := min(8*interval, max(interval, 10*time.Second))
	return min(2*last, most)
}

// Mode is how the socket source reads sockets (Stats.Mode, the segment
// manifest); "" until Run has decided.
type Mode string

// Socket source modes.
const (
	ModeNetlink Mode = "netlink" // inet_diag dumps + destroy notifications
	ModeProcNet Mode = "procnet" // /proc/net polling (fallback)
)

const (
	sockVanishGrace    = 2 * time.Second
	sockDrainDelay     = 50 * time.Millisecond // a burst of destroy messages gathers this long before it is read
	sockNetnsCensus    = 30 * time.Second
	sockNetnsCensusAll = 5 * time.Second // with AllNetns
	sockMaxTracked     = 1 << 20         // sockets tracked at once; beyond, new sockets are not tracked (counted)
	sockMaxPending     = 1 << 18         // destroy messages queued between reader and main loop
	sockDestroyRcvBuf  = 4 << 20
	// sockTCPWalkMax is the longest a source with ConnOwners goes without
	// a TCP dump (see table.planDump): the safety net for a transition the
	// tracepoint did not report. One walk a minute is ~0.05 ms/s here.
	sockTCPWalkMax = 60 * time.Second
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
	// means 4 MiB (1–4 MB lost nothing in the bursts measured on
	// the project VM, the default 208 KiB did). Tests make it
	// tiny to force ENOBUFS.
	DestroyRcvBuf int
	// ConnOwners, if set, names the owners of outbound connections from
	// kernel tracepoints (sockowner.Source): it is synced before each batch
	// of destroy notifications and each dump, and a connection it knows
	// needs no fd scan, even one that closed before any dump saw it.
	// Sources of other network namespaces share it.
	ConnOwners ConnOwners
	// Driver, if set, reads the destroy notifications at its own drain ticks for as long as
	// it drives it (the tracepoint process reader: no wakeup of this
	// source's own; docs/design.md, "One drain for every queue"). May be nil.
	Driver collector.QueueDriver
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
	// Changes returns a count that moves whenever a TCP socket may have
	// entered a state a dump reports (a connect, an accept, a listen, or a
	// record lost) in what Sync read, and settled, false while the newest
	// such record is too young for a dump to be sure to see its state. While
	// it stands still, TCP dumps are skipped (table.planDump).
	Changes() (n uint64, settled bool)
}

// Stats are the counters of a [Source] since it started.
type Stats struct {
	// Mode is ModeNetlink or ModeProcNet ("" before Run decided).
	Mode Mode
	// Dumps counts completed dumps (or /proc/net polls); DumpErrors failed ones.
	Dumps, DumpErrors uint64
	// TCPSkips counts the dumps of Dumps that left TCP out: ConnOwners
	// reported no TCP socket that could be new since the last TCP dump
	// (the kernel's walk of its TCP hash is most of a dump's cost).
	TCPSkips uint64
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
	// OwnerOtherNetns counts owners from Options.ConnOwners refused because
	// the process is in another network namespace (same tuple there).
	OwnerOtherNetns uint64
	// Unbound counts destroy messages of sockets that were never bound (local
	// and remote port 0, e.g. address-family probes): no row is written.
	Unbound uint64
	// Untracked counts sockets not tracked because sockMaxTracked was reached.
	Untracked uint64
	// Tracked is the number of live sockets in the table now.
	Tracked int
	// FDScans counts /proc/*/fd scans; FDScanProcs the processes they visited.
	FDScans, FDScanProcs uint64
	// FDScanGone counts sockets an fd scan did not look for because they
	// were gone or orphaned by the time of the scan (an exact sock_diag
	// request said so).
	FDScanGone uint64
	// NetnsUncovered is the number of network namespaces other than the
	// collector's in use by processes at the last census whose sockets are
	// not recorded (all of them without AllNetns).
	NetnsUncovered int
	// NetnsCovered is the number of other network namespaces recorded by
	// child sources (AllNetns).
	NetnsCovered int
}
