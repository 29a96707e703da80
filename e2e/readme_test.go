package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pofr/pofr/collector/agent"
	"github.com/pofr/pofr/internal/testutil"
)

// readmeBlock is one fenced block of README.md marked for this test with
// <!-- readme-test: NAME --> on the line before it.
type readmeBlock struct {
	Name, Lang, Text string
}

var readmeBlockRE = regexp.MustCompile("(?s)<!-- readme-test: ([a-z-]+) -->\n```([a-z]+)\n(.*?)\n```\n")

// readmeBlocks returns README.md's marked blocks by name.
func readmeBlocks(t *testing.T) map[string]readmeBlock {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := map[string]readmeBlock{}
	for _, m := range readmeBlockRE.FindAllStringSubmatch(string(b), -1) {
		if _, dup := blocks[m[1]]; dup {
			t.Fatalf("README.md: two blocks named %q", m[1])
		}
		blocks[m[1]] = readmeBlock{Name: m[1], Lang: m[2], Text: m[3]}
	}
	if n := strings.Count(string(b), "<!-- readme-test:"); n != len(blocks) {
		t.Fatalf("README.md has %d readme-test markers, %d of them before a fenced block", n, len(blocks))
	}
	return blocks
}

// readmeSteps are the blocks the install test runs, in order.
var readmeSteps = []string{"server", "server-cron", "client", "client-cron", "upgrade", "deregister"}

// cronCommands returns the commands of a crontab block (the fields after
// the five time fields and the user).
func cronCommands(text string) ([]string, error) {
	var cmds []string
	for line := range strings.SplitSeq(text, "\n") {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 7 || f[5] != "root" {
			return nil, fmt.Errorf("not a system crontab line (m h dom mon dow root command): %q", line)
		}
		cmds = append(cmds, strings.Join(f[6:], " "))
	}
	return cmds, nil
}

// TestReadmeBlocks: every step the install test runs is in README.md, a
// shell or crontab block, and crontab lines name their commands by full path
// (cron's PATH is /usr/bin:/bin).
func TestReadmeBlocks(t *testing.T) {
	blocks := readmeBlocks(t)
	for _, name := range readmeSteps {
		b, ok := blocks[name]
		if !ok {
			t.Errorf("README.md lacks the block %q", name)
			continue
		}
		switch b.Lang {
		case "sh":
		case "crontab":
			cmds, err := cronCommands(b.Text)
			if err != nil || len(cmds) == 0 {
				t.Errorf("block %s: %v %q", name, err, cmds)
			}
			for _, c := range cmds {
				if !strings.HasPrefix(c, "/") {
					t.Errorf("block %s: %q: cron's PATH lacks /usr/local/bin, name the command by its path", name, c)
				}
			}
		default:
			t.Errorf("block %s: language %q, want sh or crontab", name, b.Lang)
		}
	}
	if len(blocks) != len(readmeSteps) {
		t.Errorf("README.md marks %d blocks, the test runs %d: %v", len(blocks), len(readmeSteps), readmeSteps)
	}
}

// What the README's install leaves on a machine: none may exist before the
// test, all are removed after it.
var readmeInstalled = []string{
	"/etc/pofr-server", "/var/lib/pofr-server", "/etc/pofr", "/var/lib/pofr",
	"/usr/local/bin/pofr-server", "/usr/local/bin/pofr-collector",
	"/root/pofr.token", "/run/pofr-server.pid", "/var/log/pofr-server.log", "/var/log/pofr-collector.log",
}

const (
	debianSocket  = "/run/mysqld/mysqld.sock"
	readmeLock    = "/run/pofr-readme-test.lock"
	readmeAddress = "collector.example.net"
)

// TestReadmeInstall runs README.md's "Install on real hosts" and "Upgrade,
// deregistration" blocks as they are, as root, on this machine, against
// Debian's MariaDB (mariadbd started as its service would start it, without
// systemd, and stopped at the end): server, its cron lines (each run once),
// client (under a pseudo-terminal that confirms the server's key, after
// checking it is the one the server printed), the client's cron line, then it
// waits until the collector's rows are queryable, upgrades, checks that rows
// still arrive, and deregisters. The only change to the text: the example
// server name becomes localhost. Everything the blocks install is removed
// afterwards; a machine that already has any of it, or a MariaDB on Debian's
// socket, fails the test (skips it without POFR_TEST_REQUIRE).
func TestReadmeInstall(t *testing.T) {
	testutil.RequireTier(t, testutil.TierE2E)
	testutil.RequireRoot(t)
	blocks := readmeBlocks(t)
	for _, need := range []string{"/usr/sbin/mariadbd", "/usr/bin/mariadb", "/etc/mysql/my.cnf", "/usr/bin/script", "/usr/bin/make"} {
		if _, err := os.Stat(need); err != nil {
			testutil.Skip(t, testutil.TierE2E, "the README test needs Debian's mariadb-server, mariadb-client, make and script: "+err.Error())
		}
	}
	// One README test per machine at a time (worktrees run make test side by side).
	lock, err := os.OpenFile(readmeLock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		lock.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() }) // after r.cleanup: cleanups run last first
	for _, p := range append(readmeInstalled, debianSocket) {
		if _, err := os.Lstat(p); err == nil {
			testutil.Skip(t, testutil.TierE2E, p+" exists: this machine has a pofr install or a running MariaDB that the README test would change")
		}
	}
	if ln, err := net.Listen("tcp", ":2222"); err != nil {
		testutil.Skip(t, testutil.TierE2E, "port 2222, the README's, is taken: "+err.Error())
	} else {
		ln.Close()
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	logs := t.TempDir()
	r := &readmeRun{t: t, root: root, logs: logs}
	t.Cleanup(r.cleanup)
	r.startMariaDB()

	// Server, then its cron lines once each.
	r.sh(blocks["server"], nil, 10*time.Minute)
	fp := r.serverFingerprint()
	r.cron(blocks["server-cron"])

	// Client: register confirms the key on a terminal; answer yes only to
	// the key the server printed.
	out := r.sh(blocks["client"], []byte("y\n"), 3*time.Minute)
	if !strings.Contains(out, fp) {
		t.Fatalf("register did not show the server's key %s:\n%s", fp, out)
	}
	r.cron(blocks["client-cron"])
	collectorPID := r.pidFile("/var/lib/pofr/collector.pid")

	db := r.openReader()
	loaded := r.waitRows(db, 0)
	r.status()

	// Upgrade: new processes, same data flow.
	serverPID := r.pidFile("/run/pofr-server.pid")
	r.sh(blocks["upgrade"], nil, 10*time.Minute)
	if p := r.pidFile("/var/lib/pofr/collector.pid"); p == collectorPID || p == 0 {
		t.Errorf("after the upgrade block the collector's pid is %d, was %d: not restarted", p, collectorPID)
	}
	if p := r.pidFile("/run/pofr-server.pid"); p == serverPID || !alive(p) {
		t.Errorf("after the upgrade block the server's pid is %d (alive %v), was %d", p, alive(p), serverPID)
	}
	r.waitRows(db, loaded)

	// Deregistration.
	out = r.sh(blocks["deregister"], nil, time.Minute)
	if _, err := os.Stat("/etc/pofr/ssh.key"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after deregister, /etc/pofr/ssh.key: %v", err)
	}
	if code := r.exitCode("/usr/local/bin/pofr-collector", "status"); code != 3 {
		t.Errorf("after deregister, pofr-collector status exits %d, want 3 (not running)", code)
	}
	if !strings.Contains(out, "server told") {
		t.Errorf("deregister did not reach the server:\n%s", out)
	}
	hosts := r.run(time.Minute, "/usr/local/bin/pofr-server", "registrations", "hosts")
	if !regexp.MustCompile(`(?m)^\S+\s+revoked\s`).MatchString(hosts) || strings.Contains(hosts, " active ") {
		t.Errorf("after deregister the server lists:\n%s\nwant the host revoked", hosts)
	}
}

// readmeRun is one run of the README on this machine.
type readmeRun struct {
	t          *testing.T
	root, logs string
	mariadbd   *exec.Cmd
	mariadbOut *os.File
	// mariadbExited receives mariadbd's Wait result.
	mariadbExited chan error
	madeRunDir    bool
}

// env is the environment of a README block: the test's, without POFR_
// variables, with the PATH of a root login shell.
func (r *readmeRun) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "POFR_") && !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	return append(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/go/bin")
}

// sh runs a shell block with bash -e in the repository, under a
// pseudo-terminal when input is given, and returns its output.
func (r *readmeRun) sh(b readmeBlock, input []byte, timeout time.Duration) string {
	r.t.Helper()
	text := strings.ReplaceAll(b.Text, readmeAddress, "localhost")
	file := filepath.Join(r.logs, b.Name+".sh")
	if err := os.WriteFile(file, []byte("set -euo pipefail\n"+text+"\n"), 0o600); err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var cmd *exec.Cmd
	if input != nil {
		// script(1) gives bash a terminal and exits with its status.
		cmd = exec.CommandContext(ctx, "script", "-qefc", "bash "+file, "/dev/null")
		cmd.Stdin = bytes.NewReader(input)
	} else {
		cmd = exec.CommandContext(ctx, "bash", file)
	}
	cmd.Dir, cmd.Env = r.root, r.env()
	out, err := cmd.CombinedOutput()
	r.t.Logf("README block %q:\n%s\n-> %s", b.Name, text, out)
	if err != nil {
		r.t.Fatalf("README block %q failed: %v\n%s", b.Name, err, out)
	}
	return string(out)
}

// cron runs each command of a crontab block once, as cron would (sh -c, PATH
// /usr/bin:/bin).
func (r *readmeRun) cron(b readmeBlock) {
	r.t.Helper()
	cmds, err := cronCommands(b.Text)
	if err != nil {
		r.t.Fatal(err)
	}
	for _, c := range cmds {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", c)
		cmd.Dir = "/root"
		cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/root", "SHELL=/bin/sh", "LOGNAME=root"}
		out, err := cmd.CombinedOutput()
		cancel()
		r.t.Logf("README cron line of %q: %s\n-> %s", b.Name, c, out)
		if err != nil {
			r.t.Fatalf("README cron command %q failed: %v\n%s", c, err, out)
		}
	}
}

// run runs a command the test itself needs and returns its output.
func (r *readmeRun) run(timeout time.Duration, name string, args ...string) string {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = r.env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (r *readmeRun) exitCode(name string, args ...string) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = r.env()
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// startMariaDB starts Debian's MariaDB as its service does (mariadbd with
// Debian's configuration, as user mysql, /run/mysqld created first), without
// TCP so that no port of another test can clash with it.
func (r *readmeRun) startMariaDB() {
	r.t.Helper()
	if _, err := os.Stat("/run/mysqld"); errors.Is(err, os.ErrNotExist) {
		r.madeRunDir = true
		if err := os.Mkdir("/run/mysqld", 0o755); err != nil {
			r.t.Fatal(err)
		}
		if out, err := exec.Command("chown", "mysql:mysql", "/run/mysqld").CombinedOutput(); err != nil {
			r.t.Fatalf("chown /run/mysqld: %v %s", err, out)
		}
	}
	f, err := os.Create(filepath.Join(r.logs, "mariadbd.log"))
	if err != nil {
		r.t.Fatal(err)
	}
	r.mariadbOut = f
	cmd := exec.Command("/usr/sbin/mariadbd", "--user=mysql", "--skip-networking")
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.mariadbd = cmd
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(90 * time.Second)
	for {
		if c, err := net.Dial("unix", debianSocket); err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			r.mariadbd = nil
			b, _ := os.ReadFile(f.Name())
			r.t.Fatalf("Debian's mariadbd exited: %v\n%s", err, b)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("Debian's mariadbd does not answer on %s after 90 s", debianSocket)
		}
	}
	r.mariadbExited = exited
}

// cleanup stops what the README started and removes what it installed.
func (r *readmeRun) cleanup() {
	stop := func(pidFile, exe string) {
		pid := r.pidFile(pidFile)
		if link, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); !alive(pid) || err != nil || !strings.HasPrefix(link, exe) {
			return
		}
		unix.Kill(pid, unix.SIGTERM)
		for i := 0; i < 300 && alive(pid); i++ {
			time.Sleep(100 * time.Millisecond)
		}
		if alive(pid) {
			r.t.Errorf("cleanup: %s (pid %d) ignored SIGTERM for 30 s; killed", exe, pid)
			unix.Kill(pid, unix.SIGKILL)
		}
	}
	stop("/var/lib/pofr/collector.pid", "/usr/local/bin/pofr-collector")
	stop("/run/pofr-server.pid", "/usr/local/bin/pofr-server")
	if r.mariadbd != nil {
		out, err := exec.Command("/usr/bin/mariadb", "-e",
			"DROP DATABASE IF EXISTS pofr; DROP USER IF EXISTS pofr_loader@localhost, pofr_reader@localhost").CombinedOutput()
		if err != nil {
			r.t.Errorf("cleanup: drop the README's database and accounts: %v %s", err, out)
		}
		r.mariadbd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.mariadbExited:
		case <-time.After(2 * time.Minute):
			r.t.Errorf("cleanup: Debian's mariadbd did not stop in 2 minutes; killed")
			r.mariadbd.Process.Kill()
			<-r.mariadbExited
		}
		r.mariadbOut.Close()
	}
	for _, p := range readmeInstalled {
		if err := os.RemoveAll(p); err != nil {
			r.t.Errorf("cleanup: %v", err)
		}
	}
	if r.madeRunDir {
		os.RemoveAll("/run/mysqld")
	}
}

// serverFingerprint is the host key the README's serve printed in its log.
func (r *readmeRun) serverFingerprint() string {
	r.t.Helper()
	re := regexp.MustCompile(`host key (SHA256:[A-Za-z0-9+/]+)`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile("/var/log/pofr-server.log")
		if m := re.FindSubmatch(b); m != nil {
			return string(m[1])
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("no host key fingerprint in /var/log/pofr-server.log after 30 s:\n%s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pidFile returns the pid in a pid file, 0 if there is none.
func (r *readmeRun) pidFile(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func alive(pid int) bool { return pid > 0 && unix.Kill(pid, 0) == nil }

// status checks pofr-collector status in both forms, once segments were
// uploaded: the text has the state, rates and the last upload's age; the
// JSON has the same figures.
func (r *readmeRun) status() {
	r.t.Helper()
	// The status file is rewritten every 5 s: it may predate the upload.
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := r.run(time.Minute, "/usr/local/bin/pofr-collector", "status", "--json")
		var st struct {
			Running bool          `json:"running"`
			Summary agent.Summary `json:"summary"`
		}
		err := json.Unmarshal([]byte(out), &st)
		if err == nil && st.Running && st.Summary.Uplink != nil && st.Summary.Uplink.LastUpload != nil &&
			st.Summary.Sources["proc"].Seen > 0 {
			break
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("pofr-collector status --json: %v; want running, proc events and a last upload within 30 s:\n%s", err, out)
		}
		time.Sleep(time.Second)
	}
	out := r.run(time.Minute, "/usr/local/bin/pofr-collector", "status")
	for _, re := range []string{`collector: running, pid \d+, up \d+`, `(?m)^  proc +\S+ +\d+\.\d +\d+`, `last upload \d+s ago`} {
		if !regexp.MustCompile(re).MatchString(out) {
			r.t.Errorf("pofr-collector status lacks %s:\n%s", re, out)
		}
	}
	r.t.Logf("pofr-collector status:\n%s", out)
}

// openReader opens the database with the reader DSN schema users wrote.
func (r *readmeRun) openReader() *sql.DB {
	r.t.Helper()
	b, err := os.ReadFile("/etc/pofr-server/reader.dsn")
	if err != nil {
		r.t.Fatal(err)
	}
	db, err := sql.Open("mysql", strings.TrimSpace(string(b)))
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { db.Close() })
	return db
}

// waitRows runs the README's load line (as cron would) until the database
// holds more loaded segments than after, and returns their number.
func (r *readmeRun) waitRows(db *sql.DB, after int) int {
	r.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		exec.Command("/bin/true").Run() // something to record
		r.run(2*time.Minute, "/usr/local/bin/pofr-server", "load", "--no-progress")
		var segs, procs int
		err := db.QueryRow("SELECT COUNT(*), (SELECT COUNT(*) FROM proc_events) FROM segments").Scan(&segs, &procs)
		if err == nil && segs > after && procs > 0 {
			return segs
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile("/var/log/pofr-collector.log")
			r.t.Fatalf("no new segment loaded in 3 minutes (segments %d, proc rows %d, err %v); collector log:\n%s", segs, procs, err, b)
		}
		time.Sleep(2 * time.Second)
	}
}
