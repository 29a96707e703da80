package loader

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/servertest"
	"github.com/pofr/pofr/internal/testutil"
)

// TestViewsProcessTree loads a known tree through the spool writer and the
// loader:
//
//	bash(100) ─┬─ make(200) ── cc(300, exits 1)
//	           └─ sleep(400, killed by signal 9)
//
// plus pid 300 reused by a later, unrelated process (another life), and a
// socket owned by cc. processes must give one row per life with its exec,
// exit and parent; process_tree the edges; connections the owner.
func TestViewsProcessTree(t *testing.T) {
	db, _ := newDB(t)
	f := servertest.NewFixture(t, "h1")
	base := servertest.HostileBase()
	ids := func(p event.Proc) event.Proc {
		p.UID, p.EUID, p.GID, p.EGID, p.AUID, p.SessionID = 1000, 1000, 1000, 1000, 1000, 1
		return p
	}
	type life struct {
		pid            int32
		start          int64
		ppid           int32
		pstart         int64
		exe            string
		argv           string
		exitCode, sig  event.Opt[int32]
		forkAt, execAt int64
	}
	lives := []life{
		{pid: 100, start: 10, ppid: 1, pstart: 0, exe: "/bin/bash", argv: "bash\x00", forkAt: 0, execAt: 1},
		{pid: 200, start: 20, ppid: 100, pstart: 10, exe: "/usr/bin/make", argv: "make\x00-j2\x00", forkAt: 2, execAt: 3},
		{pid: 300, start: 30, ppid: 200, pstart: 20, exe: "/usr/bin/cc", argv: "cc\x00-c\x00a b.c\x00", forkAt: 4, execAt: 5, exitCode: event.Some[int32](1)},
		{pid: 400, start: 40, ppid: 100, pstart: 10, exe: "/bin/sleep", argv: "sleep\x009\x00", forkAt: 6, execAt: 7, sig: event.Some[int32](9)},
		{pid: 300, start: 90, ppid: 1, pstart: 0, exe: "/usr/sbin/cron", argv: "cron\x00", forkAt: 20, execAt: 21},
	}
	var procs []event.Proc
	for _, l := range lives {
		ps := event.Some(l.pstart)
		procs = append(procs,
			ids(event.Proc{TS: base + l.forkAt*1000, Event: event.ProcFork, PID: l.pid, TID: l.pid, PPID: l.ppid, ProcStart: l.start, ParentStart: ps}),
			ids(event.Proc{TS: base + l.execAt*1000, Event: event.ProcExec, PID: l.pid, TID: l.pid, PPID: l.ppid, ProcStart: l.start, ParentStart: ps,
				Exe: []byte(l.exe), Argv: []byte(l.argv), Comm: []byte(l.exe[len(l.exe)-3:])}))
		if l.exitCode.Valid || l.sig.Valid {
			procs = append(procs, ids(event.Proc{TS: base + 15000, Event: event.ProcExit, PID: l.pid, TID: l.pid, PPID: l.ppid, ProcStart: l.start,
				ParentStart: ps, ExitCode: l.exitCode, ExitSignal: l.sig}))
		}
	}
	// make exec'd twice (re-exec of itself): the first exec describes it.
	procs = append(procs, ids(event.Proc{TS: base + 9000, Event: event.ProcExec, PID: 200, TID: 200, PPID: 100, ProcStart: 20,
		ParentStart: event.Some[int64](10), Exe: []byte("/usr/bin/gmake"), Argv: []byte("gmake\x00")}))
	socks := []event.Sock{{TS: base + 8000, Event: event.SockClose, Proto: "tcp", Family: 4, State: "CLOSE", Direction: event.DirOut,
		LocalAddr: []byte{127, 0, 0, 1}, LocalPort: 5555, RemoteAddr: []byte{192, 0, 2, 7}, RemotePort: 443, Cookie: 77, UID: 1000,
		PID: event.Some[int32](300), ProcStart: event.Some[int64](30)}}
	f.Seal("h1", func(s event.Sink) { event.AppendAll(s, procs, nil, socks, nil, nil) })
	if s := run(t, db, f.State, 1); s.Loaded != 1 {
		t.Fatalf("run: %s", s)
	}

	type proc struct {
		PID          int32
		Start        int64
		Exe, Cmdline string
		Execs        int
		Code, Sig    int
		PPID         int32
		PStart       int64
		Exited       bool
	}
	var got []proc
	testutil.EachRow(t, db, func(row testutil.Row) {
		var p proc
		row.Scan(&p.PID, &p.Start, &p.Exe, &p.Cmdline, &p.Execs, &p.Code, &p.Sig, &p.PPID, &p.PStart, &p.Exited)
		got = append(got, p)
	}, `SELECT pid, proc_start, exe, cmdline, exec_count, COALESCE(exit_code, -1), COALESCE(exit_signal, -1),
		parent_pid, parent_start, exit_ts IS NOT NULL FROM processes WHERE host_id = 'h1' AND boot_id = 'boot-h1' ORDER BY pid, proc_start`)
	want := []proc{
		{100, 10, "/bin/bash", "bash", 1, -1, -1, 1, 0, false},
		{200, 20, "/usr/bin/make", "make -j2", 2, -1, -1, 100, 10, false},
		{300, 30, "/usr/bin/cc", "cc -c a b.c", 1, 1, -1, 200, 20, true},
		{300, 90, "/usr/sbin/cron", "cron", 1, -1, -1, 1, 0, false},
		{400, 40, "/bin/sleep", "sleep 9", 1, -1, 9, 100, 10, true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("processes (-want +got):\n%s", diff)
	}

	gotEdges := servertest.Lines(t, db, `SELECT CONCAT(COALESCE(parent_exe, '?'), ' -> ', child_exe) FROM process_tree
		WHERE host_id = 'h1' AND parent_pid <> 1 ORDER BY child_pid, child_start`)
	if diff := cmp.Diff([]string{"/bin/bash -> /usr/bin/make", "/usr/bin/make -> /usr/bin/cc", "/bin/bash -> /bin/sleep"}, gotEdges); diff != "" {
		t.Errorf("process_tree edges (-want +got):\n%s", diff)
	}

	var owner, remote string
	if err := db.QueryRow("SELECT exe, CONCAT(remote_ip, ':', remote_port) FROM connections WHERE cookie = 77").Scan(&owner, &remote); err != nil {
		t.Fatal(err)
	}
	if owner != "/usr/bin/cc" || remote != "192.0.2.7:443" {
		t.Errorf("connections: owner %q remote %q, want /usr/bin/cc 192.0.2.7:443", owner, remote)
	}
	var kinds string
	if err := db.QueryRow("SELECT GROUP_CONCAT(DISTINCT kind ORDER BY kind) FROM timeline WHERE host_id = 'h1' AND pid = 300").Scan(&kinds); err != nil || kinds != "proc,sock" {
		t.Errorf("timeline kinds for pid 300: %q (%v), want proc,sock", kinds, err)
	}
}
