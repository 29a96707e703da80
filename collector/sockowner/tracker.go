package sockowner

import (
	"time"

	"github.com/pofr/pofr/internal/defaults"
)

// Key names a connection by what both a tracepoint sample and a sock_diag
// message carry: protocol, local port, remote address and port. The local
// address is not part of it (a UDP route sample has none while the socket is
// unbound) but is checked by [Tracker.Lookup] when both sides know it.
type Key struct {
	Proto        uint8
	LPort, RPort uint16
	RAddr        [16]byte
}

// KeyOf builds the key of a socket from its tuple (addresses of 4 or 16
// bytes, ports in host order) and returns its local address in the same
// 16-byte form.
func KeyOf(proto uint8, src []byte, sport uint16, dst []byte, dport uint16) (Key, [16]byte) {
	return Key{Proto: proto, LPort: sport, RPort: dport, RAddr: Mapped(dst)}, Mapped(src)
}

// Owner is the task that opened a connection: PID is its thread group id,
// TID the thread, both as the sample reports them.
type Owner struct {
	PID, TID int32
	// LAddr is the local address if known (zero otherwise).
	LAddr [16]byte
	// At is when the tracker learnt the owner (its caller's clock, ns).
	At int64
}

// Limits bound the memory of a [Tracker]; zero fields take the defaults.
type Limits struct {
	// MaxPending bounds the TCP connects waiting for their second record.
	MaxPending int
	// MaxOwners bounds the owners kept (the oldest go first).
	MaxOwners int
	// PendingTTL is how long a connect waits for its second record (a SYN
	// is retried for about 2 minutes by default).
	PendingTTL time.Duration
	// OwnerTTL is how long an owner is kept for a dump or a destroy
	// notification to look up.
	OwnerTTL time.Duration
}

// Default limits: 64 Ki entries of about 100 bytes each side.
const (
	DefaultMaxPending = 1 << 16
	DefaultMaxOwners  = 1 << 16
	DefaultPendingTTL = 3 * time.Minute
	DefaultOwnerTTL   = 30 * time.Second
	earlyTTL          = time.Second
)

// Stats count what the tracker saw and why records did not become owners.
type Stats struct {
	Connects, Established, Routes uint64 // records accepted
	Accepts, Listens              uint64 // accepted ends → ESTABLISHED, → LISTEN: no owner (see Appeared)
	Joined                        uint64 // TCP connects joined with their second record
	Reordered                     uint64 // of Joined, second record seen first (another CPU's ring)
	Orphans                       uint64 // second records with no connect within earlyTTL
	Replaced                      uint64 // connects overwritten by a newer one at the same skaddr
	Mismatched                    uint64 // second records whose destination differs from the connect's
	Dropped                       uint64 // pending records dropped by Lost
	Expired, Evicted              uint64 // entries removed by TTL or by the size bound
	Found, Misses                 uint64 // Lookup calls that found an owner / did not
	Pending, Owners               int    // entries held now
}

// pending is a connect waiting for its second record, or a second record
// that arrived before its connect.
type pending struct {
	pid, tid int32
	ts       int64 // sample time
	dst, src [16]byte
	dport    uint16
	sport    uint16
}

// aged is one insertion, for expiry in insertion order.
type aged[K comparable] struct {
	k  K
	at int64
}

// fifoMap is a map whose entries expire in insertion order; a re-inserted
// key gets a new age (its old queue slot is skipped when it comes up).
type fifoMap[K comparable, V any] struct {
	m     map[K]V
	ages  map[K]int64
	queue []aged[K]
	head  int
	max   int
}

func newFIFOMap[K comparable, V any](max int) *fifoMap[K, V] {
	return &fifoMap[K, V]{m: make(map[K]V), ages: make(map[K]int64), max: max}
}

// put inserts or replaces k; it reports how many entries the size bound
// evicted.
func (f *fifoMap[K, V]) put(k K, v V, at int64) (evicted int) {
	if _, ok := f.m[k]; !ok {
		for len(f.m) >= f.max {
			if !f.popOldest() {
				break
			}
			evicted++
		}
	}
	f.m[k] = v
	f.ages[k] = at
	f.queue = append(f.queue, aged[K]{k, at})
	f.compact()
	return evicted
}

func (f *fifoMap[K, V]) get(k K) (V, bool) { v, ok := f.m[k]; return v, ok }

func (f *fifoMap[K, V]) del(k K) {
	delete(f.m, k)
	delete(f.ages, k)
}

// popOldest removes the oldest live entry; false if there is none.
func (f *fifoMap[K, V]) popOldest() bool {
	for f.head < len(f.queue) {
		a := f.queue[f.head]
		f.head++
		if at, ok := f.ages[a.k]; ok && at == a.at {
			f.del(a.k)
			return true
		}
	}
	return false
}

// expire removes entries inserted before cutoff and returns how many.
func (f *fifoMap[K, V]) expire(cutoff int64) (n int) {
	for f.head < len(f.queue) && f.queue[f.head].at < cutoff {
		a := f.queue[f.head]
		f.head++
		if at, ok := f.ages[a.k]; ok && at == a.at {
			f.del(a.k)
			n++
		}
	}
	f.compact()
	return n
}

// compact drops the consumed part of the queue, and stale slots when they
// outnumber the live entries, so the queue stays O(entries).
func (f *fifoMap[K, V]) compact() {
	if f.head > 0 && f.head >= len(f.queue)/2 {
		f.queue = append(f.queue[:0], f.queue[f.head:]...)
		f.head = 0
	}
	if len(f.queue) > 64 && len(f.queue) > 4*len(f.m) {
		q := f.queue[:0]
		for _, a := range f.queue[f.head:] {
			if at, ok := f.ages[a.k]; ok && at == a.at {
				q = append(q, a)
			}
		}
		f.queue, f.head = q, 0
	}
}

func (f *fifoMap[K, V]) clear() int {
	n := len(f.m)
	clear(f.m)
	clear(f.ages)
	f.queue, f.head = f.queue[:0], 0
	return n
}

// Tracker joins tracepoint records into connection owners. It is not safe
// for concurrent use. Feed it the records in sample-time order as far as the
// rings allow (it tolerates a second record that arrives before its connect
// by up to earlyTTL), call [Tracker.Lost] when the rings lost records, and
// take owners with [Tracker.Lookup].
type Tracker struct {
	lim     Limits
	pending *fifoMap[uint64, pending] // skaddr → connect
	early   *fifoMap[uint64, pending] // skaddr → second record seen before its connect
	owners  *fifoMap[Key, Owner]
	st      Stats
	// newest is the sample time of the newest record counted by Appeared.
	newest int64
}

// NewTracker returns an empty tracker.
func NewTracker(lim Limits) *Tracker {
	defaults.Positive(&lim.MaxPending, DefaultMaxPending)
	defaults.Positive(&lim.MaxOwners, DefaultMaxOwners)
	defaults.Positive(&lim.PendingTTL, DefaultPendingTTL)
	defaults.Positive(&lim.OwnerTTL, DefaultOwnerTTL)
	return &Tracker{lim: lim, pending: newFIFOMap[uint64, pending](lim.MaxPending),
		early: newFIFOMap[uint64, pending](lim.MaxPending), owners: newFIFOMap[Key, Owner](lim.MaxOwners)}
}

// StateChange feeds one inet_sock_set_state record: ts is its sample time,
// pid and tid the task it fired in, now the caller's clock (ns).
func (t *Tracker) StateChange(now, ts int64, pid, tid int32, c *StateChange) {
	if c.Protocol != protoTCP {
		return
	}
	switch {
	case c.OldState == TCPSynRecv && c.NewState == TCPEstablished:
		t.st.Accepts++
		t.newest = max(t.newest, ts)
	case c.NewState == TCPListen:
		t.st.Listens++
		t.newest = max(t.newest, ts)
	case c.OldState == TCPClose && c.NewState == TCPSynSent:
		t.st.Connects++
		t.newest = max(t.newest, ts)
		if e, ok := t.early.get(c.Skaddr); ok {
			t.early.del(c.Skaddr)
			if e.ts >= ts && e.dport == c.DPort && e.dst == c.DAddr {
				// The second record came first (read from another CPU's ring).
				t.st.Reordered++
				t.join(now, pid, tid, e.src, e.sport, e.dst, e.dport)
				return
			}
			t.st.Orphans++
		}
		if _, ok := t.pending.get(c.Skaddr); ok {
			t.st.Replaced++ // its second record was lost
		}
		t.st.Evicted += uint64(t.pending.put(c.Skaddr, pending{pid: pid, tid: tid, ts: ts, dst: c.DAddr, dport: c.DPort}, now))
	case c.OldState == TCPSynSent:
		t.st.Established++
		t.newest = max(t.newest, ts)
		p, ok := t.pending.get(c.Skaddr)
		if !ok {
			// Keep it briefly: its connect may still be in another ring.
			t.st.Evicted += uint64(t.early.put(c.Skaddr, pending{ts: ts, dst: c.DAddr, dport: c.DPort,
				sport: c.SPort, src: c.SAddr}, now))
			return
		}
		t.pending.del(c.Skaddr)
		if p.dport != c.DPort || p.dst != c.DAddr {
			t.st.Mismatched++
			return
		}
		t.join(now, p.pid, p.tid, c.SAddr, c.SPort, c.DAddr, c.DPort)
	}
}

// join records the owner of a connection whose tuple is now complete.
func (t *Tracker) join(now int64, pid, tid int32, src [16]byte, sport uint16, dst [16]byte, dport uint16) {
	if sport == 0 {
		t.st.Mismatched++ // the connect failed before a port was chosen
		return
	}
	t.st.Joined++
	t.st.Evicted += uint64(t.owners.put(Key{protoTCP, sport, dport, dst}, Owner{PID: pid, TID: tid, LAddr: src, At: now}, now))
}

// Route feeds one fib or fib6 lookup record. Only UDP lookups made by a task
// (pid > 0) with both ports count; a later lookup for the same key replaces
// the owner (the newest sender wins).
func (t *Tracker) Route(now int64, pid, tid int32, r *Route) {
	if r.Proto != protoUDP || r.SPort == 0 || r.DPort == 0 || pid <= 0 {
		return
	}
	t.st.Routes++
	k := Key{protoUDP, r.SPort, r.DPort, r.DAddr}
	t.st.Evicted += uint64(t.owners.put(k, Owner{PID: pid, TID: tid, LAddr: r.SAddr, At: now}, now))
}

// Lookup returns the owner of the connection with key k. laddr is the
// socket's local address as sock_diag reports it (16-byte form; zero if
// unknown): an owner recorded with a different non-zero local address is not
// this socket's.
//
// The owner stays until a newer record for the same key replaces it or it
// expires: sockets that reuse a key one after the other (a resolver's
// connected UDP socket that gets the same ephemeral port again) each find
// their own owner as long as the next one's record is not in yet when the
// previous one is looked up, and the same owner otherwise, which is right
// when one process made both (the usual case). A different process reusing
// the key within that window is the one case that can be misattributed.
func (t *Tracker) Lookup(k Key, laddr [16]byte) (Owner, bool) {
	o, ok := t.owners.get(k)
	if !ok || (o.LAddr != [16]byte{} && laddr != [16]byte{} && !sameUnspec(o.LAddr, laddr)) {
		t.st.Misses++
		return Owner{}, false
	}
	t.st.Found++
	return o, true
}

// sameUnspec compares two local addresses, an unspecified one (0.0.0.0 or
// ::, as a route lookup of an unbound socket reports) matching any.
func sameUnspec(a, b [16]byte) bool {
	return a == b || a == unspec4 || b == unspec4 || a == [16]byte{} || b == [16]byte{}
}

var unspec4 = Mapped([]byte{0, 0, 0, 0})

// Lost tells the tracker that the rings dropped records: pending connects
// could now pair with the wrong second record, so they are dropped.
func (t *Tracker) Lost() {
	t.st.Dropped += uint64(t.pending.clear() + t.early.clear())
}

// Expire drops entries older than their TTL (now is the caller's clock).
func (t *Tracker) Expire(now int64) {
	t.st.Expired += uint64(t.pending.expire(now - int64(t.lim.PendingTTL)))
	t.st.Orphans += uint64(t.early.expire(now - int64(earlyTTL)))
	t.st.Expired += uint64(t.owners.expire(now - int64(t.lim.OwnerTTL)))
}

// Appeared returns how many TCP records the tracker was fed that put a
// socket in a state an inet_diag dump reports, from one it does not or
// towards a new one: connects (CLOSE→SYN_SENT), their outcome (out of
// SYN_SENT), accepted ends (SYN_RECV→ESTABLISHED) and listeners (→LISTEN);
// and newest, the sample time of the newest of them (0: none). While the
// count stands still, a TCP dump can find no socket it has not seen
// (docs/design.md, "TCP walks only after a transition").
func (t *Tracker) Appeared() (n uint64, newest int64) {
	return t.st.Connects + t.st.Established + t.st.Accepts + t.st.Listens, t.newest
}

// Stats returns the counters and sizes.
func (t *Tracker) Stats() Stats {
	s := t.st
	s.Pending, s.Owners = len(t.pending.m)+len(t.early.m), len(t.owners.m)
	return s
}
