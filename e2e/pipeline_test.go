package e2e

import (
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pofr/pofr/internal/testutil"
)

// hostileArgs are arguments that broke POFR's ingestion or that a naive
// encoding mangles: tab, newline, quotes, backslash, invalid UTF-8, an empty
// argument, the seed's field separator and shell syntax.
var hostileArgs = []string{
	"tab\there",
	"new\nline",
	`dq"uote`,
	"sq'uote",
	"\xff\xfe not utf-8 \x80",
	"",
	"###",
	`back\slash`,
	"$(not expanded) `either`",
	" lead and trail ",
}

// oddName is a file name with a newline, a tab and a byte that is not UTF-8.
const oddName = "odd\nname\t\xff.txt"

// parentScript is run by bash with hostileArgs as its positional arguments:
// it starts a child bash (hostile argv too) that starts a sleep, writes,
// renames and deletes files in $E2E_DIR, and holds a TCP connection to
// $E2E_PORT open for 1.5 s, so that the collector's socket dumps see its
// owner.
const parentScript = `
/bin/bash -c 'sleep 0.3 & echo "grandchild $!"; wait; exit 3' e2e-child "$@" &
echo "child $!"
wait $!
echo hello >"$E2E_DIR/a.txt"
mv "$E2E_DIR/a.txt" "$E2E_DIR/b.txt"
rm "$E2E_DIR/b.txt"
echo odd >"$E2E_DIR/$E2E_ODD"
rm "$E2E_DIR/$E2E_ODD"
exec 3<>/dev/tcp/127.0.0.1/$E2E_PORT
echo "connected"
sleep 1.5 3<&-
exec 3<&-
exit 0
`

// TestPipeline runs the whole pipeline once and checks in SQL what a
// workload with a hostile argv, file operations and a TCP connection left.
func TestPipeline(t *testing.T) {
	p := newPipeline(t)
	coll := p.startCollector("--segment-age", "1s")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lnPort := ln.Addr().(*net.TCPAddr).Port
	accepted := make(chan int, 1) // the client's port
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		defer c.Close()
		accepted <- c.RemoteAddr().(*net.TCPAddr).Port
		io.Copy(io.Discard, c) // until the workload closes it
	}()

	work := t.TempDir()
	cmd := exec.Command("/bin/bash", append([]string{"-c", parentScript, "e2e-parent"}, hostileArgs...)...)
	cmd.Env = append(os.Environ(), "E2E_DIR="+work, "E2E_ODD="+oddName, "E2E_PORT="+strconv.Itoa(lnPort))
	cmd.Stderr = os.Stderr
	lines := startLines(t, cmd)
	waitExit(t, cmd, lines, 30*time.Second, "workload")
	parent := cmd.Process.Pid
	child, err1 := strconv.Atoi(lines.value("child"))
	grandchild, err2 := strconv.Atoi(lines.value("grandchild"))
	if err1 != nil || err2 != nil {
		t.Fatalf("workload did not report its pids: %q", lines.lines)
	}
	var clientPort int
	select {
	case clientPort = <-accepted:
	case <-time.After(5 * time.Second):
	}
	if clientPort == 0 {
		t.Fatal("the workload's connection was not accepted")
	}
	t.Logf("workload: parent %d, child %d, grandchild %d, connection 127.0.0.1:%d → :%d", parent, child, grandchild, clientPort, lnPort)

	time.Sleep(3 * time.Second) // the file aggregation window (2 s) and a socket dump after the close
	p.stopCollector(coll)
	t.Logf("load: %s", strings.TrimSpace(p.load()))
	led := p.checkLedger()
	t.Logf("ledger: %d segments, chain intact", len(led))
	// Every segment says how processes were captured: the default profile
	// records from tracepoint rings (as root on a kernel that allows it).
	var modes string
	if err := p.db.QueryRow(`SELECT GROUP_CONCAT(DISTINCT modes) FROM segments WHERE host_id = ?`, p.hostID).Scan(&modes); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(modes, "capture=tracepoint") || strings.Contains(modes, "capture=cn_proc") {
		t.Errorf("segments' modes %q, want capture=tracepoint in every one", modes)
	}

	bash := realPath(t, "/bin/bash")
	sleep := realPath(t, lookPath(t, "sleep"))
	parentArgv := argvBytes(append([]string{"/bin/bash", "-c", parentScript, "e2e-parent"}, hostileArgs...)...)
	childArgv := argvBytes(append([]string{"/bin/bash", "-c", `sleep 0.3 & echo "grandchild $!"; wait; exit 3`, "e2e-child"}, hostileArgs...)...)

	pe := p.execRow(parent)
	ce := p.execRow(child)
	ge := p.execRow(grandchild)
	got := []execRow{pe, ce, ge}
	want := []execRow{
		{Pid: parent, Ppid: os.Getpid(), ParentStart: p.startOf(os.Getpid()), ProcStart: pe.ProcStart, Exe: bash, ArgvHex: hexUpper(parentArgv), ArgvEqual: 1},
		{Pid: child, Ppid: parent, ParentStart: sql.NullInt64{Int64: pe.ProcStart, Valid: true}, ProcStart: ce.ProcStart, Exe: bash, ArgvHex: hexUpper(childArgv), ArgvEqual: 1},
		{Pid: grandchild, Ppid: child, ParentStart: sql.NullInt64{Int64: ce.ProcStart, Valid: true}, ProcStart: ge.ProcStart, Exe: sleep, ArgvHex: hexUpper(argvBytes("sleep", "0.3")), ArgvEqual: 1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("exec rows of the workload tree (-want +got):\n%s", diff)
	}
	if pe.ProcStart == 0 || ce.ProcStart == 0 || ge.ProcStart == 0 {
		t.Errorf("proc_start missing: %d %d %d", pe.ProcStart, ce.ProcStart, ge.ProcStart)
	}
	var exitCode sql.NullInt64
	if err := p.db.QueryRow(`SELECT exit_code FROM proc_events WHERE host_id = ? AND pid = ? AND proc_start = ? AND event = 'exit'`,
		p.hostID, child, ce.ProcStart).Scan(&exitCode); err != nil {
		t.Errorf("exit row of the child: %v", err)
	} else if exitCode.Int64 != 3 || !exitCode.Valid {
		t.Errorf("child exit_code = %v, want 3", exitCode)
	}

	p.checkFiles(work, parent, pe.ProcStart)
	p.checkSockets(lnPort, clientPort, parent, pe.ProcStart)
}

// execRow is what TestPipeline checks of one exec row.
type execRow struct {
	Pid, Ppid   int
	ProcStart   int64
	ParentStart sql.NullInt64
	Exe         string
	ArgvHex     string
	ArgvEqual   int // the argv column read back as bytes equals the HEX compare (driver path)
}

// execRow returns the only exec row of pid among the host's rows.
func (p *pipeline) execRow(pid int) execRow {
	p.t.Helper()
	var r execRow
	n := 0
	testutil.EachRow(p.t, p.db, func(row testutil.Row) {
		var exe, argv []byte
		var argvHex sql.NullString
		row.Scan(&r.Pid, &r.Ppid, &r.ProcStart, &r.ParentStart, &exe, &argvHex, &argv)
		r.Exe, r.ArgvHex = string(exe), argvHex.String
		if hexUpper(argv) == r.ArgvHex {
			r.ArgvEqual = 1
		}
		n++
	}, `SELECT pid, ppid, proc_start, parent_start, exe, HEX(argv), argv FROM proc_events
		WHERE host_id = ? AND pid = ? AND event = 'exec'`, p.hostID, pid)
	if n != 1 {
		p.t.Fatalf("pid %d: %d exec rows, want 1", pid, n)
	}
	return r
}

// startOf returns the proc_start recorded for a process that was already
// running or started during the recording (the test process itself), or
// NULL when the table has no row of it.
func (p *pipeline) startOf(pid int) sql.NullInt64 {
	p.t.Helper()
	var s sql.NullInt64
	err := p.db.QueryRow(`SELECT MAX(proc_start) FROM proc_events WHERE host_id = ? AND pid = ? AND event IN ('snapshot', 'exec', 'fork')`,
		p.hostID, pid).Scan(&s)
	if err != nil {
		p.t.Fatal(err)
	}
	return s
}

// fileRow is what checkFiles compares of a file_events row.
type fileRow struct {
	Op, Path, NewPath string
	Exe               string // exe of the process that made the access (joined on pid, proc_start)
}

// checkFiles checks the file rows under dir: a.txt created and written by
// the parent bash, renamed to b.txt by mv, b.txt deleted by rm, and the odd
// name created and deleted, every path byte-exact.
func (p *pipeline) checkFiles(dir string, parent int, parentStart int64) {
	p.t.Helper()
	got := map[fileRow]bool{}
	testutil.EachRow(p.t, p.db, func(row testutil.Row) {
		var op, path, newPath string
		var pid int
		var start int64
		var exe []byte
		row.Scan(&op, &path, &newPath, &pid, &start, &exe)
		r := fileRow{Op: op, Path: unhex(p.t, path), NewPath: unhex(p.t, newPath), Exe: string(exe)}
		if pid == parent {
			r.Exe = "parent"
			if start != parentStart {
				p.t.Errorf("file row %s %q: proc_start %d, want the parent's %d", op, r.Path, start, parentStart)
			}
		}
		got[r] = true
	}, `SELECT f.op, HEX(f.path), HEX(IFNULL(f.new_path, '')), f.pid, IFNULL(f.proc_start, -1),
			IFNULL((SELECT e.exe FROM proc_events e WHERE e.host_id = f.host_id AND e.pid = f.pid AND e.proc_start = f.proc_start
				AND e.event = 'exec' ORDER BY e.ts DESC LIMIT 1), '')
		FROM file_events f
		WHERE f.host_id = ? AND f.path LIKE CONCAT(?, '/%') AND f.op IN ('create', 'write', 'rename', 'delete')
		ORDER BY f.ts, f.op`, p.hostID, dir)
	a, b, odd := filepath.Join(dir, "a.txt"), filepath.Join(dir, "b.txt"), filepath.Join(dir, oddName)
	want := map[fileRow]bool{
		{Op: "create", Path: a, Exe: "parent"}:                                       true,
		{Op: "write", Path: a, Exe: "parent"}:                                        true,
		{Op: "rename", Path: a, NewPath: b, Exe: realPath(p.t, lookPath(p.t, "mv"))}: true,
		{Op: "delete", Path: b, Exe: realPath(p.t, lookPath(p.t, "rm"))}:             true,
		{Op: "create", Path: odd, Exe: "parent"}:                                     true,
		{Op: "write", Path: odd, Exe: "parent"}:                                      true,
		{Op: "delete", Path: odd, Exe: realPath(p.t, lookPath(p.t, "rm"))}:           true,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		p.t.Errorf("file rows under %s (-want +got):\n%s", dir, diff)
	}
}

// sockRow is what checkSockets compares of the sock_events rows of one socket.
type sockRow struct {
	LocalPort, RemotePort int
	Direction             string
	Pid                   int
	ProcStart             int64
	Closed                bool // a close row was recorded
}

// checkSockets checks both ends of the workload's connection: the client
// end owned by the parent bash, the server end by the test process.
func (p *pipeline) checkSockets(lnPort, clientPort, parent int, parentStart int64) {
	p.t.Helper()
	var got []sockRow
	testutil.EachRow(p.t, p.db, func(row testutil.Row) {
		var r sockRow
		var owners int
		row.Scan(&r.LocalPort, &r.RemotePort, &r.Direction, &r.Pid, &r.ProcStart, &owners, &r.Closed)
		if owners > 1 {
			p.t.Errorf("socket %d→%d: %d different owner pids", r.LocalPort, r.RemotePort, owners)
		}
		got = append(got, r)
	}, `SELECT local_port, remote_port, IFNULL(direction, ''), IFNULL(MAX(pid), -1), IFNULL(MAX(proc_start), -1),
			COUNT(DISTINCT pid), MAX(event = 'close')
		FROM sock_events
		WHERE host_id = ? AND proto = 'tcp' AND ((local_port = ? AND remote_port = ?) OR (local_port = ? AND remote_port = ?))
		GROUP BY local_port, remote_port, direction ORDER BY local_port = ?`,
		p.hostID, clientPort, lnPort, lnPort, clientPort, lnPort)
	self := p.startOf(os.Getpid())
	want := []sockRow{
		{LocalPort: clientPort, RemotePort: lnPort, Direction: "out", Pid: parent, ProcStart: parentStart, Closed: true},
		{LocalPort: lnPort, RemotePort: clientPort, Direction: "in", Pid: os.Getpid(), ProcStart: self.Int64, Closed: true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		p.t.Errorf("sock rows of the connection (-want +got):\n%s", diff)
	}
}

func hexUpper(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }

func unhex(t *testing.T, s string) string {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("unhex %q: %v", s, err)
	}
	return string(b)
}

func lookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatal(fmt.Errorf("find %s: %w", name, err))
	}
	return p
}
