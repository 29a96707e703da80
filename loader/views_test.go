package loader

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/servertest"
	"github.com/pofr/pofr/internal/testutil"
	"github.com/pofr/pofr/schema"
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

// TestViewPeerConnections loads two synthetic hosts whose sockets are the
// two ends of some connections and not of others, and checks that
// peer_connections pairs exactly the right ones, with the owner process and
// user on both ends:
//
//   - alpha curl 10.0.0.1:40000 -> beta python3 10.0.0.2:8080 (paired);
//   - alpha curl 192.168.1.5:40002 -> beta :8080, seen by beta from the NAT
//     address 198.51.100.1:40002 (paired: only the port must agree);
//   - beta ssh [2001:db8::2]:50000 -> alpha sshd [2001:db8::1]:22 (paired,
//     the other way round);
//   - alpha -> 127.0.0.1:8080 and beta's 127.0.0.1:8080 (loopback: never);
//   - alpha -> 10.0.0.2:9090 an hour before beta's socket on that port with
//     the right ports (lifetimes do not overlap: not paired);
//   - beta -> its own 10.0.0.2:8080 (same host: not a peer connection);
//   - alpha -> 10.0.0.2:8080 from port 40003 over udp while beta's end is
//     tcp (protocol differs: not paired).
func TestViewPeerConnections(t *testing.T) {
	db, _ := newDB(t)
	f := servertest.NewFixture(t, "alpha", "beta")
	base := servertest.HostileBase()
	const sec = int64(1e9)
	ip4 := func(a, b, c, d byte) []byte { return []byte{a, b, c, d} }
	ip6 := func(last byte) []byte {
		return []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last}
	}
	// sock returns the open and close rows of one socket alive from t0 to t1.
	sock := func(cookie uint64, proto, dir string, la []byte, lp uint16, ra []byte, rp uint16, pid int32, start int64, uid uint32, t0, t1 int64) []event.Sock {
		fam := uint8(4)
		if len(la) == 16 {
			fam = 6
		}
		s := event.Sock{TS: t0, Event: event.SockOpen, Proto: proto, Family: fam, State: "ESTABLISHED", Direction: dir,
			LocalAddr: la, LocalPort: lp, RemoteAddr: ra, RemotePort: rp, Cookie: cookie, UID: uid,
			PID: event.Some(pid), ProcStart: event.Some(start), FirstTS: event.Some(t0)}
		c := s
		c.TS, c.Event, c.State, c.Flags = t1, event.SockClose, "CLOSE", event.SockFlagFromDestroy
		c.BytesSent, c.BytesRecv = event.Some[uint64](78), event.Some[uint64](1234)
		return []event.Sock{s, c}
	}
	exec := func(pid int32, start int64, exe, argv string, uid uint32) event.Proc {
		return event.Proc{TS: base - 10*sec, Event: event.ProcExec, PID: pid, TID: pid, PPID: 1, ProcStart: start,
			ParentStart: event.Some[int64](0), UID: uid, EUID: uid, GID: uid, EGID: uid, AUID: uid, SessionID: 1,
			Exe: []byte(exe), Argv: []byte(argv), Comm: []byte(exe[strings.LastIndexByte(exe, '/')+1:])}
	}
	accts := func(names map[uint32]string) []event.Account {
		var out []event.Account
		for id, n := range names {
			out = append(out, event.Account{TS: base - 20*sec, Kind: event.AcctUser, ID: id, Name: []byte(n)})
		}
		return out
	}

	var alphaSocks, betaSocks []event.Sock
	add := func(dst *[]event.Sock, s []event.Sock) { *dst = append(*dst, s...) }
	// Paired: curl -> python3.
	add(&alphaSocks, sock(11, "tcp", event.DirOut, ip4(10, 0, 0, 1), 40000, ip4(10, 0, 0, 2), 8080, 200, 2000, 1000, base, base+sec))
	add(&betaSocks, sock(21, "tcp", event.DirIn, ip4(10, 0, 0, 2), 8080, ip4(10, 0, 0, 1), 40000, 700, 7000, 1001, base+sec/100, base+sec))
	// Paired behind NAT.
	add(&alphaSocks, sock(12, "tcp", event.DirOut, ip4(192, 168, 1, 5), 40002, ip4(10, 0, 0, 2), 8080, 200, 2000, 1000, base+2*sec, base+3*sec))
	add(&betaSocks, sock(22, "tcp", event.DirIn, ip4(10, 0, 0, 2), 8080, ip4(198, 51, 100, 1), 40002, 700, 7000, 1001, base+2*sec, base+3*sec))
	// Paired over IPv6, beta the client; alpha's clock 3 s behind (within the slack).
	add(&betaSocks, sock(23, "tcp", event.DirOut, ip6(2), 50000, ip6(1), 22, 710, 7100, 1001, base+10*sec, base+11*sec))
	add(&alphaSocks, sock(13, "tcp", event.DirIn, ip6(1), 22, ip6(2), 50000, 300, 3000, 0, base+7*sec, base+8*sec))
	// Loopback on both.
	add(&alphaSocks, sock(14, "tcp", event.DirOut, ip4(127, 0, 0, 1), 40010, ip4(127, 0, 0, 1), 8080, 200, 2000, 1000, base, base+sec))
	add(&betaSocks, sock(24, "tcp", event.DirIn, ip4(127, 0, 0, 1), 8080, ip4(127, 0, 0, 1), 40010, 700, 7000, 1001, base, base+sec))
	// No overlap in time.
	add(&alphaSocks, sock(15, "tcp", event.DirOut, ip4(10, 0, 0, 1), 40020, ip4(10, 0, 0, 2), 9090, 200, 2000, 1000, base, base+sec))
	add(&betaSocks, sock(25, "tcp", event.DirIn, ip4(10, 0, 0, 2), 9090, ip4(10, 0, 0, 1), 40020, 700, 7000, 1001, base+3600*sec, base+3601*sec))
	// Same host: beta to itself.
	add(&betaSocks, sock(26, "tcp", event.DirOut, ip4(10, 0, 0, 2), 40030, ip4(10, 0, 0, 2), 8080, 710, 7100, 1001, base, base+sec))
	add(&betaSocks, sock(27, "tcp", event.DirIn, ip4(10, 0, 0, 2), 8080, ip4(10, 0, 0, 2), 40030, 700, 7000, 1001, base, base+sec))
	// Protocol differs.
	add(&alphaSocks, sock(16, "udp", event.DirOut, ip4(10, 0, 0, 1), 40003, ip4(10, 0, 0, 2), 8080, 200, 2000, 1000, base, base+sec))
	add(&betaSocks, sock(28, "tcp", event.DirIn, ip4(10, 0, 0, 2), 8080, ip4(10, 0, 0, 1), 40003, 700, 7000, 1001, base, base+sec))

	alphaProcs := []event.Proc{exec(200, 2000, "/usr/bin/curl", "curl\x00http://10.0.0.2:8080/\x00", 1000), exec(300, 3000, "/usr/sbin/sshd", "sshd: bob\x00", 0)}
	betaProcs := []event.Proc{exec(700, 7000, "/usr/bin/python3", "python3\x00-m\x00http.server\x008080\x00", 1001), exec(710, 7100, "/usr/bin/ssh", "ssh\x00alpha\x00", 1001)}
	f.Seal("alpha", func(s event.Sink) {
		event.AppendAll(s, alphaProcs, nil, alphaSocks, nil, accts(map[uint32]string{1000: "alice", 0: "root"}))
	})
	f.Seal("beta", func(s event.Sink) {
		event.AppendAll(s, betaProcs, nil, betaSocks, nil, accts(map[uint32]string{1001: "bob"}))
	})
	if s := run(t, db, f.State, 2); s.Loaded != 2 {
		t.Fatalf("run: %s, want 2 loaded", s)
	}

	got := servertest.Lines(t, db, `SELECT CONCAT_WS(' ', proto, client_host, client_cookie, CONCAT(client_ip, ':', client_port),
		COALESCE(client_pid, '?'), COALESCE(CONVERT(client_user USING utf8mb4), '?'), COALESCE(client_exe_text, '?'),
		'->', server_host, server_cookie, CONCAT(server_ip, ':', server_port), 'seen', server_seen_ip,
		COALESCE(server_pid, '?'), COALESCE(CONVERT(server_user USING utf8mb4), '?'), COALESCE(server_cmdline, '?'),
		client_bytes_sent)
		FROM peer_connections ORDER BY client_first_ts, client_cookie`)
	want := []string{
		"tcp alpha 11 10.0.0.1:40000 200 alice /usr/bin/curl -> beta 21 10.0.0.2:8080 seen 10.0.0.1 700 bob python3 -m http.server 8080 78",
		"tcp alpha 12 192.168.1.5:40002 200 alice /usr/bin/curl -> beta 22 10.0.0.2:8080 seen 198.51.100.1 700 bob python3 -m http.server 8080 78",
		"tcp beta 23 2001:db8::2:50000 710 bob /usr/bin/ssh -> alpha 13 2001:db8::1:22 seen 2001:db8::2 300 root sshd: bob 78",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("peer_connections (-want +got):\n%s", diff)
	}

	// The join finds the server end through the local_end index once the
	// table is not tiny: 20,000 sockets of a third host, all on other ports.
	if _, err := db.Exec(`INSERT INTO sock_events (segment_id, row_no, host_id, boot_id, ts, ts_ns, tz_offset, event, proto, family,
		state, direction, local_addr, local_port, remote_addr, remote_port, cookie, flags)
		SELECT 999999, seq, 'gamma', 'boot-gamma', UTC_TIMESTAMP(6), 0, 0, 'open', 'tcp', 4, 'ESTABLISHED', 'in',
		UNHEX(LPAD(HEX(seq), 8, '0')), 443, 0x0a000001, 1024 + seq % 60000, seq, 0 FROM seq_1_to_20000`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("ANALYZE TABLE sock_events"); err != nil {
		t.Fatal(err)
	}
	var plan strings.Builder
	testutil.EachRow(t, db, func(row testutil.Row) {
		cols, vals := row.Text()
		for i, v := range vals {
			fmt.Fprintf(&plan, "%s=%s ", cols[i], v.String)
		}
		plan.WriteString("\n")
	}, `EXPLAIN SELECT * FROM peer_connections WHERE client_host = 'alpha'`)
	if !strings.Contains(plan.String(), "key=local_end") {
		t.Errorf("peer_connections does not use the local_end index:\n%s", plan.String())
	}
}

// TestMigration003Again: migration 003 applied a second time (as after a
// crash in the middle of it) changes nothing and fails nothing.
func TestMigration003Again(t *testing.T) {
	db, _ := newDB(t)
	var m schema.Migration
	for _, x := range schema.Migrations() {
		if x.Version == 3 {
			m = x
		}
	}
	if m.SQL == "" {
		t.Fatal("no migration 003")
	}
	for i, st := range schema.Statements(m.SQL) {
		if _, err := db.Exec(st); err != nil {
			t.Errorf("statement %d again: %v", i+1, err)
		}
	}
	var n int
	if err := db.QueryRow(`SELECT COUNT(DISTINCT INDEX_NAME) FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'sock_events' AND INDEX_NAME = 'local_end'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("local_end indexes: %d (%v), want 1", n, err)
	}
}
