package cnproc

import (
	"hash/maphash"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pofr/pofr/internal/event"
)

// fakeProc is what the test's read function finds in /proc for one pid.
type fakeProc struct {
	cgroup string
	auid   uint32
	gone   bool
}

// lineageRig drives a lineage with a read function over fake /proc
// contents and records what each exec asked for.
type lineageRig struct {
	l     *lineage
	procs map[int32]fakeProc
	reads []uint32 // want of every read call, in order
}

func newLineageRig(max int) *lineageRig {
	return &lineageRig{l: newLineage(max, maphash.MakeSeed()), procs: map[int32]fakeProc{}}
}

func (r *lineageRig) read(pid int32, want uint32, in *procInfo) {
	r.reads = append(r.reads, want)
	*in = procInfo{auid: event.NoID, sid: event.NoID}
	p := r.procs[pid]
	if p.gone {
		return
	}
	in.have = want
	in.cgroup = []byte(p.cgroup)
	if want&procHaveLogin != 0 {
		in.auid = p.auid
	}
	if want&procHaveNS != 0 {
		in.ns[0] = event.Some(uint32(4026531836))
	}
}

// exec runs one exec of pid and returns the wants it read with.
func (r *lineageRig) exec(t *testing.T, pid int32, full bool) []uint32 {
	t.Helper()
	r.reads = nil
	var in, nsIn procInfo
	r.l.exec(pid, full, 0, &in, &nsIn, r.read)
	return r.reads
}

const (
	hotLogin   = procHotWant | procHaveLogin
	nsOnly     = procHaveNS
	userCgroup = "/user.slice/user-1000.slice/session-3.scope"
)

// TestLineageLogin walks a login: sshd (loginuid unset) forks the session
// process, which sets loginuid and changes uid before the shell's exec; the
// shell's children then inherit loginuid without reading it.
func TestLineageLogin(t *testing.T) {
	r := newLineageRig(100)
	r.procs[10] = fakeProc{cgroup: "/system.slice/ssh.service", auid: event.NoID}
	// An exec of a pid the reader knows nothing about reads loginuid and
	// the namespaces.
	if got := r.exec(t, 10, false); !cmp.Equal(got, []uint32{hotLogin, nsOnly}) {
		t.Errorf("first exec of sshd read %#x, want hot+login then ns", got)
	}
	// Its child, same cgroup, no credential change: nothing beyond the
	// hot set.
	r.l.fork(10, 11)
	r.procs[11] = fakeProc{cgroup: "/system.slice/ssh.service", auid: event.NoID}
	if got := r.exec(t, 11, false); !cmp.Equal(got, []uint32{procHotWant}) {
		t.Errorf("exec of sshd's child read %#x, want the hot set only", got)
	}
	// The session process: pam_loginuid sets loginuid, then setuid; the
	// uid event makes the next exec read loginuid.
	r.l.fork(10, 12)
	r.l.cred(12)
	r.procs[12] = fakeProc{cgroup: userCgroup, auid: 1000}
	if got := r.exec(t, 12, false); !cmp.Equal(got, []uint32{hotLogin, nsOnly}) {
		t.Errorf("exec after a uid change in a new cgroup read %#x, want hot+login then ns", got)
	}
	// The shell's child inherits the set loginuid: later credential
	// changes read nothing more.
	r.l.fork(12, 13)
	r.l.cred(13)
	r.procs[13] = fakeProc{cgroup: userCgroup, auid: 1000}
	if got := r.exec(t, 13, false); !cmp.Equal(got, []uint32{procHotWant}) {
		t.Errorf("exec below a set loginuid read %#x, want the hot set only", got)
	}
}

// TestLineageAncestorCred: a credential change in an ancestor after its
// last loginuid read is inherited, so a descendant's exec reads loginuid.
func TestLineageAncestorCred(t *testing.T) {
	r := newLineageRig(100)
	r.procs[20] = fakeProc{cgroup: "/a", auid: event.NoID}
	r.exec(t, 20, false)
	r.l.cred(20)
	r.l.fork(20, 21)
	r.procs[21] = fakeProc{cgroup: "/a", auid: event.NoID}
	if got := r.exec(t, 21, false); !cmp.Equal(got, []uint32{hotLogin}) {
		t.Errorf("exec below a changed ancestor read %#x, want hot+login (same cgroup: no ns)", got)
	}
	// loginuid was read (unset): the flag is spent.
	if got := r.exec(t, 21, false); !cmp.Equal(got, []uint32{procHotWant}) {
		t.Errorf("second exec read %#x, want the hot set only", got)
	}
}

// TestLineageForgetting: an unknown parent, an exit, a loss and a gone
// process each make the next exec read as for a stranger.
func TestLineageForgetting(t *testing.T) {
	r := newLineageRig(100)
	r.procs[30] = fakeProc{cgroup: "/a", auid: event.NoID}
	r.procs[31] = fakeProc{cgroup: "/a", auid: event.NoID}
	stranger := []uint32{hotLogin, nsOnly}
	r.exec(t, 30, false)
	r.l.fork(99, 31) // parent unknown
	if got := r.exec(t, 31, false); !cmp.Equal(got, stranger) {
		t.Errorf("child of an unknown parent read %#x", got)
	}
	r.l.forget(31)
	if got := r.exec(t, 31, false); !cmp.Equal(got, stranger) {
		t.Errorf("after exit read %#x", got)
	}
	r.l.reset()
	if got := r.exec(t, 30, false); !cmp.Equal(got, stranger) {
		t.Errorf("after a loss read %#x", got)
	}
	r.procs[30] = fakeProc{gone: true}
	if got := r.exec(t, 30, false); !cmp.Equal(got, []uint32{procHotWant}) {
		t.Errorf("exec of a process gone: read %#x, want one read", got)
	}
	r.procs[30] = fakeProc{cgroup: "/a", auid: event.NoID}
	if got := r.exec(t, 30, false); !cmp.Equal(got, stranger) {
		t.Errorf("after a gone read %#x", got)
	}
}

// TestLineageFullAndCap: FullEnrich reads everything in one go; the table
// never holds more than max pids, and a snapshot fills only what the
// reader has not seen.
func TestLineageFullAndCap(t *testing.T) {
	r := newLineageRig(2)
	r.procs[1] = fakeProc{cgroup: "/a", auid: event.NoID}
	if got := r.exec(t, 1, true); !cmp.Equal(got, []uint32{procHaveAll}) {
		t.Errorf("FullEnrich read %#x, want everything once", got)
	}
	r.l.merge(map[int32]procShadow{1: {valid: true, cg: 7}, 2: {valid: true}, 3: {valid: true}})
	if len(r.l.m) != 2 || r.l.m[1].cg == 7 {
		t.Errorf("after merge: %d pids (want 2), pid 1 overwritten: %v", len(r.l.m), r.l.m[1].cg == 7)
	}
	r.l.fork(1, 4)
	if _, ok := r.l.m[4]; ok {
		t.Error("fork beyond max was remembered")
	}
}

// TestLossCoalescer: losses within lossWindow become one gap item, written
// when the window is over and the ring has room.
func TestLossCoalescer(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var c lossCoalescer
	var got []procItem
	room := true
	push := func(it *procItem) bool {
		if room {
			got = append(got, *it)
		}
		return room
	}
	c.dropped(t0, 500)
	c.dropped(t0.Add(10*time.Millisecond), 600)
	c.flush(t0.Add(50*time.Millisecond), 1, push)
	if len(got) != 0 || !c.pending() {
		t.Fatalf("flushed inside the window: %+v", got)
	}
	c.dropped(t0.Add(60*time.Millisecond), 700)
	room = false
	c.flush(t0.Add(lossWindow), 2, push)
	if !c.pending() {
		t.Fatal("a refused push closed the window")
	}
	room = true
	c.flush(t0.Add(lossWindow+time.Millisecond), 3, push)
	want := []procItem{{kind: procItemLoss, fromMono: 500, at: 3, lost: 3, reason: "process event queue overflow"}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(procItem{}, procMsg{})); diff != "" {
		t.Errorf("queue overflow (-want +got):\n%s", diff)
	}
	if c.pending() {
		t.Error("still pending after the item was written")
	}

	got = nil
	t1 := t0.Add(time.Second)
	c.overrun(t1, 900)
	c.flush(t1.Add(lossWindow), 4, push)
	c.overrun(t1.Add(lossWindow), 950)
	c.dropped(t1.Add(lossWindow), 960)
	c.flush(t1.Add(2*lossWindow), 5, push)
	want = []procItem{
		{kind: procItemLoss, fromMono: 900, at: 4, lost: -1, reason: "ENOBUFS on cn_proc socket"},
		{kind: procItemLoss, fromMono: 950, at: 5, lost: 1, reason: "process event queue overflow"},
		{kind: procItemLoss, fromMono: 950, at: 5, lost: -1, reason: "ENOBUFS on cn_proc socket"},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(procItem{}, procMsg{})); diff != "" {
		t.Errorf("ENOBUFS (-want +got):\n%s", diff)
	}
}

// TestLossCoalescerRings: samples dropped by the tracepoint rings carry their
// own interval and count; queue drops and ENOBUFS in the same window get rows
// of their own, so the rings' count stays exact (an ENOBUFS row has no count,
// and merged into it the rings' count was lost), and a refused push hands
// out again only what it refused.
func TestLossCoalescerRings(t *testing.T) {
	t0 := time.Unix(2000, 0)
	var c lossCoalescer
	var got []procItem
	room := 1
	push := func(it *procItem) bool {
		if room == 0 {
			return false
		}
		room--
		got = append(got, *it)
		return true
	}
	c.ringLost(t0, 800, 5, 700, 750)
	c.ringLost(t0, 800, 2, 650, 760)
	c.dropped(t0, 800)
	c.overrun(t0, 800)
	c.flush(t0.Add(lossWindow), 9, push)
	room = 5
	c.flush(t0.Add(lossWindow), 10, push)
	want := []procItem{
		{kind: procItemLoss, fromMono: 650, toMono: 760, at: 9, lost: 7, reason: "tracepoint ring overflow"},
		{kind: procItemLoss, fromMono: 650, toMono: 760, at: 10, lost: 1, reason: "process event queue overflow"},
		{kind: procItemLoss, fromMono: 650, toMono: 760, at: 10, lost: -1, reason: "ENOBUFS on cn_proc socket"},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(procItem{}, procMsg{})); diff != "" {
		t.Errorf("ring loss (-want +got):\n%s", diff)
	}
	if c.pending() {
		t.Error("still pending after every item was written")
	}
}

// TestLossCoalescerFinal: when the reader stops, a loss noted within the
// last window is written at once, not dropped with the reader.
func TestLossCoalescerFinal(t *testing.T) {
	t0 := time.Unix(3000, 0)
	var c lossCoalescer
	var got []procItem
	push := func(it *procItem) bool { got = append(got, *it); return true }
	c.flushFinal(1, push)
	if len(got) != 0 {
		t.Fatalf("nothing noted, got %+v", got)
	}
	c.ringLost(t0, 800, 3, 700, 750)
	c.flushFinal(2, push)
	want := []procItem{{kind: procItemLoss, fromMono: 700, toMono: 750, at: 2, lost: 3, reason: "tracepoint ring overflow"}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(procItem{}, procMsg{})); diff != "" {
		t.Errorf("final flush (-want +got):\n%s", diff)
	}
	if c.pending() {
		t.Error("still pending after the final flush")
	}
}
