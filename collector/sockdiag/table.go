package sockdiag

import (
	"time"

	"github.com/pofr/pofr/collector"
	"github.com/pofr/pofr/collector/sockowner"
	"github.com/pofr/pofr/internal/event"
)

// table is the socket table of one network namespace: the live sockets,
// keyed by cookie (by inode in /proc/net mode), and an index of listeners.
// It diffs each dump against what it holds and closes sockets on destroy
// notifications, writing the rows to sink. It touches neither sockets nor
// /proc: owners come from procs, start, findOwners and conns, so tests
// drive it with decoded messages alone. One goroutine owns it.
type table struct {
	sink event.Sink
	// destroysSeen is stats.Destroys at the end of the last dump: a dump
	// after destroy messages is not quiet (see applyDump).
	destroysSeen uint64
	netns        event.Opt[uint64]
	procnet      bool // /proc/net mode: keys are inodes, rows are flagged fallback
	selfPID      int32
	// procs and start name the life of an owner pid (start reads /proc when
	// procs does not know it); either may be nil.
	procs collector.Processes
	start func(pid int32) (int64, error)
	// starts caches what start read during one dump or one batch of
	// destroy messages (a pid is not reused that fast), so that a process
	// making many connections costs one /proc read per batch.
	starts map[int32]int64
	// findOwners looks for the processes holding the wanted inodes (the fd
	// scan), calls found for each, and returns how many processes it
	// visited; nil finds none.
	findOwners func(want map[uint32]*sockEntry, found func(*sockEntry, int32)) int
	// held reports whether a wanted socket still exists with an inode
	// (Source.sockHeld); those that do not are not looked for. nil: all are.
	held  func(m *inetDiag) bool
	conns ConnOwners // may be nil
	// netnsOf names the network namespace (nsfs inode) of a pid; nil: not
	// checked. ConnOwners are keyed by tuple alone and shared by the sources
	// of every namespace, so an owner whose process is in another namespace
	// than this table's is refused (two namespaces can use the same tuple at
	// once). nsOf caches it for sockNetnsTTL, across dumps and destroy
	// batches: the readlink of /proc/PID/ns/net was a tenth of the socket
	// source's CPU per connection when it was read once per batch (see
	// docs/design.md); nsSince is when the cache was last emptied.
	netnsOf func(pid int32) (uint64, error)
	nsOf    map[int32]uint64
	nsSince int64

	tracked   map[uint64]*sockEntry
	listeners map[sockListenKey][]*sockEntry
	gen       uint64 // dumps applied
	want      map[uint32]*sockEntry
	fresh     []*sockEntry
	// lastOwnerSync is when conns was last synced (gap rows).
	lastOwnerSync int64
	// TCP dumps are left out while no TCP socket can be new (planDump):
	// tcpWalked is when the last dump with TCP was applied (0: none yet),
	// tcpSeen the ConnOwners change count read before it, and tcpAgain
	// that the next dump must ask for TCP whatever the count. planN and
	// planSettled are what planDump read for the dump being taken.
	tcpWalked   int64
	tcpSeen     uint64
	tcpAgain    bool
	planN       uint64
	planSettled bool

	// stats are the table's counters (Dumps, rows, owners, Tracked …);
	// the source publishes them.
	stats Stats
}

// sockEntry is one live socket in the table, keyed by cookie (netlink mode) or
// inode (procnet mode).
type sockEntry struct {
	m          inetDiag // last sighting
	firstTS    int64
	dir        string
	pid        int32
	start      int64
	owner      bool // pid/start known
	self       bool
	ownerTried bool // an fd scan looked for the inode and did not find it
	// near: an fd scan looks for the inode only in the processes likely to
	// hold it (see sockFDScanner.find), because it has another owner to
	// fall back on (an inbound connection whose listener has one).
	near bool
	// hint: for a near socket, its listener's owner, which the scan visits
	// first (the process that accepts is usually the one that listens).
	hint    int32
	gen     uint64 // last dump that saw it
	tpPID   int32  // owner pid from ConnOwners whose process was gone (no proc_start)
	missing int64  // when it was first missing from a dump; 0 if present
}

// sockListenKey indexes listeners by protocol and local port.
type sockListenKey struct {
	proto uint8
	port  uint16
}

// sockDestroy is one item of the reader → main loop queue: a decoded destroy
// message, or an overrun marker.
type sockDestroy struct {
	ts      int64
	msg     inetDiag
	overrun bool  // ENOBUFS: msg is empty, since is the previous receive time
	since   int64 // overrun only
	dropped int64 // overrun only: messages dropped by a full queue
}

func newTable(sink event.Sink) *table {
	return &table{
		sink:      sink,
		tracked:   make(map[uint64]*sockEntry),
		listeners: make(map[sockListenKey][]*sockEntry),
		want:      make(map[uint32]*sockEntry),
	}
}

// planDump tells whether the next dump must ask for TCP sockets. The
// kernel walks its whole TCP hash for that, which is most of a dump's cost
// whatever the number of sockets (docs/design.md, "TCP walks only after a
// transition"). TCP is left out only with ConnOwners, whose tracepoint
// reports every TCP socket that enters a state a dump reports (a connect,
// an accepted end, a listener; closes come as destroy messages), and only
// if since the last TCP dump their change count stood still, that dump
// left nothing to look at again (tcpAgain), and it is less than
// sockTCPWalkMax old; force (Refresh, the first dump) asks for TCP. It
// syncs ConnOwners first, so that the count covers what the rings hold.
func (t *table) planDump(now int64, force bool) (tcp bool) {
	if t.procnet || t.conns == nil {
		return true
	}
	t.syncOwners(now)
	t.planN, t.planSettled = t.conns.Changes()
	return force || t.tcpWalked == 0 || t.tcpAgain || t.planN != t.tcpSeen ||
		now-t.tcpWalked >= int64(sockTCPWalkMax) || now < t.tcpWalked
}

// applyDump diffs one dump, taken at now, with the table and writes listen,
// open and vanished close rows. t0 is when the dump began (zero: not timed).
// tcp tells whether the dump asked for TCP sockets (see planDump): if not,
// the TCP sockets of the table are not missing from it.
// It reports whether the dump changed nothing: no new socket, none closed,
// none missing and waiting out its grace.
func (t *table) applyDump(now int64, dump []inetDiag, t0 time.Time, tcp bool) (quiet bool) {
	clear(t.starts)
	t.ageNetns(now)
	t.gen++
	clear(t.want)
	t.fresh = t.fresh[:0]
	t.syncOwners(now)
	var untracked, queued uint64
	var own ownerTally
	for i := range dump {
		m := &dump[i]
		if m.SrcPort == 0 && m.DstPort == 0 {
			continue // never bound
		}
		key := m.Cookie
		if t.procnet {
			key = uint64(m.Inode)
		}
		e := t.tracked[key]
		if e == nil {
			if len(t.tracked) >= sockMaxTracked {
				untracked++
				continue
			}
			e = &sockEntry{m: *m, firstTS: now}
			t.tracked[key] = e
			t.fresh = append(t.fresh, e)
			if m.Protocol == sdIPProtoTCP && m.State == sdTCPEstablished && m.Inode == 0 {
				queued++ // in an accept queue: its inode (owner) comes with accept(2), which no tracepoint tells
			}
			if isListener(m) {
				k := sockListenKey{m.Protocol, m.SrcPort}
				t.listeners[k] = append(t.listeners[k], e)
			}
		} else {
			inode := e.m.Inode
			e.m = *m
			if e.m.Inode == 0 {
				e.m.Inode = inode
			}
			e.missing = 0
		}
		e.gen = t.gen
		if !e.owner && t.takeOwner(e) {
			own.fromTP++
		}
		if !e.owner && !e.ownerTried && m.Inode != 0 {
			t.want[m.Inode] = e
		}
	}
	if t.held != nil && len(t.want) <= sockHeldChecks {
		for ino, e := range t.want {
			if !t.held(&e.m) {
				e.ownerTried = true
				delete(t.want, ino)
				t.stats.FDScanGone++
			}
		}
	}
	if len(t.want) > 0 {
		for _, e := range t.want {
			e.near, e.hint = false, 0
			if t.direction(&e.m) == event.DirIn {
				if l := t.listenerOf(&e.m); l != nil {
					e.near, e.hint = true, l.pid
				}
			}
		}
		procs := 0
		if t.findOwners != nil {
			procs = t.findOwners(t.want, t.resolve)
		}
		for _, e := range t.want {
			e.ownerTried = true // not found: the owner is gone or holds it outside /proc
		}
		t.stats.FDScans++
		t.stats.FDScanProcs += uint64(procs)
	}
	var listens, opens uint64
	for _, e := range t.fresh {
		r := t.row(e, now)
		if isListener(&e.m) {
			r.Event = event.SockListen
			listens++
		} else {
			r.Event = event.SockOpen
			opens++
		}
		t.sink.AppendSock(&r)
	}
	var vanished, pending, pendingTCP uint64
	for key, e := range t.tracked {
		if e.gen == t.gen || !tcp && e.m.Protocol == sdIPProtoTCP {
			continue
		}
		if !t.procnet {
			if e.missing == 0 {
				e.missing = now
			}
			if time.Duration(now-e.missing) < sockVanishGrace {
				pending++
				if e.m.Protocol == sdIPProtoTCP {
					pendingTCP++
				}
				continue
			}
		}
		r := t.row(e, now)
		r.Event = event.SockClose
		r.Flags |= event.SockFlagVanished
		if !e.owner && e.tpPID == 0 && t.byListener(&r, &e.m) {
			own.fromListener++
		}
		own.closed(&r)
		t.sink.AppendSock(&r)
		t.forget(key, e)
		vanished++
	}
	var took time.Duration
	if !t0.IsZero() {
		took = time.Since(t0)
	}
	if tcp {
		t.tcpWalked, t.tcpSeen = now, t.planN
		// Walk again next time for what this walk could not settle: a
		// record too young for its state to be sure in it, a socket still
		// in its grace, an accepted socket without its inode yet.
		t.tcpAgain = !t.planSettled || pendingTCP > 0 || queued > 0
	}
	st := &t.stats
	st.Dumps++
	if !tcp {
		st.TCPSkips++
	}
	st.Listens += listens
	st.Opens += opens
	st.Closes += vanished
	st.Vanished += vanished
	own.addTo(st)
	st.Untracked += untracked
	st.Tracked = len(t.tracked)
	if took > 0 {
		st.LastDump = took
	}
	quiet = len(t.fresh) == 0 && vanished == 0 && pending == 0 && st.Destroys == t.destroysSeen
	t.destroysSeen = st.Destroys
	return quiet
}

// syncOwners brings Options.ConnOwners up to date before a dump or a batch
// of destroy notifications is applied; a loss of tracepoint records becomes
// a gap row.
func (t *table) syncOwners(now int64) {
	if t.conns == nil {
		return
	}
	if lost := t.conns.Sync(); lost > 0 {
		t.sink.AppendGap(&event.Gap{FromTS: t.lastOwnerSync, ToTS: now, Source: event.SourceSock,
			Lost: event.Some(int64(lost)), Reason: "connection owner tracepoint records lost (ring full)"})
		t.stats.OwnerRecordsLost += lost
	}
	t.lastOwnerSync = now
}

// connOwner looks up the owner of socket m in Options.ConnOwners.
func (t *table) connOwner(m *inetDiag) (sockowner.Owner, bool) {
	if t.conns == nil || m.DstPort == 0 || m.SrcPort == 0 {
		return sockowner.Owner{}, false
	}
	n := m.addrLen()
	k, laddr := sockowner.KeyOf(m.Protocol, m.Src[:n], m.SrcPort, m.Dst[:n], m.DstPort)
	o, ok := t.conns.Lookup(k, laddr)
	if ok && !t.inNetns(o.PID) {
		t.stats.OwnerOtherNetns++
		return sockowner.Owner{}, false
	}
	return o, ok
}

// inNetns reports whether pid may own a socket of this table's network
// namespace: false only if its namespace is known and another one. A pid
// whose /proc entry is gone is given the benefit of the doubt (a
// short-lived client).
func (t *table) inNetns(pid int32) bool {
	if t.netnsOf == nil || !t.netns.Valid {
		return true
	}
	ns, ok := t.nsOf[pid]
	if !ok {
		var err error
		if ns, err = t.netnsOf(pid); err != nil {
			return true
		}
		if t.nsOf == nil {
			t.nsOf = make(map[int32]uint64)
		}
		t.nsOf[pid] = ns
	}
	return ns == t.netns.V
}

// sockHeldChecks is the most wanted sockets a dump checks one by one before
// an fd scan (each check is a request and a reply); with more, the scan
// looks for all of them.
const sockHeldChecks = 64

// sockNetnsTTL is how long a pid's network namespace, once read, is taken
// as known. A process that changes namespace (setns, unshare) is seen in its
// new one at most this late; what the check guards against, two namespaces
// using one tuple at the same moment, is rarer still.
const sockNetnsTTL = time.Second

// ageNetns empties the namespace cache if it is sockNetnsTTL old at now.
func (t *table) ageNetns(now int64) {
	if now-t.nsSince >= int64(sockNetnsTTL) || now < t.nsSince {
		clear(t.nsOf)
		t.nsSince = now
	}
}

// takeOwner gives a tracked socket its owner from Options.ConnOwners and
// reports whether it did. A pid whose process is already gone gives no
// owner here (its life cannot be named); the fd scan and the close row
// still try.
func (t *table) takeOwner(e *sockEntry) bool {
	if isListener(&e.m) {
		return false
	}
	o, ok := t.connOwner(&e.m)
	if !ok {
		return false
	}
	start, self, ok := t.owner(o.PID)
	if !ok {
		e.tpPID = o.PID
		return false
	}
	e.pid, e.start, e.self, e.owner = o.PID, start, self, true
	return true
}

// ownerRow fills the owner of a close row for a socket no dump saw, from
// Options.ConnOwners, and reports whether it did. When the process is gone
// already the row gets the pid without proc_start.
func (t *table) ownerRow(r *event.Sock, m *inetDiag) bool {
	o, ok := t.connOwner(m)
	if !ok {
		return false
	}
	r.PID = event.Some(o.PID)
	r.Flags &^= event.SockFlagOwnerUnknown
	if start, self, ok := t.owner(o.PID); ok {
		r.ProcStart = event.Some(start)
		if self {
			r.Flags |= event.SockFlagSelf
		}
	}
	return true
}

// resolve is called by the fd scanner for each wanted inode it finds.
func (t *table) resolve(e *sockEntry, pid int32) {
	start, self, ok := t.owner(pid)
	if !ok {
		return
	}
	e.pid, e.start, e.self, e.owner = pid, start, self, true
}

// owner returns the proc_start and self flag of pid.
func (t *table) owner(pid int32) (start int64, self, ok bool) {
	if t.procs != nil {
		if pi, ok := t.procs.Lookup(pid); ok {
			return pi.Start, pi.Self || pid == t.selfPID, true
		}
	}
	if t.start == nil {
		return 0, false, false
	}
	start, ok = t.starts[pid]
	if !ok {
		var err error
		if start, err = t.start(pid); err != nil {
			return 0, false, false
		}
		if t.starts == nil {
			t.starts = make(map[int32]int64)
		}
		t.starts[pid] = start
	}
	return start, t.selfPID != 0 && pid == t.selfPID, true
}

// forget removes a socket from the table.
func (t *table) forget(key uint64, e *sockEntry) {
	delete(t.tracked, key)
	if isListener(&e.m) {
		k := sockListenKey{e.m.Protocol, e.m.SrcPort}
		l := t.listeners[k]
		for i, x := range l {
			if x == e {
				l = append(l[:i], l[i+1:]...)
				break
			}
		}
		if len(l) == 0 {
			delete(t.listeners, k)
		} else {
			t.listeners[k] = l
		}
	}
}

// isListener reports whether m is a TCP listener or an unconnected UDP socket.
func isListener(m *inetDiag) bool {
	if m.Protocol == sdIPProtoUDP {
		return m.DstPort == 0
	}
	return m.State == sdTCPListen
}

// direction tells a socket's direction from the listener table.
func (t *table) direction(m *inetDiag) string {
	if m.DstPort == 0 && (m.Protocol == sdIPProtoUDP || m.State == sdTCPListen || m.State == sdTCPClose) {
		return event.DirListen
	}
	if _, ok := t.listeners[sockListenKey{m.Protocol, m.SrcPort}]; ok {
		return event.DirIn
	}
	return event.DirOut
}

// listenerOf returns the listener that accepted m, if the table has one with
// an owner: same protocol and local port, preferring the same family and
// local address.
func (t *table) listenerOf(m *inetDiag) *sockEntry {
	var best *sockEntry
	for _, l := range t.listeners[sockListenKey{m.Protocol, m.SrcPort}] {
		if !l.owner {
			continue
		}
		if l.m.Family == m.Family && (l.m.Src == m.Src || l.m.Src == [16]byte{}) {
			return l
		}
		if best == nil {
			best = l
		}
	}
	return best
}

// byListener attributes an incoming connection without a known owner to the
// owner of the listener it was accepted on, and reports whether it did. This
// covers accepted sockets that closed before a dump saw them, and those that
// a dump saw still in the accept queue (inode 0, no file yet).
func (t *table) byListener(r *event.Sock, m *inetDiag) bool {
	if r.Direction != event.DirIn {
		return false
	}
	l := t.listenerOf(m)
	if l == nil {
		return false
	}
	r.PID, r.ProcStart = event.Some(l.pid), event.Some(l.start)
	r.Flags &^= event.SockFlagOwnerUnknown
	r.Flags |= event.SockFlagOwnerFromListener
	if l.self {
		r.Flags |= event.SockFlagSelf
	}
	return true
}

// row builds the common part of a row for a tracked socket.
func (t *table) row(e *sockEntry, ts int64) event.Sock {
	if e.dir == "" {
		e.dir = t.direction(&e.m)
	}
	r := sockBaseRow(&e.m, ts)
	r.Direction = e.dir
	r.UID = e.m.UID
	r.Netns = t.netns
	if e.m.Inode != 0 {
		r.Inode = event.Some(uint64(e.m.Inode))
	}
	r.FirstTS = event.Some(e.firstTS)
	if e.owner {
		r.PID, r.ProcStart = event.Some(e.pid), event.Some(e.start)
		if e.self {
			r.Flags |= event.SockFlagSelf
		}
	} else if e.tpPID != 0 {
		r.PID = event.Some(e.tpPID) // from ConnOwners; the process was gone
	} else {
		r.Flags |= event.SockFlagOwnerUnknown
	}
	if t.procnet {
		r.Flags |= event.SockFlagFallback
	}
	return r
}

// sockBaseRow fills the columns that come from the message alone.
func sockBaseRow(m *inetDiag, ts int64) event.Sock {
	n := m.addrLen()
	r := event.Sock{
		TS:         ts,
		Proto:      "tcp",
		Family:     4,
		State:      sockStateName(m.State),
		LocalAddr:  append([]byte(nil), m.Src[:n]...),
		LocalPort:  m.SrcPort,
		RemoteAddr: append([]byte(nil), m.Dst[:n]...),
		RemotePort: m.DstPort,
		Cookie:     m.Cookie,
		UID:        event.NoID,
	}
	if m.Family == sdAFInet6 {
		r.Family = 6
	}
	if m.Protocol == sdIPProtoUDP {
		r.Proto = "udp"
		if m.DstPort != 0 && m.State == sdTCPEstablished {
			r.State = "ESTABLISHED"
		}
	}
	if m.HasInfo && !(m.State == sdTCPListen || m.Protocol == sdIPProtoTCP && m.DstPort == 0) {
		// A socket that never connected has no meaningful counters.
		r.BytesRecv = event.Some(m.BytesReceived)
		if m.HasBytesSent {
			r.BytesSent = event.Some(m.BytesSent)
		}
	}
	return r
}

// applyDestroys writes the close rows of a batch of destroy notifications
// (and the gap rows of its overrun markers), read up to now.
func (t *table) applyDestroys(q []sockDestroy, now int64) {
	clear(t.starts)
	t.ageNetns(now)
	t.syncOwners(now)
	var destroys, unbound uint64
	var own ownerTally
	for i := range q {
		d := &q[i]
		if d.overrun {
			// Sockets whose destroy message was lost are closed by a walk
			// only (vanished).
			t.tcpAgain = true
			reason := "ENOBUFS on sock_diag destroy socket"
			lost := event.Opt[int64]{}
			if d.dropped > 0 {
				reason = "sock_diag destroy queue full"
				lost = event.Some(d.dropped)
			}
			t.sink.AppendGap(&event.Gap{FromTS: d.since, ToTS: d.ts, Source: event.SourceSock, Lost: lost, Reason: reason})
			continue
		}
		destroys++
		m := &d.msg
		e := t.tracked[m.Cookie]
		if e == nil && m.SrcPort == 0 && m.DstPort == 0 {
			unbound++
			continue
		}
		var r event.Sock
		if e != nil {
			// Final state, counters and tuple from the destroy message; the
			// rest from the table.
			if !e.owner && t.takeOwner(e) {
				own.fromTP++
			}
			r = t.row(e, d.ts)
			fin := sockBaseRow(m, d.ts)
			r.State, r.BytesSent, r.BytesRecv = fin.State, fin.BytesSent, fin.BytesRecv
			if !r.BytesSent.Valid && e.m.HasBytesSent {
				r.BytesSent = event.Some(e.m.BytesSent)
			}
			if !r.BytesRecv.Valid && e.m.HasInfo {
				r.BytesRecv = event.Some(e.m.BytesReceived)
			}
			if !e.owner && e.tpPID == 0 && t.byListener(&r, &e.m) {
				own.fromListener++
			}
			t.forget(m.Cookie, e)
		} else {
			r = sockBaseRow(m, d.ts)
			r.Netns = t.netns
			r.Direction = t.direction(m)
			r.Flags |= event.SockFlagOwnerUnknown
			if t.ownerRow(&r, m) {
				own.fromTP++
			} else if t.byListener(&r, m) {
				own.fromListener++
			}
		}
		r.Event = event.SockClose
		r.Flags |= event.SockFlagFromDestroy
		own.closed(&r)
		t.sink.AppendSock(&r)
	}
	st := &t.stats
	st.Destroys += destroys
	st.Closes += own.known + own.unknown
	own.addTo(st)
	st.Unbound += unbound
	st.Tracked = len(t.tracked)
}

// ownerTally counts how the close rows of one dump or destroy batch got
// their owner, for Stats.Owner*.
type ownerTally struct{ known, unknown, fromListener, fromTP uint64 }

// closed counts close row r as with or without an owner.
func (o *ownerTally) closed(r *event.Sock) {
	if r.PID.Valid {
		o.known++
	} else {
		o.unknown++
	}
}

// addTo adds the tally to st.
func (o *ownerTally) addTo(st *Stats) {
	st.OwnerKnown += o.known
	st.OwnerUnknown += o.unknown
	st.OwnerFromListener += o.fromListener
	st.OwnerFromTracepoint += o.fromTP
}
