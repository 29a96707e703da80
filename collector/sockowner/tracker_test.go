package sockowner

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	lo     = Mapped([]byte{127, 0, 0, 1})
	remote = Mapped([]byte{10, 1, 2, 3})
)

// connect is the CLOSE→SYN_SENT record of connect(2): source port 0.
func connect(sk uint64, dst [16]byte, dport uint16) *StateChange {
	return &StateChange{Skaddr: sk, OldState: TCPClose, NewState: TCPSynSent, Family: afInet, Protocol: protoTCP,
		DAddr: dst, DPort: dport}
}

// established is the SYN_SENT→ESTABLISHED record with the full tuple.
func established(sk uint64, src [16]byte, sport uint16, dst [16]byte, dport uint16) *StateChange {
	return &StateChange{Skaddr: sk, OldState: TCPSynSent, NewState: TCPEstablished, Family: afInet, Protocol: protoTCP,
		SAddr: src, SPort: sport, DAddr: dst, DPort: dport}
}

func key(sport uint16, dst [16]byte, dport uint16) Key {
	return Key{Proto: protoTCP, LPort: sport, RPort: dport, RAddr: dst}
}

// wantNoOwner fails the test with why if tr has an owner for k at the local
// address laddr.
func wantNoOwner(t *testing.T, tr *Tracker, k Key, laddr [16]byte, why string) {
	t.Helper()
	if _, ok := tr.Lookup(k, laddr); ok {
		t.Error(why)
	}
}

func TestTrackerJoinsOnSkaddr(t *testing.T) {
	tr := NewTracker(Limits{})
	tr.StateChange(1, 10, 100, 101, connect(0xa0, remote, 80))
	// Another connection's records interleave.
	tr.StateChange(2, 11, 200, 200, connect(0xb0, remote, 80))
	tr.StateChange(3, 12, 0, 0, established(0xa0, lo, 40000, remote, 80)) // softirq: pid 0
	tr.StateChange(4, 13, 7, 7, established(0xb0, lo, 40001, remote, 80))

	o, ok := tr.Lookup(key(40000, remote, 80), lo)
	if !ok {
		t.Fatal("no owner for the first connection")
	}
	if diff := cmp.Diff(Owner{PID: 100, TID: 101, LAddr: lo, At: 3}, o); diff != "" {
		t.Errorf("owner (-want +got):\n%s", diff)
	}
	if o, ok := tr.Lookup(key(40001, remote, 80), lo); !ok || o.PID != 200 {
		t.Errorf("second connection: got %+v %v, want pid 200", o, ok)
	}
	// A socket that reuses the key before a newer record: the same owner.
	if o, ok := tr.Lookup(key(40001, remote, 80), lo); !ok || o.PID != 200 {
		t.Errorf("second lookup: got %+v %v, want pid 200", o, ok)
	}
	// A newer connection with the same key replaces it.
	tr.StateChange(5, 14, 300, 300, connect(0xc0, remote, 80))
	tr.StateChange(6, 15, 0, 0, established(0xc0, lo, 40001, remote, 80))
	if o, ok := tr.Lookup(key(40001, remote, 80), lo); !ok || o.PID != 300 {
		t.Errorf("after reuse: got %+v %v, want pid 300", o, ok)
	}
	wantNoOwner(t, tr, key(40002, remote, 80), lo, "found an owner for an unknown connection")
	st := tr.Stats()
	if st.Joined != 3 || st.Found != 4 || st.Misses != 1 || st.Pending != 0 || st.Owners != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestTrackerFailedConnect(t *testing.T) {
	tr := NewTracker(Limits{})
	tr.StateChange(1, 10, 100, 100, connect(0xa0, remote, 81))
	c := established(0xa0, lo, 40002, remote, 81)
	c.NewState = TCPClose // refused: SYN_SENT→CLOSE, tuple complete
	tr.StateChange(2, 11, 0, 0, c)
	if o, ok := tr.Lookup(key(40002, remote, 81), [16]byte{}); !ok || o.PID != 100 {
		t.Errorf("refused connection: got %+v %v, want pid 100", o, ok)
	}
}

func TestTrackerReordered(t *testing.T) {
	// The second record was drained from another CPU's ring before the connect.
	tr := NewTracker(Limits{})
	tr.StateChange(1, 20, 0, 0, established(0xa0, lo, 40003, remote, 80))
	tr.StateChange(1, 10, 100, 100, connect(0xa0, remote, 80))
	if o, ok := tr.Lookup(key(40003, remote, 80), lo); !ok || o.PID != 100 {
		t.Errorf("got %+v %v, want pid 100", o, ok)
	}
	if st := tr.Stats(); st.Reordered != 1 || st.Pending != 0 {
		t.Errorf("stats %+v", st)
	}
	// An early record whose connect came later in time belongs to an older
	// socket at the same address: no join.
	tr.StateChange(2, 30, 0, 0, established(0xc0, lo, 40004, remote, 80))
	tr.StateChange(2, 40, 300, 300, connect(0xc0, remote, 80))
	wantNoOwner(t, tr, key(40004, remote, 80), lo, "joined a connect with an older second record")
	if st := tr.Stats(); st.Orphans != 1 || st.Pending != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestTrackerSkaddrReuse(t *testing.T) {
	tr := NewTracker(Limits{})
	// The first socket's second record was lost; the address is reused.
	tr.StateChange(1, 10, 100, 100, connect(0xa0, remote, 80))
	tr.StateChange(2, 20, 200, 200, connect(0xa0, remote, 443))
	tr.StateChange(3, 30, 0, 0, established(0xa0, lo, 40005, remote, 443))
	if o, ok := tr.Lookup(key(40005, remote, 443), lo); !ok || o.PID != 200 {
		t.Errorf("got %+v %v, want the newer connect's pid 200", o, ok)
	}
	if st := tr.Stats(); st.Replaced != 1 {
		t.Errorf("replaced %d, want 1", st.Replaced)
	}
	// A second record whose destination differs from the pending connect
	// (its own connect was lost): no owner rather than a wrong one.
	tr.StateChange(4, 40, 300, 300, connect(0xb0, remote, 80))
	tr.StateChange(5, 50, 0, 0, established(0xb0, lo, 40006, remote, 8080))
	wantNoOwner(t, tr, key(40006, remote, 8080), lo, "attributed across a destination mismatch")
	if st := tr.Stats(); st.Mismatched != 1 {
		t.Errorf("mismatched %d, want 1", st.Mismatched)
	}
}

func TestTrackerLost(t *testing.T) {
	tr := NewTracker(Limits{})
	tr.StateChange(1, 10, 100, 100, connect(0xa0, remote, 80))
	tr.Lost()
	// After a loss the pending connect may not be this socket's.
	tr.StateChange(2, 20, 0, 0, established(0xa0, lo, 40007, remote, 80))
	wantNoOwner(t, tr, key(40007, remote, 80), lo, "joined across a loss")
	if st := tr.Stats(); st.Dropped != 1 {
		t.Errorf("dropped %d, want 1", st.Dropped)
	}
}

func TestTrackerLocalAddress(t *testing.T) {
	tr := NewTracker(Limits{})
	tr.StateChange(1, 10, 100, 100, connect(0xa0, remote, 80))
	tr.StateChange(2, 20, 0, 0, established(0xa0, lo, 40008, remote, 80))
	other := Mapped([]byte{127, 0, 0, 2})
	wantNoOwner(t, tr, key(40008, remote, 80), other, "taken for another local address")
	if _, ok := tr.Lookup(key(40008, remote, 80), lo); !ok {
		t.Error("not taken for its own local address")
	}
}

func TestTrackerRouteUDP(t *testing.T) {
	tr := NewTracker(Limits{})
	dns := Mapped([]byte{10, 0, 0, 53})
	unbound := Mapped([]byte{0, 0, 0, 0})
	tr.Route(1, 500, 501, &Route{Proto: protoUDP, SPort: 50000, DPort: 53, SAddr: unbound, DAddr: dns})
	// Ignored: TCP, no source port, a kernel context.
	tr.Route(1, 500, 500, &Route{Proto: protoTCP, SPort: 50001, DPort: 53, DAddr: dns})
	tr.Route(1, 500, 500, &Route{Proto: protoUDP, SPort: 0, DPort: 53, DAddr: dns})
	tr.Route(1, 0, 0, &Route{Proto: protoUDP, SPort: 50002, DPort: 53, DAddr: dns})
	k := Key{Proto: protoUDP, LPort: 50000, RPort: 53, RAddr: dns}
	// sock_diag reports the address the kernel chose: the unbound lookup matches it.
	if o, ok := tr.Lookup(k, Mapped([]byte{10, 0, 0, 7})); !ok || o.PID != 500 || o.TID != 501 {
		t.Errorf("got %+v %v, want pid 500", o, ok)
	}
	if st := tr.Stats(); st.Routes != 1 || st.Owners != 1 {
		t.Errorf("stats %+v", st)
	}
	// IPv6 with the same key shape.
	v6 := [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1}
	tr.Route(2, 600, 600, &Route{Proto: protoUDP, SPort: 50003, DPort: 53, DAddr: v6})
	k6, laddr := KeyOf(protoUDP, (&[16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 2})[:], 50003, v6[:], 53)
	if o, ok := tr.Lookup(k6, laddr); !ok || o.PID != 600 {
		t.Errorf("v6: got %+v %v, want pid 600", o, ok)
	}
}

func TestTrackerExpiry(t *testing.T) {
	tr := NewTracker(Limits{PendingTTL: time.Minute, OwnerTTL: 10 * time.Second})
	s := int64(time.Second)
	tr.StateChange(0, 1, 100, 100, connect(0xa0, remote, 80))
	tr.StateChange(0, 2, 100, 100, connect(0xb0, remote, 80))
	tr.StateChange(1*s, 3, 0, 0, established(0xb0, lo, 40009, remote, 80))
	tr.StateChange(1*s, 4, 0, 0, established(0xee, lo, 40010, remote, 80)) // no connect: early
	tr.Expire(5 * s)
	if st := tr.Stats(); st.Pending != 1 || st.Owners != 1 || st.Orphans != 1 {
		t.Fatalf("at 5 s: %+v", st)
	}
	tr.Expire(12 * s)
	if st := tr.Stats(); st.Owners != 0 || st.Expired != 1 {
		t.Fatalf("at 12 s: %+v", st)
	}
	tr.Expire(61 * s)
	if st := tr.Stats(); st.Pending != 0 || st.Expired != 2 {
		t.Fatalf("at 61 s: %+v", st)
	}
}

func TestTrackerBounded(t *testing.T) {
	const max = 100
	tr := NewTracker(Limits{MaxPending: max, MaxOwners: max})
	dns := Mapped([]byte{10, 0, 0, 53})
	for i := range 10 * max {
		// Connects that never complete and unconnected senders that never close.
		tr.StateChange(int64(i), int64(i), 1, 1, connect(uint64(i), remote, 80))
		tr.Route(int64(i), 1, 1, &Route{Proto: protoUDP, SPort: uint16(1000 + i), DPort: 53, DAddr: dns})
		if st := tr.Stats(); st.Pending > max || st.Owners > max {
			t.Fatalf("after %d: %+v", i, st)
		}
	}
	// The newest are kept.
	if _, ok := tr.Lookup(Key{protoUDP, uint16(1000 + 10*max - 1), 53, dns}, [16]byte{}); !ok {
		t.Error("newest owner evicted")
	}
	wantNoOwner(t, tr, Key{protoUDP, 1000, 53, dns}, [16]byte{}, "oldest owner kept")
	if st := tr.Stats(); st.Evicted != 2*9*max {
		t.Errorf("evicted %d, want %d", st.Evicted, 2*9*max)
	}
	// The expiry queue stays proportional to the entries when the same
	// keys are refreshed over and over.
	for i := range 100 * max {
		tr.Route(int64(i), 1, 1, &Route{Proto: protoUDP, SPort: uint16(1 + i%10), DPort: 53, DAddr: dns})
	}
	if n := len(tr.owners.queue); n > 8*max {
		t.Errorf("expiry queue %d entries for %d owners", n, len(tr.owners.m))
	}
}

// BenchmarkTrackerTCP is the tracker's share of an outbound TCP connection:
// two records joined on skaddr, then the owner looked up by the close.
func BenchmarkTrackerTCP(b *testing.B) {
	tr := NewTracker(Limits{})
	c, e := connect(0, remote, 80), established(0, lo, 0, remote, 80)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		sk, port := uint64(0xffff0000+i), uint16(1+i%60000)
		c.Skaddr, e.Skaddr, e.SPort = sk, sk, port
		tr.StateChange(int64(i), int64(i), 1, 1, c)
		tr.StateChange(int64(i), int64(i), 0, 0, e)
		if _, ok := tr.Lookup(key(port, remote, 80), lo); !ok {
			b.Fatal("no owner")
		}
		if i%1000 == 0 {
			tr.Expire(int64(i))
		}
	}
}

// FuzzTracker drives the join with arbitrary record sequences (each 8 bytes:
// kind, skaddr, ports, addresses and pid from a small alphabet so that
// records collide) and checks its invariants: memory stays within its
// limits, and every owner found is one that a record named with that
// destination.
func FuzzTracker(f *testing.F) {
	f.Add([]byte{0, 1, 1, 1, 1, 5, 0, 0, 1, 1, 2, 1, 1, 0, 0, 0, 4, 0, 2, 1, 1, 0, 0, 0})
	f.Add([]byte{1, 1, 2, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 5, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		const max = 8
		tr := NewTracker(Limits{MaxPending: max, MaxOwners: max, PendingTTL: 10, OwnerTTL: 10})
		dsts := [4][16]byte{Mapped([]byte{10, 0, 0, 1}), Mapped([]byte{10, 0, 0, 2}), {0x20, 1, 15: 1}, Mapped([]byte{0, 0, 0, 0})}
		// pids that a connect or route named for (dst, dport).
		named := map[[2]int]map[int32]bool{}
		name := func(d int, port uint16, pid int32) {
			k := [2]int{d, int(port)}
			if named[k] == nil {
				named[k] = map[int32]bool{}
			}
			named[k][pid] = true
		}
		now := int64(0)
		for len(ops) >= 8 {
			op, sk, sport, dport, d, pid, old, nw := ops[0]%6, uint64(ops[1]%4), uint16(ops[2]%3), uint16(ops[3]%3), int(ops[4]%4), int32(ops[5]%4), int32(ops[6]%13), int32(ops[7]%13)
			ops = ops[8:]
			now++
			switch op {
			case 0: // connect
				tr.StateChange(now, now, pid, pid, &StateChange{Skaddr: sk, OldState: TCPClose, NewState: TCPSynSent, Protocol: protoTCP, DAddr: dsts[d], DPort: dport})
				name(d, dport, pid)
			case 1: // any transition
				tr.StateChange(now, now-int64(old), pid, pid, &StateChange{Skaddr: sk, OldState: old, NewState: nw, Protocol: protoTCP, SPort: sport, DAddr: dsts[d], DPort: dport})
			case 2: // route
				tr.Route(now, pid, pid, &Route{Proto: protoUDP, SPort: sport, DPort: dport, DAddr: dsts[d]})
				if pid > 0 && sport != 0 && dport != 0 {
					name(d, dport, pid)
				}
			case 3:
				tr.Lost()
			case 4:
				tr.Expire(now)
			case 5:
				for _, proto := range []uint8{protoTCP, protoUDP} {
					if o, ok := tr.Lookup(Key{proto, sport, dport, dsts[d]}, [16]byte{}); ok && !named[[2]int{d, int(dport)}][o.PID] {
						t.Fatalf("owner pid %d for %v:%d, never named for it", o.PID, dsts[d], dport)
					}
				}
			}
			if s := tr.Stats(); s.Pending > 2*max || s.Owners > max {
				t.Fatalf("over the limits: %+v", s)
			}
		}
	})
}

// TestTrackerAppeared: every record that can put a socket in a dump's view
// (connect, its outcome, an accepted end becoming ESTABLISHED, a listener)
// moves Appeared and its newest time; the accepted end and the listener
// give no owner; other transitions and other protocols count nothing.
func TestTrackerAppeared(t *testing.T) {
	tr := NewTracker(Limits{})
	if n, newest := tr.Appeared(); n != 0 || newest != 0 {
		t.Fatalf("empty tracker: %d, %d", n, newest)
	}
	accepted := &StateChange{Skaddr: 0xd0, OldState: TCPSynRecv, NewState: TCPEstablished, Family: afInet,
		Protocol: protoTCP, SAddr: lo, SPort: 8080, DAddr: remote, DPort: 40000}
	listen := &StateChange{Skaddr: 0xe0, OldState: TCPClose, NewState: TCPListen, Family: afInet, Protocol: protoTCP,
		SPort: 8080}
	steps := []struct {
		c         *StateChange
		ts        int64
		n, newest uint64
	}{
		{listen, 10, 1, 10},
		{accepted, 20, 2, 20},
		{connect(0xa0, remote, 80), 30, 3, 30},
		{established(0xa0, lo, 40001, remote, 80), 25, 4, 30}, // an older record from another ring
		{&StateChange{Skaddr: 0xa0, OldState: TCPEstablished, NewState: 4, Protocol: protoTCP}, 99, 4, 30},
		{&StateChange{Skaddr: 0xf0, OldState: TCPClose, NewState: TCPListen, Protocol: 132}, 99, 4, 30}, // SCTP
	}
	for i, s := range steps {
		tr.StateChange(int64(i), s.ts, 1, 1, s.c)
		if n, newest := tr.Appeared(); n != s.n || newest != int64(s.newest) {
			t.Errorf("step %d: appeared %d, newest %d; want %d, %d", i, n, newest, s.n, s.newest)
		}
	}
	if _, ok := tr.Lookup(Key{Proto: protoTCP, LPort: 8080, RPort: 40000, RAddr: remote}, lo); ok {
		t.Error("an accepted end got an owner")
	}
	if st := tr.Stats(); st.Accepts != 1 || st.Listens != 1 || st.Joined != 1 {
		t.Errorf("stats %+v", st)
	}
}
