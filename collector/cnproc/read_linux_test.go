package cnproc

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/procfs"
)

// fixtureReader opens the procfs fixture tree in testdata/proc: pid 100 (a
// login shell: everything readable, loginuid and sessionid set, namespace
// links), 200 (a daemon: no stat, loginuid unset and no sessionid file),
// 300 (a zombie: empty cmdline, no exe, cwd or cgroup); 400 does not exist.
func fixtureReader(t *testing.T, argvMax int) *procReader {
	t.Helper()
	root, err := unix.Open("testdata/proc", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(root) })
	return newProcReader(root, argvMax)
}

// readSummary is what the tests compare of a procInfo.
type readSummary struct {
	Have                 uint32
	Start                int64
	PPID                 int32
	Comm, TTY, Exe, Cwd  string
	Argv                 string
	ArgvTrunc            bool
	Cgroup               string
	UID, EUID, GID, EGID uint32
	AUID, SID            uint32
	NS                   [len(procNSNames)]event.Opt[uint32]
}

func summarize(in *procInfo) readSummary {
	return readSummary{in.have, in.start, in.ppid, string(in.comm), string(in.tty), string(in.exe), string(in.cwd),
		string(in.argv), in.argvTrunc, string(in.cgroup), in.uid, in.euid, in.gid, in.egid, in.auid, in.sid, in.ns}
}

func TestReadIntoFixture(t *testing.T) {
	r := fixtureReader(t, 1024)
	var in procInfo
	var ns [len(procNSNames)]event.Opt[uint32]
	for i := range ns {
		ns[i] = event.Some(uint32(4026531830 + i))
	}

	r.readInto(100, procHaveAll, &in)
	want := readSummary{
		Have:  procHaveAll | procHaveSession | procHaveComm | procHavePPid,
		Start: procfs.StartFromTicks(777), PPID: 50, Comm: "sh", TTY: "pts/0", Exe: "/usr/bin/dash", Cwd: "/home/alice",
		Argv: "sh\x00-c\x00echo hi\x00", Cgroup: "/user.slice/user-1000.slice/session-3.scope",
		UID: 1000, EUID: 1000, GID: 1000, EGID: 100, AUID: 1000, SID: 3, NS: ns,
	}
	if diff := cmp.Diff(want, summarize(&in)); diff != "" {
		t.Errorf("readInto(100, all) (-want +got):\n%s", diff)
	}

	// The exec hot path: no stat, no namespaces; comm and ppid from status.
	r.readInto(100, procHotWant, &in)
	want = readSummary{
		Have: procHotWant | procHaveComm | procHavePPid, PPID: 50, Comm: "sh", Exe: "/usr/bin/dash", Cwd: "/home/alice",
		Argv: "sh\x00-c\x00echo hi\x00", Cgroup: "/user.slice/user-1000.slice/session-3.scope",
		UID: 1000, EUID: 1000, GID: 1000, EGID: 100, AUID: event.NoID, SID: event.NoID,
	}
	if diff := cmp.Diff(want, summarize(&in)); diff != "" {
		t.Errorf("readInto(100, hot) (-want +got):\n%s", diff)
	}

	// An unset loginuid means an unset sessionid: that file is not read
	// (200 has none).
	r.readInto(200, procHotWant|procHaveLogin, &in)
	if in.have&(procHaveLogin|procHaveSession) != procHaveLogin|procHaveSession || in.auid != event.NoID || in.sid != event.NoID {
		t.Errorf("readInto(200, login): have %#x auid %d sid %d, want login and session, both unset", in.have, in.auid, in.sid)
	}

	// A zombie: what is left is read, the rest is not claimed.
	r.readInto(300, procHaveAll, &in)
	if got, want := in.have, uint32(procHaveStat|procHaveStatus|procHaveComm|procHavePPid); got != want {
		t.Errorf("readInto(300, all): have %#x, want %#x", got, want)
	}

	// Gone: nothing at all.
	r.readInto(400, procHaveAll, &in)
	if in.have != 0 {
		t.Errorf("readInto(400): have %#x, want 0", in.have)
	}
}

func TestReadIntoArgvCut(t *testing.T) {
	r := fixtureReader(t, 5)
	var in procInfo
	r.readInto(100, procHaveArgv, &in)
	if string(in.argv) != "sh\x00-c" || !in.argvTrunc {
		t.Errorf("argv %q truncated %v, want %q true", in.argv, in.argvTrunc, "sh\x00-c")
	}
}

func TestReadStatAndFullFixture(t *testing.T) {
	r := fixtureReader(t, 1024)
	st, err := r.readStat(300)
	if err != nil || st.start != procfs.StartFromTicks(900) || string(st.comm) != "zomb" || st.ppid != 1 {
		t.Errorf("readStat(300) = %+v, %v", st, err)
	}
	if _, err := r.readStat(200); err == nil {
		t.Error("readStat of a pid without stat: no error")
	}
	full, err := r.readFull(100)
	if err != nil {
		t.Fatal(err)
	}
	// readFull owns its bytes: another read must not change them.
	r.readInto(200, procHaveAll, &procInfo{})
	if string(full.exe) != "/usr/bin/dash" || string(full.comm) != "sh" || full.container != nil {
		t.Errorf("readFull(100): exe %q comm %q container %q", full.exe, full.comm, full.container)
	}
	if _, err := r.readFull(200); err == nil {
		t.Error("readFull of a pid without stat: no error")
	}
}
