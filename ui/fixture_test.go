package ui

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/servertest"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/internal/testutil"
	"github.com/pofr/pofr/loader"
	"github.com/pofr/pofr/schema"
	"github.com/pofr/pofr/spool"
	"github.com/pofr/pofr/wire"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// t0 is when the fixture's record starts: ten minutes ago, so that alpha
// is a live host on the fleet page; beta's data is three hours older.
var t0 = time.Now().UTC().Truncate(time.Second).Add(-10 * time.Minute)

func at(d time.Duration) int64 { return t0.Add(d).UnixNano() }

// The hostile process: its argv holds HTML and script, quotes, a newline, a
// right-to-left override and bytes that are not UTF-8; its exe and a path
// it creates hold markup too. Rendering any of it as HTML would run script
// (an alert, or a changed document title).
const (
	hostilePID   = 300
	hostileExe   = "/tmp/<svg onload=alert(3)>"
	hostilePath  = "/tmp/\"><script>document.title='pwned'</script>\n\u202egnp.exe"
	hostileQName = "<script>alert(3)</script>.example."
)

var hostileArgs = []string{
	"<script>alert(1)</script>",
	"<img src=x onerror=alert(2)>",
	`"double" 'single' ` + "`back`",
	"line1\nline2",
	"\u202eevil.txt",
	"\xff\xfe bytes",
}

func hostileArgv() string { return strings.Join(hostileArgs, "\x00") + "\x00" }

// fixture is a private database loaded through the real spool writer and
// loader, and the reader account's DSN.
type fixture struct {
	db        *sql.DB
	readerDSN string
}

// snapshotter appends snapshot rows of processes running when recording
// started.
type snapshotter func(pid, ppid int32, start, pstart int64, uid uint32, exe, argv string)

func snapshots(s event.Sink) snapshotter {
	return func(pid, ppid int32, start, pstart int64, uid uint32, exe, argv string) {
		s.AppendProc(&event.Proc{TS: at(0), Event: event.ProcSnapshot, PID: pid, TID: pid, PPID: ppid, ProcStart: start,
			ParentStart: event.Some(pstart), UID: uid, EUID: uid, GID: uid, EGID: uid, AUID: uid, SessionID: event.NoID,
			Exe: []byte(exe), Argv: []byte(argv), Comm: []byte(filepath.Base(exe))})
	}
}

// procLife appends fork, exec and exit rows of a child of bash (pid 100).
func procLife(s event.Sink, pid int32, from, to time.Duration, uid uint32, exe, argv string, exit event.Proc) {
	start := int64(pid) * 1000
	s.AppendProc(&event.Proc{TS: at(from), Event: event.ProcFork, PID: pid, TID: pid, PPID: 100, ProcStart: start,
		ParentStart: event.Some(int64(5000)), UID: uid, EUID: uid, GID: uid, EGID: uid, AUID: event.NoID, SessionID: event.NoID,
		Comm: []byte("bash")})
	s.AppendProc(&event.Proc{TS: at(from + time.Millisecond), Event: event.ProcExec, PID: pid, TID: pid, PPID: 100, ProcStart: start,
		ParentStart: event.Some(int64(5000)), UID: uid, EUID: uid, GID: uid, EGID: uid, AUID: uid, SessionID: 7,
		Exe: []byte(exe), Argv: []byte(argv), Comm: []byte("x"), Cwd: []byte("/home/alice")})
	exit.TS, exit.Event, exit.PID, exit.TID, exit.PPID, exit.ProcStart = at(to), event.ProcExit, pid, pid, 100, start
	exit.ParentStart = event.Some(int64(5000))
	exit.UID, exit.EUID, exit.GID, exit.EGID, exit.AUID, exit.SessionID = uid, uid, uid, uid, uid, 7
	s.AppendProc(&exit)
}

// alphaRows: init, a shell of alice (logged in from 192.0.2.7), curl fetching a page over TCP, the
// hostile process (alive from 5 s to 7 s), then more activity after a gap.
func alphaRows(s event.Sink) {
	for id, name := range map[uint32]string{0: "root", 1000: "alice", 33: "www-data"} {
		s.AppendAccount(&event.Account{TS: at(0), Kind: event.AcctUser, ID: id, Name: []byte(name)})
	}
	snap := snapshots(s)
	snap(1, 0, 1000, 0, 0, "/usr/lib/systemd/systemd", "/sbin/init\x00splash\x00")
	snap(100, 1, 5000, 1000, 1000, "/usr/bin/bash", "-bash\x00")
	snap(500, 1, 6000, 1000, 33, "/usr/sbin/httpd", "/usr/sbin/httpd\x00-DFOREGROUND\x00")
	s.(event.LoginSink).AppendLogin(&event.Login{TS: at(500 * time.Millisecond), Kind: event.LoginLogin, File: "wtmp", UTType: 7,
		PID: 99, TTY: []byte("pts/0"), User: []byte("alice"), RemoteHost: []byte("192.0.2.7"), RemoteAddr: []byte{192, 0, 2, 7}})
	procLife(s, 200, time.Second, 4*time.Second, 1000, "/usr/bin/curl", "curl\x00http://10.0.0.2:8080/\x00",
		event.Proc{ExitCode: event.Some(int32(0))})
	s.AppendFile(&event.File{TS: at(2500 * time.Millisecond), LastTS: at(2500 * time.Millisecond), Count: 1, PID: 200,
		ProcStart: event.Some(int64(200000)), UID: 1000, Op: event.FileWrite, Path: []byte("/home/alice/out.html")})
	s.AppendSock(&event.Sock{TS: at(2 * time.Second), Event: event.SockOpen, Proto: "tcp", Family: 4, State: "ESTABLISHED",
		Direction: event.DirOut, LocalAddr: []byte{10, 0, 0, 1}, LocalPort: 40000, RemoteAddr: []byte{10, 0, 0, 2}, RemotePort: 8080,
		Cookie: 11, UID: 1000, PID: event.Some(int32(200)), ProcStart: event.Some(int64(200000)), FirstTS: event.Some(at(2 * time.Second))})
	// The name curl resolved 10.0.0.2 from, hostile: the timeline shows it
	// on the socket row, escaped.
	s.(event.DNSSink).AppendDNS(&event.DNS{TS: at(1900 * time.Millisecond), Event: event.DNSResponse, Proto: "udp",
		ClientAddr: []byte{10, 0, 0, 1}, ClientPort: 53000, ServerAddr: []byte{10, 0, 0, 53}, ServerPort: 53,
		PID: event.Some(int32(200)), ProcStart: event.Some(int64(200000)), QName: []byte(hostileQName),
		RCode: event.Some[uint8](0), AnswerAddrs: []byte(",0A000002,")})
	procLife(s, hostilePID, 5*time.Second, 7*time.Second, 1000, hostileExe, hostileArgv(), event.Proc{ExitSignal: event.Some(int32(9))})
	s.AppendFile(&event.File{TS: at(6 * time.Second), LastTS: at(6 * time.Second), Count: 1, PID: hostilePID,
		ProcStart: event.Some(int64(hostilePID * 1000)), UID: 1000, Op: event.FileCreate, Path: []byte(hostilePath)})
}

func alphaRows2(s event.Sink) {
	s.AppendGap(&event.Gap{FromTS: at(20 * time.Second), ToTS: at(25 * time.Second), Source: event.SourceProc,
		Lost: event.Some(int64(3)), Reason: "netlink receive buffer overflow (ENOBUFS)"})
	procLife(s, 400, 26*time.Second, 28*time.Second, 1000, "/usr/bin/ls", "ls\x00-l\x00", event.Proc{ExitCode: event.Some(int32(0))})
	s.AppendProc(&event.Proc{TS: at(30 * time.Second), Event: event.ProcExit, PID: 500, TID: 500, PPID: 1, ProcStart: 6000,
		ParentStart: event.Some(int64(1000)), UID: 33, EUID: 33, GID: 33, EGID: 33, AUID: 33, SessionID: event.NoID,
		ExitCode: event.Some(int32(0))})
}

func betaRows(s event.Sink) {
	snap := func(pid, ppid int32, start, pstart int64, uid uint32, exe, argv string) {
		s.AppendProc(&event.Proc{TS: at(-3 * time.Hour), Event: event.ProcSnapshot, PID: pid, TID: pid, PPID: ppid, ProcStart: start,
			ParentStart: event.Some(pstart), UID: uid, EUID: uid, GID: uid, EGID: uid, AUID: uid, SessionID: event.NoID,
			Exe: []byte(exe), Argv: []byte(argv), Comm: []byte(filepath.Base(exe))})
	}
	snap(1, 0, 1000, 0, 0, "/usr/lib/systemd/systemd", "/sbin/init\x00")
	snap(700, 1, 7000, 1000, 1000, "/usr/bin/python3", "python3\x00-m\x00http.server\x008080\x00")
}

// newFixture starts (or reuses) the private MariaDB, creates a database with
// the schema and a reader account, and loads alpha (host-a) and beta
// (host-b) through the spool writer and the loader.
func newFixture(t testing.TB) *fixture {
	t.Helper()
	return loadFixture(t, map[string][]func(event.Sink){
		"host-a": {alphaRows, alphaRows2},
		"host-b": {betaRows},
	})
}

// loadFixture loads each host's fills, one sealed segment per fill.
func loadFixture(t testing.TB, hosts map[string][]func(event.Sink)) *fixture {
	t.Helper()
	db, dsn := servertest.SchemaDB(t, loader.OpenDB)
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	dbName := cfg.DBName
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	reader := "r_" + dbName
	if len(reader) > 80 {
		reader = reader[:80]
	}
	if err := schema.CreateUsers(ctx, db, dbName, schema.Users{Host: "localhost", Loader: "l_" + dbName[:min(len(dbName), 70)],
		LoaderPassword: "loader-pw", Reader: reader, ReaderPassword: "reader-pw"}); err != nil {
		t.Fatal(err)
	}
	cfg.User, cfg.Passwd = reader, "reader-pw"

	state := statedir.Dir(t.TempDir())
	names := map[string]string{"host-a": "alpha", "host-b": "beta"}
	for host, fills := range hosts {
		name := names[host]
		if name == "" {
			name = host
		}
		servertest.SpoolHost(t, state, host, wire.Facts{Hostname: name, MachineID: "m-" + host, IPs: []string{"10.0.0.1"}}, t0.Add(-time.Hour),
			spool.Options{MaxSegmentAge: time.Hour, MaxSegmentBytes: 32 << 20, Quota: 8 << 30, Hostname: name, Version: "test"}, fills...)
	}
	sum, err := loader.Once(ctx, loader.Options{DB: db, StateDir: state, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Loaded != sum.Segments || sum.Quarantined != 0 {
		t.Fatalf("load: %s", sum)
	}
	return &fixture{db: db, readerDSN: cfg.FormatDSN()}
}

// testLogger logs into the test's output.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// startUI runs ui.Run on a free loopback port with the reader account and
// returns its base URL; it stops when the test ends.
func startUI(t testing.TB, f *fixture, cfg Config) string {
	t.Helper()
	cfg.DSN = f.readerDSN
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	pr, pw := io.Pipe()
	testutil.Go(t, "ui.Run", func(ctx context.Context) error {
		err := Run(ctx, cfg, testLogger(t), pw)
		pw.CloseWithError(fmt.Errorf("ui.Run returned: %v", err))
		return err
	})
	line := make([]byte, 256)
	n, err := pr.Read(line)
	if err != nil {
		t.Fatalf("ui did not start: %v", err)
	}
	go io.Copy(io.Discard, pr)
	s := strings.TrimSpace(string(line[:n]))
	u, ok := strings.CutPrefix(s, "pofr-server ui listening on ")
	if !ok {
		t.Fatalf("ui printed %q", s)
	}
	return strings.TrimSuffix(u, "/")
}
