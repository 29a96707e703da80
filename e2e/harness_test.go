package e2e

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // the "mysql" driver for the test database

	"github.com/pofr/pofr/internal/testutil"
	"github.com/pofr/pofr/spool"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// pipeline is one private pofr installation: a database, a receiver, a
// registered host and (once started) a collector, all under dir.
type pipeline struct {
	t         *testing.T
	dir       string
	collector string // pofr-collector executable
	server    string // pofr-server executable
	dsnFile   string // root DSN of the test's database
	db        *sql.DB
	addr      string // receiver address, host:port
	hostID    string
	serve     *process
}

// newPipeline builds the commands, creates the test's database with the
// schema, starts the receiver on a free loopback port and registers this host
// with a one-time token.
func newPipeline(t *testing.T) *pipeline {
	t.Helper()
	testutil.RequireTier(t, testutil.TierE2E)
	testutil.RequireRoot(t)
	p := newInstallation(t)
	p.startServe("127.0.0.1:0")
	tok := p.run(30*time.Second, p.server, "token", "create", "--state-dir", p.path("server"), "--ttl", "10m")
	writeFile(t, p.path("token"), tok)
	p.run(60*time.Second, p.collector, "register", "--server", p.addr, "--server-fingerprint", p.serveFingerprint(),
		"--token-file", p.path("token"), "--config-dir", p.path("client"))
	var cfg struct {
		HostID string `json:"host_id"`
	}
	b, err := os.ReadFile(p.path("client", "server.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil || cfg.HostID == "" {
		t.Fatalf("read host id from server.json: %v (%s)", err, b)
	}
	p.hostID = cfg.HostID
	return p
}

// newInstallation builds the commands and creates the test's database with
// the schema: a pipeline with no receiver and no registered host yet.
func newInstallation(t *testing.T) *pipeline {
	t.Helper()
	p := &pipeline{
		t:         t,
		dir:       t.TempDir(),
		collector: testutil.Bin(t, "./cmd/pofr-collector"),
		server:    testutil.Bin(t, "./cmd/pofr-server"),
	}
	dsn, _ := testutil.StartMariaDB(t).NewDatabase(t)
	p.dsnFile = filepath.Join(p.dir, "admin.dsn")
	writeFile(t, p.dsnFile, dsn+"\n")
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	p.db = db
	p.run(30*time.Second, p.server, "schema", "apply", "--dsn-file", p.dsnFile)
	return p
}

func (p *pipeline) path(elem ...string) string {
	return filepath.Join(append([]string{p.dir}, elem...)...)
}

// startServe starts pofr-server serve on addr and waits for its host key line.
func (p *pipeline) startServe(addr string) {
	p.t.Helper()
	p.serve = p.start("serve", p.server, "serve", "--listen", addr, "--state-dir", p.path("server"))
	line := p.serve.waitLog(p.t, regexp.MustCompile(`(?m)^pofr-server listening on (\S+)$`), 20*time.Second)
	p.addr = line[1]
	p.serveFingerprint()
}

// serveFingerprint returns the host key fingerprint the receiver printed.
func (p *pipeline) serveFingerprint() string {
	p.t.Helper()
	return p.serve.waitLog(p.t, regexp.MustCompile(`(?m)^host key (SHA256:\S+)$`), 20*time.Second)[1]
}

// stopServe stops the receiver with SIGTERM.
func (p *pipeline) stopServe() {
	p.t.Helper()
	if err := p.serve.stop(syscall.SIGTERM, 20*time.Second); err != nil {
		p.t.Fatalf("stop pofr-server serve: %v\n%s", err, p.serve.output())
	}
}

// startCollector starts pofr-collector run with the test's configuration and
// state directories and waits until its process and socket sources record.
func (p *pipeline) startCollector(extra ...string) *process {
	p.t.Helper()
	args := append([]string{"run", "--config-dir", p.path("client"), "--state-dir", p.path("collector")}, extra...)
	c := p.start("collector", p.collector, args...)
	c.waitLog(p.t, regexp.MustCompile(`process source recording|POLL MODE`), 30*time.Second)
	c.waitLog(p.t, regexp.MustCompile(`sock source started|sock_diag unavailable|sockets are not recorded`), 30*time.Second)
	if strings.Contains(c.output(), "POLL MODE") {
		p.t.Fatalf("the collector fell back to /proc polling; cn_proc does not work here:\n%s", c.output())
	}
	return c
}

// stopCollector stops the collector with SIGTERM, which seals the open
// segment and pushes what is left, and checks that it exits 0 with an empty
// spool.
func (p *pipeline) stopCollector(c *process) {
	p.t.Helper()
	if err := c.stop(syscall.SIGTERM, 40*time.Second); err != nil {
		p.t.Fatalf("stop pofr-collector: %v\n%s", err, c.output())
	}
	if left := p.spooled(); len(left) != 0 {
		names := make([]string, len(left))
		for i, in := range left {
			names[i] = in.Name
		}
		p.t.Errorf("a clean stop left %d segments unpushed in the spool: %s", len(left), strings.Join(names, " "))
	}
}

// spooled returns the sealed segments still in the collector's spool.
func (p *pipeline) spooled() []spool.Info {
	p.t.Helper()
	infos, err := spool.List(p.path("collector", "spool"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		p.t.Fatal(err)
	}
	return infos
}

// load runs one pass of pofr-server load and checks that it exits 0 (no
// quarantine, no chain break, no error).
func (p *pipeline) load() string {
	p.t.Helper()
	return p.run(2*time.Minute, p.server, "load", "--state-dir", p.path("server"), "--dsn-file", p.dsnFile, "--no-progress")
}

// inbox returns the names of the files waiting in the host's inbox.
func (p *pipeline) inbox() []string { return p.listDir("inbox") }

// archive returns the names of the loaded segment files.
func (p *pipeline) archive() []string { return p.listDir("archive") }

func (p *pipeline) listDir(kind string) []string {
	p.t.Helper()
	ents, err := os.ReadDir(p.path("server", kind, p.hostID))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		p.t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	return names
}

// ledgerRow is one row of the segments table.
type ledgerRow struct {
	ID      int64
	Seq     int64
	Digest  []byte
	Prev    []byte
	ChainOK sql.NullInt64
}

// checkLedger checks the custody ledger of the host: seqs 1..N without a
// hole, every chain_ok 1, every prev_digest the digest of the segment
// before, nothing quarantined, the inbox empty and one archived file per
// seq. It returns the rows.
func (p *pipeline) checkLedger() []ledgerRow {
	p.t.Helper()
	var led []ledgerRow
	testutil.EachRow(p.t, p.db, func(row testutil.Row) {
		var r ledgerRow
		row.Scan(&r.ID, &r.Seq, &r.Digest, &r.Prev, &r.ChainOK)
		led = append(led, r)
	}, `SELECT segment_id, seq, digest, prev_digest, chain_ok FROM segments WHERE host_id = ? ORDER BY seq`, p.hostID)
	if len(led) == 0 {
		p.t.Fatal("no segments in the ledger")
	}
	for i, r := range led {
		if r.Seq != int64(i+1) {
			p.t.Fatalf("ledger seq at index %d = %d, want %d (a hole or a duplicate)", i, r.Seq, i+1)
		}
		if !r.ChainOK.Valid || r.ChainOK.Int64 != 1 {
			p.t.Errorf("segment seq %d: chain_ok = %v, want 1", r.Seq, r.ChainOK)
		}
		switch {
		case i == 0 && r.Prev != nil:
			p.t.Errorf("segment seq 1: prev_digest = %x, want NULL", r.Prev)
		case i > 0 && !bytes.Equal(r.Prev, led[i-1].Digest):
			p.t.Errorf("segment seq %d: prev_digest = %x, want the digest of seq %d, %x", r.Seq, r.Prev, led[i-1].Seq, led[i-1].Digest)
		}
	}
	var quarantined int
	if err := p.db.QueryRow(`SELECT COUNT(*) FROM quarantine`).Scan(&quarantined); err != nil {
		p.t.Fatal(err)
	}
	if quarantined != 0 {
		p.t.Errorf("quarantine has %d rows, want 0", quarantined)
	}
	if in := p.inbox(); len(in) != 0 {
		p.t.Errorf("inbox after load: %q, want empty", in)
	}
	seen := map[uint64]string{}
	for _, name := range p.archive() {
		_, seq, _, ok := spool.ParseName(name)
		if !ok {
			p.t.Errorf("archive holds %q, not a segment name", name)
			continue
		}
		if prev, dup := seen[seq]; dup {
			p.t.Errorf("archive holds seq %d twice: %s and %s", seq, prev, name)
		}
		seen[seq] = name
	}
	if len(seen) != len(led) {
		p.t.Errorf("archive holds %d segments, ledger %d", len(seen), len(led))
	}
	return led
}

// run runs a command to completion within timeout and returns its standard
// output; a non-zero exit fails the test with both outputs.
func (p *pipeline) run(timeout time.Duration, name string, args ...string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		p.t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(name), strings.Join(args, " "), err, &stdout, &stderr)
	}
	return stdout.String()
}

// start starts a long-running command with its output in a log file under
// the pipeline's directory. The test's cleanup kills it if it still runs.
func (p *pipeline) start(label, name string, args ...string) *process {
	p.t.Helper()
	logPath := p.path(label + ".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	defer f.Close()
	if fi, _ := f.Stat(); fi != nil && fi.Size() > 0 {
		fmt.Fprintf(f, "\n==== restart ====\n")
	}
	off, _ := f.Seek(0, io.SeekEnd)
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", label, err)
	}
	pr := &process{label: label, cmd: cmd, log: logPath, from: off, done: make(chan struct{})}
	go func() {
		pr.err = cmd.Wait()
		close(pr.done)
	}()
	p.t.Cleanup(func() {
		cmd.Process.Kill() // no-op when it has exited
		<-pr.done
		if p.t.Failed() {
			p.t.Logf("%s log (%s):\n%s", label, strings.Join(args, " "), pr.output())
		}
	})
	return pr
}

// process is a command started by pipeline.start.
type process struct {
	label string
	cmd   *exec.Cmd
	log   string
	from  int64 // offset of this run's output in log
	done  chan struct{}
	err   error
}

// output returns what this run of the process wrote so far.
func (pr *process) output() string {
	b, _ := os.ReadFile(pr.log)
	if int64(len(b)) < pr.from {
		return ""
	}
	return string(b[pr.from:])
}

// waitLog waits until the process's output matches re and returns the
// submatches. It fails the test at the deadline or if the process exits.
func (pr *process) waitLog(t *testing.T, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if m := re.FindStringSubmatch(pr.output()); m != nil {
			return m
		}
		select {
		case <-pr.done:
			t.Fatalf("%s exited (%v) before its output matched %q:\n%s", pr.label, pr.err, re, pr.output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: output did not match %q within %v:\n%s", pr.label, re, timeout, pr.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends sig and waits up to timeout for the process to exit. It
// returns the exit error (nil for status 0), or an error at the deadline,
// after killing the process.
func (pr *process) stop(sig syscall.Signal, timeout time.Duration) error {
	pr.cmd.Process.Signal(sig)
	select {
	case <-pr.done:
		return pr.err
	case <-time.After(timeout):
		pr.cmd.Process.Kill()
		<-pr.done
		return fmt.Errorf("%s did not exit within %v of %v", pr.label, timeout, sig)
	}
}

// kill kills the process with SIGKILL and waits for it.
func (pr *process) kill() {
	pr.cmd.Process.Kill()
	<-pr.done
}

// lineReader collects the lines a workload prints, for pids it reports.
type lineReader struct {
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

func readLines(r io.Reader) *lineReader {
	lr := &lineReader{done: make(chan struct{})}
	go func() {
		defer close(lr.done)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lr.mu.Lock()
			lr.lines = append(lr.lines, sc.Text())
			lr.mu.Unlock()
		}
	}()
	return lr
}

// value returns the field after "key " in the first line that starts with it.
func (lr *lineReader) value(key string) string {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	for _, l := range lr.lines {
		if v, ok := strings.CutPrefix(l, key+" "); ok {
			return v
		}
	}
	return ""
}

// startLines starts cmd with its standard output read line by line; the
// test's cleanup kills it if it still runs.
func startLines(t *testing.T, cmd *exec.Cmd) *lineReader {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", strings.Join(cmd.Args, " "), err)
	}
	lr := readLines(out)
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-lr.done
			cmd.Wait()
		}
	})
	return lr
}

// waitExit waits up to timeout for cmd (started by startLines) to exit with
// status 0.
func waitExit(t *testing.T, cmd *exec.Cmd, lr *lineReader, timeout time.Duration, what string) {
	t.Helper()
	done := make(chan error, 1)
	go func() { <-lr.done; done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v (output %q)", what, err, lr.lines)
		}
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s did not finish within %v (output %q)", what, timeout, lr.lines)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// argvBytes is argv as /proc/PID/cmdline holds it: each argument followed by
// a NUL byte.
func argvBytes(args ...string) []byte {
	var b []byte
	for _, a := range args {
		b = append(b, a...)
		b = append(b, 0)
	}
	return b
}

// realPath resolves the symbolic links of an executable's path, as
// /proc/PID/exe shows it (/bin/bash is /usr/bin/bash on merged-/usr systems).
func realPath(t *testing.T, path string) string {
	t.Helper()
	p, err := filepath.EvalSymlinks(path)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
