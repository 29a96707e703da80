package sockdiag

import (
	"errors"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pofr/pofr/collector"
	"github.com/pofr/pofr/collector/sockowner"
	"github.com/pofr/pofr/internal/event"
)

// The socket table without a kernel: dumps and destroy notifications are
// decoded messages built here; owners come from a process table stand-in
// (collector.ProcMap) and an fd scan stand-in that knows which pid holds which
// inode.

// newTestTable returns a table whose fd scan finds the inodes of holders.
func newTestTable(sink event.Sink, holders map[uint32]int32) *table {
	tb := newTable(sink)
	tb.netns = event.Some(uint64(4026531840))
	tb.procs = collector.ProcMap{100: {Start: 1000, EUID: 0}, 200: {Start: 2000, EUID: 1000}, 300: {Start: 3000, Self: true}}
	tb.findOwners = func(want map[uint32]*sockEntry, found func(*sockEntry, int32)) int {
		for ino, e := range want {
			if pid, ok := holders[ino]; ok {
				found(e, pid)
				delete(want, ino)
			}
		}
		return len(holders)
	}
	return tb
}

func tcp(state uint8, src string, sport uint16, dst string, dport uint16, cookie uint64, inode uint32) inetDiag {
	return inetDiag{Family: sdAFInet, Protocol: sdIPProtoTCP, State: state, Src: sockAddr16(src), SrcPort: sport,
		Dst: sockAddr16(dst), DstPort: dport, Cookie: cookie, Inode: inode, HasInfo: true, HasBytesSent: true,
		BytesSent: 10, BytesReceived: 20}
}

// row is what these tests compare of a sock row.
type row struct {
	Event, Dir string
	Local, Rem uint16
	PID        event.Opt[int32]
	Start      event.Opt[int64]
	Flags      uint32
}

func rowsOf(sink *event.MemSink) []row {
	var out []row
	for _, r := range sink.Socks() {
		out = append(out, row{r.Event, r.Direction, r.LocalPort, r.RemotePort, r.PID, r.ProcStart, r.Flags})
	}
	return out
}

// TestSockTableLifecycle: a listener, an accepted connection and an
// outgoing one are seen by a dump (listen and open rows with their owners
// from the fd scan), then closed by destroy notifications (close rows that
// keep the owner and take the final state and counters from the message);
// a connection that was never dumped closes with the listener's owner.
func TestSockTableLifecycle(t *testing.T) {
	sink := &event.MemSink{}
	tb := newTestTable(sink, map[uint32]int32{11: 100, 12: 100, 13: 200})
	ln := tcp(sdTCPListen, "0.0.0.0", 8080, "0.0.0.0", 0, 1, 11)
	in := tcp(sdTCPEstablished, "10.0.0.1", 8080, "10.0.0.2", 40000, 2, 12)
	out := tcp(sdTCPEstablished, "10.0.0.1", 50000, "10.0.0.3", 443, 3, 13)
	tb.applyDump(1_000, []inetDiag{ln, in, out}, time.Time{}, true)
	fin := out
	fin.State, fin.BytesSent = sdTCPClose, 99
	late := tcp(sdTCPClose, "10.0.0.1", 8080, "10.0.0.4", 40001, 4, 0) // accepted and closed between dumps
	tb.applyDestroys([]sockDestroy{{ts: 2_000, msg: fin}, {ts: 2_001, msg: late}, {ts: 2_002, msg: inetDiag{Family: sdAFInet, Protocol: sdIPProtoTCP, Cookie: 9}}}, 2_002)

	want := []row{
		{event.SockListen, event.DirListen, 8080, 0, event.Some[int32](100), event.Some[int64](1000), 0},
		{event.SockOpen, event.DirIn, 8080, 40000, event.Some[int32](100), event.Some[int64](1000), 0},
		{event.SockOpen, event.DirOut, 50000, 443, event.Some[int32](200), event.Some[int64](2000), 0},
		{event.SockClose, event.DirOut, 50000, 443, event.Some[int32](200), event.Some[int64](2000), event.SockFlagFromDestroy},
		{event.SockClose, event.DirIn, 8080, 40001, event.Some[int32](100), event.Some[int64](1000), event.SockFlagFromDestroy | event.SockFlagOwnerFromListener},
	}
	if diff := cmp.Diff(want, rowsOf(sink)); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	socks := sink.Socks()
	if c := socks[3]; c.State != "CLOSE" || c.BytesSent != event.Some[uint64](99) || c.Netns != tb.netns {
		t.Errorf("close row: state %s bytes_sent %v netns %v, want CLOSE 99 %v", c.State, c.BytesSent, c.Netns, tb.netns)
	}
	st := tb.stats
	got := []uint64{st.Dumps, st.Listens, st.Opens, st.Closes, st.Destroys, st.Unbound, st.OwnerKnown, st.OwnerFromListener, st.FDScans, uint64(st.Tracked)}
	if diff := cmp.Diff([]uint64{1, 1, 2, 2, 3, 1, 2, 1, 1, 2}, got); diff != "" {
		t.Errorf("dumps listens opens closes destroys unbound known from_listener fdscans tracked (-want +got):\n%s", diff)
	}
}

// TestSockTableVanish: a socket missing from the dumps closes (flag
// vanished) only after sockVanishGrace, and reappearing resets the wait; in
// /proc/net mode it closes at the first dump without it, keyed by inode.
func TestSockTableVanish(t *testing.T) {
	sink := &event.MemSink{}
	tb := newTestTable(sink, nil)
	c := tcp(sdTCPEstablished, "10.0.0.1", 50000, "10.0.0.3", 443, 7, 0)
	g := int64(sockVanishGrace)
	tb.applyDump(1, []inetDiag{c}, time.Time{}, true)
	tb.applyDump(2, nil, time.Time{}, true)
	tb.applyDump(2+g/2, []inetDiag{c}, time.Time{}, true) // back
	tb.applyDump(3+g/2, nil, time.Time{}, true)
	tb.applyDump(2+g, nil, time.Time{}, true) // missing for less than the grace
	if n := len(sink.Socks()); n != 1 {
		t.Fatalf("%d rows before the grace ran out, want the open row only", n)
	}
	tb.applyDump(3+g+g/2, nil, time.Time{}, true)
	rows := rowsOf(sink)
	if len(rows) != 2 || rows[1].Event != event.SockClose || rows[1].Flags != event.SockFlagVanished|event.SockFlagOwnerUnknown {
		t.Errorf("rows %+v, want open then close flagged vanished and owner_unknown", rows)
	}

	sink = &event.MemSink{}
	tb = newTestTable(sink, map[uint32]int32{5: 300})
	tb.procnet = true
	p := tcp(sdTCPEstablished, "10.0.0.1", 50001, "10.0.0.3", 443, 0, 5)
	tb.applyDump(1, []inetDiag{p}, time.Time{}, true)
	tb.applyDump(2, nil, time.Time{}, true)
	want := []row{
		{event.SockOpen, event.DirOut, 50001, 443, event.Some[int32](300), event.Some[int64](3000), event.SockFlagSelf | event.SockFlagFallback},
		{event.SockClose, event.DirOut, 50001, 443, event.Some[int32](300), event.Some[int64](3000), event.SockFlagSelf | event.SockFlagFallback | event.SockFlagVanished},
	}
	if diff := cmp.Diff(want, rowsOf(sink)); diff != "" {
		t.Errorf("procnet rows (-want +got):\n%s", diff)
	}
}

// TestSockTableOverrunGaps: overrun markers become gap rows, with the count
// of a full queue when there is one.
func TestSockTableOverrunGaps(t *testing.T) {
	sink := &event.MemSink{}
	tb := newTestTable(sink, nil)
	tb.applyDestroys([]sockDestroy{{ts: 20, overrun: true, since: 10}, {ts: 40, overrun: true, since: 40, dropped: 7}}, 40)
	gaps := sink.Gaps()
	if len(gaps) != 2 {
		t.Fatalf("%d gap rows, want 2", len(gaps))
	}
	if g := gaps[0]; g.FromTS != 10 || g.ToTS != 20 || g.Lost.Valid || g.Source != event.SourceSock {
		t.Errorf("ENOBUFS gap %+v", g)
	}
	if g := gaps[1]; g.Lost != event.Some[int64](7) || g.Reason != "sock_diag destroy queue full" {
		t.Errorf("queue-full gap %+v", g)
	}
	if tb.stats.Destroys != 0 || len(sink.Socks()) != 0 {
		t.Errorf("overrun markers counted as destroys (%d) or wrote sock rows (%d)", tb.stats.Destroys, len(sink.Socks()))
	}
}

// TestSockTableOwnerOnlyTriedOnce: an inode the fd scan did not find is not
// looked for again at the next dump.
func TestSockTableOwnerOnlyTriedOnce(t *testing.T) {
	tb := newTestTable(&event.MemSink{}, nil)
	c := tcp(sdTCPEstablished, "10.0.0.1", 50000, "10.0.0.3", 443, 7, 42)
	tb.applyDump(1, []inetDiag{c}, time.Time{}, true)
	tb.applyDump(2, []inetDiag{c}, time.Time{}, true)
	if tb.stats.FDScans != 1 {
		t.Errorf("%d fd scans, want 1", tb.stats.FDScans)
	}
}

// TestSockTableHeld: a wanted socket that held reports gone by the time of
// the scan (the accepted end of a connection of a few ms) is not looked for
// in /proc and is counted; one still held is looked for as before, and a
// gone one closes with its listener's owner.
func TestSockTableHeld(t *testing.T) {
	sink := &event.MemSink{}
	tb := newTestTable(sink, map[uint32]int32{11: 100, 12: 100, 13: 100})
	tb.held = func(m *inetDiag) bool { return m.Inode != 13 }
	var asked []uint32
	find := tb.findOwners
	tb.findOwners = func(want map[uint32]*sockEntry, found func(*sockEntry, int32)) int {
		for ino := range want {
			asked = append(asked, ino)
		}
		slices.Sort(asked)
		return find(want, found)
	}
	ln := tcp(sdTCPListen, "0.0.0.0", 8080, "0.0.0.0", 0, 1, 11)
	tb.applyDump(1_000, []inetDiag{ln}, time.Time{}, true)
	asked = nil
	live := tcp(sdTCPEstablished, "10.0.0.1", 8080, "10.0.0.2", 40000, 2, 12)
	gone := tcp(sdTCPEstablished, "10.0.0.1", 8080, "10.0.0.2", 40001, 3, 13)
	tb.applyDump(2_000, []inetDiag{ln, live, gone}, time.Time{}, true)
	if !slices.Equal(asked, []uint32{12}) {
		t.Errorf("fd scan looked for %v, want [12]", asked)
	}
	if st := tb.stats; st.FDScanGone != 1 || st.FDScans != 2 {
		t.Errorf("FDScanGone %d FDScans %d, want 1 2", st.FDScanGone, st.FDScans)
	}
	fin := gone
	fin.State = sdTCPClose
	tb.applyDestroys([]sockDestroy{{ts: 2_500, msg: fin}}, 2_500)
	want := []row{
		{event.SockListen, event.DirListen, 8080, 0, event.Some[int32](100), event.Some[int64](1000), 0},
		{event.SockOpen, event.DirIn, 8080, 40000, event.Some[int32](100), event.Some[int64](1000), 0},
		{event.SockOpen, event.DirIn, 8080, 40001, event.Opt[int32]{}, event.Opt[int64]{}, event.SockFlagOwnerUnknown},
		{event.SockClose, event.DirIn, 8080, 40001, event.Some[int32](100), event.Some[int64](1000), event.SockFlagFromDestroy | event.SockFlagOwnerFromListener},
	}
	got := rowsOf(sink)
	slices.SortStableFunc(got[1:3], func(a, b row) int { return int(a.Rem) - int(b.Rem) })
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}

// TestSockTableMemory measures the memory of the socket table: 10,000 tracked
// sockets (a synthetic dump, no kernel) must stay under 1 KiB each.
func TestSockTableMemory(t *testing.T) {
	tb := newTable(event.Discard{})
	const n = 10000
	dump := make([]inetDiag, n)
	for i := range dump {
		dump[i] = inetDiag{Family: sdAFInet, Protocol: sdIPProtoTCP, State: sdTCPEstablished,
			SrcPort: uint16(10000 + i%50000), DstPort: 80, Cookie: uint64(i + 1), Inode: uint32(i + 1), HasInfo: true}
	}
	var ms0, ms1 runtime.MemStats
	sockReadHeap(&ms0)
	tb.applyDump(1, dump, time.Time{}, true)
	dump = nil
	sockReadHeap(&ms1)
	if got := tb.stats.Tracked; got != n {
		t.Fatalf("tracked %d, want %d", got, n)
	}
	per := (int64(ms1.HeapAlloc) - int64(ms0.HeapAlloc)) / n
	t.Logf("socket table: %d bytes per tracked socket (%d sockets: %d KiB)", per, n, per*n/1024)
	if per > 1024 {
		t.Errorf("socket table uses %d bytes per socket, want ≤ 1024", per)
	}
	// All of them vanish: the table empties after the grace period.
	tb.applyDump(2, nil, time.Time{}, true)
	tb.applyDump(2+int64(sockVanishGrace), nil, time.Time{}, true)
	if st := tb.stats; st.Tracked != 0 || st.Vanished != n || st.OwnerUnknown != n {
		t.Errorf("after vanishing: tracked %d vanished %d owner_unknown %d, want 0 %d %d", st.Tracked, st.Vanished, st.OwnerUnknown, n, n)
	}
	if len(tb.listeners) != 0 {
		t.Errorf("listener index holds %d ports, want 0", len(tb.listeners))
	}
}

func sockReadHeap(ms *runtime.MemStats) {
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(ms)
}

// trackerOwners is ConnOwners over a sockowner.Tracker fed by the test
// (package sockowner's Source does the same from the kernel's rings).
type trackerOwners struct {
	tr   *sockowner.Tracker
	lost uint64
	// lostAll counts every loss (lost is what the next Sync reports);
	// young makes Changes report its newest record unsettled.
	lostAll uint64
	young   bool
}

func (o *trackerOwners) Sync() uint64 { l := o.lost; o.lost = 0; o.lostAll += l; return l }
func (o *trackerOwners) Lookup(k sockowner.Key, laddr [16]byte) (sockowner.Owner, bool) {
	return o.tr.Lookup(k, laddr)
}
func (o *trackerOwners) Changes() (uint64, bool) {
	n, _ := o.tr.Appeared()
	return n + o.lostAll, !o.young
}

// TestSockTableConnOwners: outbound connections get their owner from
// ConnOwners, at a dump (no fd scan for them) and at a destroy of a socket
// no dump saw; inbound ones still get the listener's; a pid whose process
// is gone gives a row with the pid and no proc_start; lost records are a
// gap row.
func TestSockTableConnOwners(t *testing.T) {
	sink := &event.MemSink{}
	tb := newTestTable(sink, map[uint32]int32{11: 100})
	var wanted []uint32
	find := tb.findOwners
	tb.findOwners = func(want map[uint32]*sockEntry, found func(*sockEntry, int32)) int {
		for ino := range want {
			wanted = append(wanted, ino)
		}
		return find(want, found)
	}
	co := &trackerOwners{tr: sockowner.NewTracker(sockowner.Limits{})}
	tb.conns = co
	addr := func(s string) []byte { a := sockAddr16(s); return a[:4] }
	connect := func(sk uint64, pid int32, sport uint16, dst string, dport uint16) {
		d := sockowner.Mapped(addr(dst))
		co.tr.StateChange(1, 1, pid, pid, &sockowner.StateChange{Skaddr: sk, OldState: sockowner.TCPClose,
			NewState: sockowner.TCPSynSent, Protocol: sdIPProtoTCP, DAddr: d, DPort: dport})
		co.tr.StateChange(1, 2, 0, 0, &sockowner.StateChange{Skaddr: sk, OldState: sockowner.TCPSynSent,
			NewState: sockowner.TCPEstablished, Protocol: sdIPProtoTCP, SAddr: sockowner.Mapped(addr("10.0.0.1")),
			SPort: sport, DAddr: d, DPort: dport})
	}
	connect(0xa0, 200, 50001, "10.0.0.3", 443) // seen by the dump
	connect(0xb0, 999, 50003, "10.0.0.3", 443) // closes unseen; its process is gone
	co.tr.Route(1, 100, 100, &sockowner.Route{Proto: sdIPProtoUDP, SPort: 50002, DPort: 53,
		DAddr: sockowner.Mapped(addr("10.0.0.53"))})

	ln := tcp(sdTCPListen, "0.0.0.0", 8080, "0.0.0.0", 0, 1, 11)
	out := tcp(sdTCPEstablished, "10.0.0.1", 50001, "10.0.0.3", 443, 2, 21)
	tb.applyDump(1_000, []inetDiag{ln, out}, time.Time{}, true)
	if len(wanted) != 1 || wanted[0] != 11 {
		t.Errorf("fd scan wanted inodes %v, want only the listener's 11", wanted)
	}
	udp := inetDiag{Family: sdAFInet, Protocol: sdIPProtoUDP, State: sdTCPEstablished, Src: sockAddr16("10.0.0.1"),
		SrcPort: 50002, Dst: sockAddr16("10.0.0.53"), DstPort: 53, Cookie: 3}
	gone := tcp(sdTCPClose, "10.0.0.1", 50003, "10.0.0.3", 443, 4, 0)
	in := tcp(sdTCPClose, "10.0.0.1", 8080, "10.0.0.4", 40001, 5, 0)
	unknown := tcp(sdTCPClose, "10.0.0.1", 50004, "10.0.0.3", 443, 6, 0)
	fin := out
	fin.State = sdTCPClose
	co.lost = 5
	tb.applyDestroys([]sockDestroy{{ts: 2_000, msg: fin}, {ts: 2_001, msg: udp}, {ts: 2_002, msg: gone},
		{ts: 2_003, msg: in}, {ts: 2_004, msg: unknown}}, 2_010)

	none := event.Opt[int64]{}
	want := []row{
		{event.SockListen, event.DirListen, 8080, 0, event.Some[int32](100), event.Some[int64](1000), 0},
		{event.SockOpen, event.DirOut, 50001, 443, event.Some[int32](200), event.Some[int64](2000), 0},
		{event.SockClose, event.DirOut, 50001, 443, event.Some[int32](200), event.Some[int64](2000), event.SockFlagFromDestroy},
		{event.SockClose, event.DirOut, 50002, 53, event.Some[int32](100), event.Some[int64](1000), event.SockFlagFromDestroy},
		{event.SockClose, event.DirOut, 50003, 443, event.Some[int32](999), none, event.SockFlagFromDestroy},
		{event.SockClose, event.DirIn, 8080, 40001, event.Some[int32](100), event.Some[int64](1000), event.SockFlagFromDestroy | event.SockFlagOwnerFromListener},
		{event.SockClose, event.DirOut, 50004, 443, event.Opt[int32]{}, none, event.SockFlagFromDestroy | event.SockFlagOwnerUnknown},
	}
	if diff := cmp.Diff(want, rowsOf(sink)); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	gaps := sink.Gaps()
	if len(gaps) != 1 || gaps[0].Lost != event.Some[int64](5) || gaps[0].ToTS != 2_010 {
		t.Errorf("gaps %+v, want one with 5 lost records ending at 2010", gaps)
	}
	if st := tb.stats; st.OwnerFromTracepoint != 3 || st.OwnerRecordsLost != 5 || st.OwnerFromListener != 1 {
		t.Errorf("stats: from tracepoints %d, records lost %d, from listener %d; want 3 5 1",
			st.OwnerFromTracepoint, st.OwnerRecordsLost, st.OwnerFromListener)
	}
}

// TestSockTableConnOwnersNetns: an owner from ConnOwners whose process is
// in another network namespace than the table's (the same tuple used there)
// is refused and counted, and the fd scan looks for the socket instead; one
// in the table's namespace, or whose namespace cannot be read (gone), is
// taken.
func TestSockTableConnOwnersNetns(t *testing.T) {
	sink := &event.MemSink{}
	tb := newTestTable(sink, map[uint32]int32{21: 100})
	co := &trackerOwners{tr: sockowner.NewTracker(sockowner.Limits{})}
	tb.conns = co
	reads := 0
	tb.netnsOf = func(pid int32) (uint64, error) {
		reads++
		switch pid {
		case 200:
			return 4026532000, nil // another namespace
		case 100:
			return tb.netns.V, nil
		}
		return 0, errors.New("no such process")
	}
	addr := func(s string) [16]byte { a := sockAddr16(s); return sockowner.Mapped(a[:4]) }
	route := func(pid int32, sport uint16) {
		co.tr.Route(1, pid, pid, &sockowner.Route{Proto: sdIPProtoUDP, SPort: sport, DPort: 53, DAddr: addr("10.0.0.53")})
	}
	route(200, 50001) // other namespace: refused, found by the fd scan (inode 21 → 100)
	route(100, 50002) // this namespace
	route(999, 50003) // gone
	route(100, 50004) // the same pid again: its namespace is read once
	udp := func(sport uint16, cookie uint64, inode uint32) inetDiag {
		return inetDiag{Family: sdAFInet, Protocol: sdIPProtoUDP, State: sdTCPEstablished, Src: sockAddr16("10.0.0.1"),
			SrcPort: sport, Dst: sockAddr16("10.0.0.53"), DstPort: 53, Cookie: cookie, Inode: inode}
	}
	tb.applyDump(1_000, []inetDiag{udp(50001, 1, 21), udp(50002, 2, 22), udp(50003, 3, 23), udp(50004, 4, 24)}, time.Time{}, true)
	none := event.Opt[int64]{}
	want := []row{
		{event.SockOpen, event.DirOut, 50001, 53, event.Some[int32](100), event.Some[int64](1000), 0},
		{event.SockOpen, event.DirOut, 50002, 53, event.Some[int32](100), event.Some[int64](1000), 0},
		{event.SockOpen, event.DirOut, 50003, 53, event.Some[int32](999), none, 0},
		{event.SockOpen, event.DirOut, 50004, 53, event.Some[int32](100), event.Some[int64](1000), 0},
	}
	got := rowsOf(sink)
	slices.SortFunc(got, func(a, b row) int { return int(a.Local) - int(b.Local) })
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	if st := tb.stats; st.OwnerOtherNetns != 1 {
		t.Errorf("OwnerOtherNetns %d, want 1", st.OwnerOtherNetns)
	}
	if reads != 3 {
		t.Errorf("%d namespace reads, want 3 (one per pid)", reads)
	}
	// A destroy batch within sockNetnsTTL reads no namespace again; one
	// after it reads the owner's namespace anew.
	route(100, 50005)
	route(100, 50006)
	tb.applyDestroys([]sockDestroy{{ts: 2_000, msg: udp(50005, 5, 25)}}, 2_000)
	if reads != 3 {
		t.Errorf("%d namespace reads after a batch within the TTL, want 3", reads)
	}
	late := 1_000 + int64(sockNetnsTTL)
	tb.applyDestroys([]sockDestroy{{ts: late, msg: udp(50006, 6, 26)}}, late)
	if reads != 4 {
		t.Errorf("%d namespace reads after a batch past the TTL, want 4", reads)
	}
	for _, r := range sink.Socks()[4:] {
		if r.PID != event.Some[int32](100) {
			t.Errorf("close row %d→%d: pid %v, want 100", r.LocalPort, r.RemotePort, r.PID)
		}
	}
}

// TestDumpWait checks the idle back-off of the dump cadence: doubling after
// quiet dumps up to its bound, and the profile's interval after any change.
func TestDumpWait(t *testing.T) {
	s := time.Second
	for _, c := range []struct {
		interval, last time.Duration
		quiet          bool
		want           time.Duration
	}{
		{s, s, false, s},
		{s, s, true, 2 * s},
		{s, 4 * s, true, 8 * s},
		{s, 8 * s, true, 8 * s},
		{s, 8 * s, false, s},
		{250 * time.Millisecond, 2 * s, true, 2 * s},
		{5 * s, 5 * s, true, 10 * s},
		{5 * s, 10 * s, true, 10 * s},
		{20 * s, 20 * s, true, 20 * s},
		{s, 0, true, s},
	} {
		if got := dumpWait(c.interval, c.last, c.quiet); got != c.want {
			t.Errorf("dumpWait(%v, %v, %v) = %v, want %v", c.interval, c.last, c.quiet, got, c.want)
		}
	}
}

// TestSockTableQuiet: a dump is quiet only when it adds, closes and misses
// nothing and no destroy message came since the last one.
func TestSockTableQuiet(t *testing.T) {
	sink := &event.MemSink{}
	tb := newTestTable(sink, nil)
	c := tcp(sdTCPEstablished, "10.0.0.1", 50000, "10.0.0.3", 443, 7, 0)
	g := int64(sockVanishGrace)
	var got []bool
	got = append(got, tb.applyDump(1, []inetDiag{c}, time.Time{}, true)) // new
	got = append(got, tb.applyDump(2, []inetDiag{c}, time.Time{}, true)) // same
	got = append(got, tb.applyDump(3, nil, time.Time{}, true))           // missing
	got = append(got, tb.applyDump(3+g, nil, time.Time{}, true))         // vanished
	got = append(got, tb.applyDump(4+g, nil, time.Time{}, true))         // empty
	tb.stats.Destroys++                                                  // as applyDestroys counts one
	got = append(got, tb.applyDump(5+g, nil, time.Time{}, true))
	got = append(got, tb.applyDump(6+g, nil, time.Time{}, true))
	if diff := cmp.Diff([]bool{false, true, false, false, true, false, true}, got); diff != "" {
		t.Errorf("quiet per dump (-want +got):\n%s", diff)
	}
}

// TestSockTablePlanDump: with ConnOwners a dump leaves TCP out only while
// no TCP record (connect, its outcome, accept, listen) nor loss came since
// the last TCP dump, that dump settled everything, and it is less than
// sockTCPWalkMax old; a dump without TCP does not miss the TCP sockets.
// Without ConnOwners every dump has TCP.
func TestSockTablePlanDump(t *testing.T) {
	sink := &event.MemSink{}
	tb := newTestTable(sink, map[uint32]int32{11: 100, 12: 100})
	s := int64(time.Second)
	if !tb.planDump(1, false) {
		t.Fatal("without ConnOwners: TCP left out")
	}
	co := &trackerOwners{tr: sockowner.NewTracker(sockowner.Limits{})}
	tb.conns = co
	now := int64(0)
	// dump plans and applies one dump of socks at now+1 s, and returns
	// whether it asked for TCP.
	dump := func(force bool, socks ...inetDiag) bool {
		t.Helper()
		now += s
		tcp := tb.planDump(now, force)
		var d []inetDiag
		for _, m := range socks {
			if tcp || m.Protocol != sdIPProtoTCP {
				d = append(d, m)
			}
		}
		tb.applyDump(now, d, time.Time{}, tcp)
		return tcp
	}
	record := func(old, new int32) {
		co.tr.StateChange(now, now, 1, 1, &sockowner.StateChange{Skaddr: 0xa0, OldState: old, NewState: new,
			Protocol: sdIPProtoTCP, SPort: 8080})
	}
	ln := tcp(sdTCPListen, "0.0.0.0", 8080, "0.0.0.0", 0, 1, 11)
	in := tcp(sdTCPEstablished, "10.0.0.1", 8080, "10.0.0.2", 40000, 2, 12)
	var socks []inetDiag
	step := func(what string, want bool, force bool) {
		t.Helper()
		if got := dump(force, socks...); got != want {
			t.Errorf("%s: TCP asked for %v, want %v", what, got, want)
		}
	}
	step("first dump", true, false)
	step("nothing new", false, false)
	step("nothing new again", false, false)
	socks = append(socks, ln)
	record(sockowner.TCPClose, sockowner.TCPListen)
	step("after a listen", true, false)
	step("listener seen", false, false)
	// An accepted socket still in the accept queue (no inode yet).
	q := in
	q.Inode = 0
	socks = append(socks, q)
	record(sockowner.TCPSynRecv, sockowner.TCPEstablished)
	step("after an accept", true, false)
	socks[len(socks)-1] = in // accepted
	step("queued socket: its inode", true, false)
	step("accepted socket seen", false, false)
	record(sockowner.TCPClose, sockowner.TCPSynSent)
	step("after a connect", true, false)
	record(sockowner.TCPSynSent, sockowner.TCPEstablished)
	step("after its outcome", true, false)
	step("refresh", true, true)
	co.lost = 1
	step("after lost records", true, false)
	co.young = true
	record(sockowner.TCPClose, sockowner.TCPSynSent)
	step("young record", true, false)
	co.young = false
	step("after a young record", true, false)
	step("settled", false, false)
	tb.applyDestroys([]sockDestroy{{ts: now, overrun: true, since: now - 1}}, now)
	step("after an overrun", true, false)
	step("overrun walked", false, false)
	// A TCP socket that leaves without a destroy message is not a reason
	// to walk (a lost destroy message is an overrun, above); once a walk
	// misses it, the next ones look for it until it vanishes.
	socks = socks[:1]
	step("accepted socket gone", false, false)
	record(sockowner.TCPClose, sockowner.TCPSynSent)
	step("accepted socket missing", true, false)
	step("still missing", true, false)
	step("vanished", true, false)
	if st := tb.stats; st.Vanished != 1 || st.Tracked != 1 {
		t.Errorf("vanished %d, tracked %d, want 1, 1", st.Vanished, st.Tracked)
	}
	step("after it vanished", false, false)
	for range int(sockTCPWalkMax/time.Second) - 2 {
		if dump(false, socks...) {
			t.Fatalf("TCP asked for %v after the last TCP dump", time.Duration(now-tb.tcpWalked))
		}
	}
	step("safety net", true, false)
	if st := tb.stats; st.Tracked != 1 || st.Vanished != 1 || st.TCPSkips == 0 || st.TCPSkips >= st.Dumps {
		t.Errorf("tracked %d, vanished %d, TCP skips %d of %d dumps", st.Tracked, st.Vanished, st.TCPSkips, st.Dumps)
	}
}
