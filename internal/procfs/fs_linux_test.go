package procfs

import (
	"os"
	"slices"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fixture is a procfs tree in testdata: pid 1 (systemd), 42 (a comm with
// spaces and parentheses, a docker cgroup, four descriptors) and 4242 (a
// kernel thread without status), and a non-pid directory.
var fixture = New("testdata/proc")

func TestFixturePIDs(t *testing.T) {
	pids, err := fixture.PIDs()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(pids)
	if diff := cmp.Diff([]int32{1, 42, 4242}, pids); diff != "" {
		t.Errorf("PIDs (-want +got):\n%s", diff)
	}
	if _, err := New("testdata/nonexistent").PIDs(); err == nil {
		t.Error("PIDs of a missing root: no error")
	}
}

func TestFixtureStart(t *testing.T) {
	for pid, ticks := range map[int32]uint64{1: 3, 42: 12345, 4242: 99} {
		got, err := fixture.Start(pid)
		if err != nil {
			t.Fatalf("Start(%d): %v", pid, err)
		}
		if want := StartFromTicks(ticks); got != want {
			t.Errorf("Start(%d) = %d, want %d", pid, got, want)
		}
	}
	if _, err := fixture.Start(7); err == nil {
		t.Error("Start of a missing pid: no error")
	}
}

func TestFixtureFiles(t *testing.T) {
	read := func(pid int32, name string) []byte {
		t.Helper()
		b, err := os.ReadFile(fixture.PIDPath(pid, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	s, err := ParseStat(read(42, "stat"))
	if err != nil {
		t.Fatal(err)
	}
	got := []any{string(s.Comm), s.PPID, string(TTYName(s.TTYNr)), s.Flags&PFKthread != 0, s.StartTicks}
	want := []any{"my (odd) name", int32(1), "pts/1", false, uint64(12345)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stat of 42 (-want +got):\n%s", diff)
	}
	if s, err := ParseStat(read(4242, "stat")); err != nil || s.Flags&PFKthread == 0 || s.PPID != 2 {
		t.Errorf("stat of 4242: %+v %v, want a kernel thread of ppid 2", s, err)
	}
	h, err := ParseStatusHead(read(42, "status"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := []any{string(h.Name), h.PPID, h.UID, h.EGID}, []any{"my (odd) name", int32(1), uint32(1000), uint32(100)}; !cmp.Equal(got, want) {
		t.Errorf("status of 42: %v, want %v", got, want)
	}
	cg := ParseCgroup(read(42, "cgroup"))
	if got, want := string(ContainerID(cg)), "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"; got != want {
		t.Errorf("container of 42 (cgroup %q) = %q, want %q", cg, got, want)
	}
	if got := string(ParseCgroup(read(1, "cgroup"))); got != "/init.scope" {
		t.Errorf("cgroup of 1 = %q", got)
	}
	if v, err := ParseID(read(4242, "loginuid")); err != nil || v != 4242 {
		t.Errorf("loginuid of 4242 = %d %v", v, err)
	}
}

func TestFixtureFDs(t *testing.T) {
	got := map[string]string{}
	if err := fixture.FDs(42, make([]byte, 64), func(fd string, target []byte) bool {
		got[fd] = string(target)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"0": "/dev/null", "3": "socket:[12345]", "4": "/etc/passwd", "5": "pipe:[777]"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("FDs of 42 (-want +got):\n%s", diff)
	}
	n := 0
	fixture.FDs(42, make([]byte, 64), func(string, []byte) bool { n++; return false })
	if n != 1 {
		t.Errorf("FDs went on after false: %d calls", n)
	}
	if err := fixture.FDs(1, make([]byte, 64), func(string, []byte) bool { return true }); err == nil {
		t.Error("FDs of a pid without fd directory: no error")
	}
}

func TestFixtureNetNS(t *testing.T) {
	var want uint64
	if fi, err := os.Stat(fixture.PIDPath(42, "ns/net")); err == nil {
		want = statIno(fi)
	}
	got, err := fixture.NetNS(42)
	if err != nil || got != want || got == 0 {
		t.Errorf("NetNS(42) = %d %v, want %d", got, err, want)
	}
	if _, err := fixture.NetNS(1); err == nil {
		t.Error("NetNS of a pid without ns/net: no error")
	}
}

func statIno(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
