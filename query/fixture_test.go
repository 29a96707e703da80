package query

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/servertest"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/internal/testutil"
	"github.com/pofr/pofr/loader"
	"github.com/pofr/pofr/spool"
	"github.com/pofr/pofr/wire"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// The demo data set: two hosts, alpha (host-a, UTC+2) and beta (host-b,
// UTC), recorded from t0 on. A shell of alice on alpha runs curl, which
// connects to a python web server of bob on beta; a hostile program with
// escape sequences in its argv and paths; toma runs nmap; httpd reads under
// /usr; an outsider connects to beta's sshd.
var t0 = time.Date(2024, 6, 20, 1, 30, 0, 0, time.UTC)

func at(d time.Duration) int64 { return t0.Add(d).UnixNano() }

const (
	hostileExe  = "/tmp/evil\x1b[2J"
	hostileArgv = "evil\x00\x1b[2Jclear\x00line1\nline2\x00tab\there\x00\xff\xfe\x00"
	hostilePath = "/tmp/x\x1b]0;pwned\x07\n\xff"
)

// The SHA-256 of alpha's curl and of its hostile program.
var (
	shaCurl = sha256.Sum256([]byte("curl"))
	shaEvil = sha256.Sum256([]byte("evil"))
)

var (
	ipA    = []byte{10, 0, 0, 1}
	ipB    = []byte{10, 0, 0, 2}
	ipOut  = []byte{203, 0, 113, 5}
	ipZero = []byte{0, 0, 0, 0}
)

func alphaRows(s event.Sink) {
	acct := func(id uint32, name string) {
		s.AppendAccount(&event.Account{TS: at(0), Kind: event.AcctUser, ID: id, Name: []byte(name)})
	}
	acct(0, "root")
	acct(33, "www-data")
	acct(1000, "alice")
	acct(1001, "toma")
	snap(s, 1, 0, 1000, 0, 0, "/usr/lib/systemd/systemd", "/sbin/init\x00")
	snap(s, 100, 1, 5000, 1000, 1000, "/usr/bin/bash", "-bash\x00")
	snap(s, 500, 1, 6000, 1000, 33, "/usr/sbin/httpd", "/usr/sbin/httpd\x00-DFOREGROUND\x00")
	life := func(pid int32, start int64, from, to time.Duration, uid uint32, exe, argv string, exit event.Proc) {
		s.AppendProc(&event.Proc{TS: at(from), Event: event.ProcFork, PID: pid, TID: pid, PPID: 100, ProcStart: start,
			ParentStart: event.Some(int64(5000)), UID: uid, EUID: uid, GID: uid, EGID: uid, AUID: event.NoID, SessionID: event.NoID,
			Comm: []byte("bash")})
		s.AppendProc(&event.Proc{TS: at(from + time.Millisecond), Event: event.ProcExec, PID: pid, TID: pid, PPID: 100, ProcStart: start,
			ParentStart: event.Some(int64(5000)), UID: uid, EUID: uid, GID: uid, EGID: uid, AUID: uid, SessionID: 7,
			Exe: []byte(exe), Argv: []byte(argv), Comm: []byte(filepath.Base(exe)), Cwd: []byte("/home/alice")})
		exit.TS, exit.Event, exit.PID, exit.TID, exit.PPID, exit.ProcStart = at(to), event.ProcExit, pid, pid, 100, start
		exit.ParentStart = event.Some(int64(5000))
		exit.UID, exit.EUID, exit.GID, exit.EGID, exit.AUID, exit.SessionID = uid, uid, uid, uid, uid, 7
		s.AppendProc(&exit)
	}
	life(200, 200000, time.Second, 4*time.Second, 1000, "/usr/bin/curl", "curl\x00http://10.0.0.2:8080/\x00",
		event.Proc{ExitCode: event.Some(int32(0))})
	file := func(d time.Duration, pid int32, start int64, uid uint32, op, path string) {
		s.AppendFile(&event.File{TS: at(d), LastTS: at(d), Count: 1, PID: pid, ProcStart: event.Some(start), UID: uid,
			Op: op, Path: []byte(path)})
	}
	file(1500*time.Millisecond, 200, 200000, 1000, event.FileOpen, "/etc/hosts")
	file(1600*time.Millisecond, 200, 200000, 1000, event.FileOpen, "/usr/lib/x86_64-linux-gnu/libcurl.so.4")
	file(2500*time.Millisecond, 200, 200000, 1000, event.FileWrite, "/home/alice/out.html")
	s.AppendSock(&event.Sock{TS: at(2 * time.Second), Event: event.SockOpen, Proto: "tcp", Family: 4, State: "ESTABLISHED",
		Direction: event.DirOut, LocalAddr: ipA, LocalPort: 40000, RemoteAddr: ipB, RemotePort: 8080, Cookie: 11,
		UID: 1000, PID: event.Some(int32(200)), ProcStart: event.Some(int64(200000)), FirstTS: event.Some(at(2 * time.Second))})
	s.AppendSock(&event.Sock{TS: at(3 * time.Second), Event: event.SockClose, Proto: "tcp", Family: 4, State: "CLOSE",
		Direction: event.DirOut, LocalAddr: ipA, LocalPort: 40000, RemoteAddr: ipB, RemotePort: 8080, Cookie: 11,
		UID: 1000, PID: event.Some(int32(200)), ProcStart: event.Some(int64(200000)), FirstTS: event.Some(at(2 * time.Second)),
		BytesSent: event.Some(uint64(78)), BytesRecv: event.Some(uint64(1234)), Flags: event.SockFlagFromDestroy})

	// curl resolved beta's name before it connected: its query and the
	// answer, owned by curl; and a later answer of another name with the
	// same address, owned by nobody known (query conns prefers curl's own).
	dns := func(d time.Duration, ev string, name string, owned bool, answer []byte) {
		r := event.DNS{TS: at(d), Event: ev, Proto: "udp", ClientAddr: ipA, ClientPort: 53000, ServerAddr: []byte{10, 0, 0, 53},
			ServerPort: 53, ID: 77, QName: []byte(name), QType: event.Some[uint16](1)}
		if owned {
			r.PID, r.ProcStart = event.Some(int32(200)), event.Some(int64(200000))
		} else {
			r.Flags = event.DNSFlagOwnerUnknown
		}
		if answer != nil {
			r.RCode = event.Some[uint8](0)
			r.Answers = []byte(name + " A 60 10.0.0.2\n")
			r.AnswerAddrs = []byte("," + strings.ToUpper(hex.EncodeToString(answer)) + ",")
		}
		s.(event.DNSSink).AppendDNS(&r)
	}
	dns(1900*time.Millisecond, event.DNSResponse, "other.example.", false, ipB)
	dns(1800*time.Millisecond, event.DNSQuery, "beta.example.", true, nil)
	dns(1810*time.Millisecond, event.DNSResponse, "beta.example.", true, ipB)

	life(300, 300000, 5*time.Second, 7*time.Second, 1000, hostileExe, hostileArgv, event.Proc{ExitSignal: event.Some(int32(9))})
	exe := func(d time.Duration, pid int32, ino uint64, sum []byte, path string) {
		s.(event.ExeSink).AppendExecutable(&event.Executable{TS: at(d), LastTS: at(d), Count: 1, PID: pid, Dev: 2049, Inode: ino,
			Size: 4096, MTimeNS: 1, CTimeNS: 2, SHA256: sum, How: event.ExeByHandle, Path: []byte(path)})
	}
	exe(time.Second+2*time.Millisecond, 200, 11, shaCurl[:], "/usr/bin/curl")
	exe(5*time.Second+2*time.Millisecond, 300, 12, shaEvil[:], hostileExe)
	ls := s.(event.LoginSink)
	ls.AppendLogin(&event.Login{TS: at(500 * time.Millisecond), Kind: event.LoginFailed, File: "btmp", UTType: 6, PID: 90,
		TTY: []byte("ssh:notty"), User: []byte("root"), RemoteHost: []byte("198.51.100.9"), RemoteAddr: []byte{198, 51, 100, 9}})
	ls.AppendLogin(&event.Login{TS: at(600 * time.Millisecond), Kind: event.LoginFailed, File: "btmp", UTType: 6, PID: 91,
		TTY: []byte("ssh:notty"), User: []byte("adm\x1b[2Jin"), RemoteHost: []byte("2001:db8::1"),
		RemoteAddr: []byte{0x20, 1, 0xd, 0xb8, 15: 1}})
	ls.AppendLogin(&event.Login{TS: at(time.Second), Kind: event.LoginLogin, File: "wtmp", UTType: 7, PID: 200,
		TTY: []byte("pts/0"), User: []byte("alice"), RemoteHost: []byte("192.0.2.7"), RemoteAddr: []byte{192, 0, 2, 7}})
	file(6*time.Second, 300, 300000, 1000, event.FileCreate, hostilePath)

	life(400, 400000, 8*time.Second, 9*time.Second, 1001, "/usr/bin/nmap", "nmap\x00-P0\x00192.168.18.34\x00",
		event.Proc{ExitCode: event.Some(int32(0))})

	file(10*time.Second, 500, 6000, 33, event.FileOpen, "/usr/share/doc/index.html")
	file(11*time.Second, 500, 6000, 33, event.FileOpen, "/var/www/html/index.html")
	file(12*time.Second, 500, 6000, 33, event.FileOpen, "/usr_local_not_under_usr")
}

func alphaRows2(s event.Sink) {
	s.AppendGap(&event.Gap{FromTS: at(20 * time.Second), ToTS: at(25 * time.Second), Source: event.SourceProc,
		Lost: event.Some(int64(3)), Reason: "netlink receive buffer overflow (ENOBUFS)"})
	s.AppendProc(&event.Proc{TS: at(30 * time.Second), Event: event.ProcExit, PID: 500, TID: 500, PPID: 1, ProcStart: 6000,
		ParentStart: event.Some(int64(1000)), UID: 33, EUID: 33, GID: 33, EGID: 33, AUID: 33, SessionID: event.NoID,
		ExitCode: event.Some(int32(0))})
}

// snap appends the snapshot row of a process running when the recording
// started.
func snap(s event.Sink, pid, ppid int32, start, pstart int64, uid uint32, exe, argv string) {
	s.AppendProc(&event.Proc{TS: at(0), Event: event.ProcSnapshot, PID: pid, TID: pid, PPID: ppid, ProcStart: start,
		ParentStart: event.Some(pstart), UID: uid, EUID: uid, GID: uid, EGID: uid, AUID: uid, SessionID: event.NoID,
		Exe: []byte(exe), Argv: []byte(argv), Comm: []byte(filepath.Base(exe))})
}

func betaRows(s event.Sink) {
	s.AppendAccount(&event.Account{TS: at(0), Kind: event.AcctUser, ID: 0, Name: []byte("root")})
	s.AppendAccount(&event.Account{TS: at(0), Kind: event.AcctUser, ID: 1000, Name: []byte("bob")})
	snap(s, 1, 0, 1000, 0, 0, "/usr/lib/systemd/systemd", "/sbin/init\x00")
	snap(s, 800, 1, 8000, 1000, 0, "/usr/sbin/sshd", "sshd: /usr/sbin/sshd -D [listener]\x00")
	// python3 runs in a Kubernetes container, which the containers table names.
	ctrID := []byte(strings.Repeat("c", 64))
	s.AppendProc(&event.Proc{TS: at(0), Event: event.ProcSnapshot, PID: 700, TID: 700, PPID: 1, ProcStart: 7000,
		ParentStart: event.Some(int64(1000)), UID: 1000, EUID: 1000, GID: 1000, EGID: 1000, AUID: 1000, SessionID: event.NoID,
		Exe: []byte("/usr/bin/python3"), Argv: []byte("python3\x00-m\x00http.server\x008080\x00"), Comm: []byte("python3"),
		Cgroup: []byte("/kubepods.slice/cri-containerd-" + string(ctrID) + ".scope"), ContainerID: ctrID})
	s.(event.ContainerSink).AppendContainer(&event.Container{TS: at(0), ID: ctrID, PID: 700, Runtime: event.RuntimeContainerd,
		Name: []byte("web"), Image: []byte("python:3.12"), Pod: []byte("web-5f7c"), Namespace: []byte("prod")})
	sock := func(d time.Duration, ev, state, dir string, la []byte, lp uint16, ra []byte, rp uint16, cookie uint64, pid int32, start int64, uid uint32) {
		s.AppendSock(&event.Sock{TS: at(d), Event: ev, Proto: "tcp", Family: 4, State: state, Direction: dir,
			LocalAddr: la, LocalPort: lp, RemoteAddr: ra, RemotePort: rp, Cookie: cookie, UID: uid,
			PID: event.Some(pid), ProcStart: event.Some(start), FirstTS: event.Some(at(0))})
	}
	sock(0, event.SockListen, "LISTEN", event.DirListen, ipZero, 8080, ipZero, 0, 21, 700, 7000, 1000)
	sock(0, event.SockListen, "LISTEN", event.DirListen, ipZero, 22, ipZero, 0, 23, 800, 8000, 0)
	s.AppendSock(&event.Sock{TS: at(2*time.Second + 300*time.Microsecond), Event: event.SockOpen, Proto: "tcp", Family: 4,
		State: "ESTABLISHED", Direction: event.DirIn, LocalAddr: ipB, LocalPort: 8080, RemoteAddr: ipA, RemotePort: 40000,
		Cookie: 22, UID: 1000, PID: event.Some(int32(700)), ProcStart: event.Some(int64(7000)),
		FirstTS: event.Some(at(2*time.Second + 300*time.Microsecond))})
	s.AppendSock(&event.Sock{TS: at(3 * time.Second), Event: event.SockClose, Proto: "tcp", Family: 4, State: "CLOSE",
		Direction: event.DirIn, LocalAddr: ipB, LocalPort: 8080, RemoteAddr: ipA, RemotePort: 40000, Cookie: 22, UID: 1000,
		PID: event.Some(int32(700)), ProcStart: event.Some(int64(7000)), FirstTS: event.Some(at(2*time.Second + 300*time.Microsecond)),
		BytesSent: event.Some(uint64(1234)), BytesRecv: event.Some(uint64(78)), Flags: event.SockFlagFromDestroy})
	// An outsider's connection to sshd, closed before any dump saw it:
	// owner unknown.
	s.AppendSock(&event.Sock{TS: at(40 * time.Second), Event: event.SockClose, Proto: "tcp", Family: 4, State: "CLOSE",
		Direction: event.DirIn, LocalAddr: ipB, LocalPort: 22, RemoteAddr: ipOut, RemotePort: 51000, Cookie: 24, UID: event.NoID,
		Flags: event.SockFlagOwnerUnknown | event.SockFlagFromDestroy})
}

// demo is a database loaded with the demo data set through the real spool
// writer and loader.
type demo struct {
	db *sql.DB
	q  *Querier
}

func newDemo(t *testing.T) *demo {
	t.Helper()
	db, _ := servertest.SchemaDB(t, OpenDB)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	state := statedir.Dir(t.TempDir())
	load := func(host, hostname string, ips []string, tz int, fills ...func(event.Sink)) {
		zone := time.FixedZone("", tz)
		servertest.SpoolHost(t, state, host, wire.Facts{Hostname: hostname, MachineID: "m-" + host, IPs: ips}, t0.Add(-time.Hour),
			spool.Options{MaxSegmentAge: time.Hour, Quota: 1 << 30, Hostname: hostname, Version: "test",
				Now: func() time.Time { return time.Now().In(zone) }}, fills...)
	}
	load("host-a", "alpha", []string{"10.0.0.1"}, 2*3600, alphaRows, alphaRows2)
	load("host-b", "beta", []string{"10.0.0.2"}, 0, betaRows)
	sum, err := loader.Once(ctx, loader.Options{DB: db, StateDir: state, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Loaded != sum.Segments || sum.Quarantined != 0 || sum.Segments < 3 {
		t.Fatalf("load: %s", sum)
	}
	return &demo{db: db, q: &Querier{DB: db}}
}
