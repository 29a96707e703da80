package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pofr/pofr/fleet"
	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/servertest"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/internal/testutil"
	"github.com/pofr/pofr/loader"
	"github.com/pofr/pofr/spool"
	"github.com/pofr/pofr/uplink"
)

// serveProc is one running 'pofr-server serve'.
type serveProc struct {
	addr, fingerprint string
	state             statedir.Dir
}

// startServe runs the built pofr-server serve on state with the shard map
// mapf until the test ends, and waits for its address and key.
func startServe(t *testing.T, bin, mapf string, state statedir.Dir, args ...string) *serveProc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0", "--state-dir", state.String(), "--shards", mapf}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errs testutil.SyncBuffer
	cmd.Stderr = &errs
	testutil.StartCmd(t, cmd, func() {
		if t.Failed() {
			t.Logf("serve %s log:\n%s", state, errs.String())
		}
	})
	p := &serveProc{state: state}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, stdout)
	}()
	deadline := time.After(60 * time.Second)
	for p.fingerprint == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("serve ended before printing its key:\n%s", errs.String())
			}
			if a, ok := strings.CutPrefix(l, "pofr-server listening on "); ok {
				p.addr = a
			}
			if k, ok := strings.CutPrefix(l, "host key "); ok {
				p.fingerprint = k
			}
		case <-deadline:
			t.Fatalf("serve printed no key within 60 s:\n%s", errs.String())
		}
	}
	return p
}

// spoolQueue is a spool directory as the pusher's queue (as the
// collector's).
type spoolQueue string

func (q spoolQueue) Pending() ([]uplink.Item, error) {
	infos, err := spool.List(string(q))
	if err != nil {
		return nil, err
	}
	var items []uplink.Item
	for _, in := range infos {
		items = append(items, uplink.Item{Name: in.Name, Path: in.Path, Size: in.Size})
	}
	return items, nil
}

func (q spoolQueue) Remove(name string) error { return spool.Remove(string(q), name) }

// TestSharedRegistryTwoReceivers runs two 'pofr-server serve' processes on
// one MariaDB registry (named by the shard map), with one host key copied
// between them: a host registered through A pushes real signed segments to
// B, which accepts them, and B's loader loads them into the host's shard;
// the host revoked through B's state directory is refused by A; a hostile
// registration request sent to A is listed through B escaped.
func TestSharedRegistryTwoReceivers(t *testing.T) {
	m := testutil.StartMariaDB(t)
	bin := testutil.Bin(t, "./cmd/pofr-server")
	dir := t.TempDir()
	regDSN, _ := m.NewDatabase(t)
	shardDB, shardDSN := servertest.NewDB(t, loader.OpenDB)
	sf := writeLine(t, dir, "s1.dsn", shardDSN)
	fm := fleet.Map{Shards: []fleet.Shard{{Name: "s1", AdminDSNFile: sf, LoaderDSNFiles: []string{sf}}},
		Registry: &fleet.Registry{DSNFile: writeLine(t, dir, "registry.dsn", regDSN)}}
	mapf := filepath.Join(dir, "shards.json")
	if err := fm.Save(mapf); err != nil {
		t.Fatal(err)
	}
	password := writeLine(t, dir, "password", "correct horse battery staple")

	// Receiver A makes the host key; B gets a copy of it.
	stateA, stateB := statedir.Dir(filepath.Join(dir, "a")), statedir.Dir(filepath.Join(dir, "b"))
	a := startServe(t, bin, mapf, stateA, "--registration-password-file", password)
	if err := os.MkdirAll(stateB.String(), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := servertest.CopyFile(stateA.HostKey(), stateB.HostKey()); err != nil {
		t.Fatal(err)
	}
	b := startServe(t, bin, mapf, stateB, "--registration-password-file", password)
	if a.fingerprint != b.fingerprint {
		t.Fatalf("host keys differ: %s, %s", a.fingerprint, b.fingerprint)
	}

	// A token made on B's side registers the host through A.
	code, tok, errs := runApp(t, "token", "create", "--shards", mapf, "--state-dir", stateB.String())
	if code != 0 {
		t.Fatalf("token create: %d %s", code, errs)
	}
	ctx := testutil.Deadline(t, 3*time.Minute)
	conf := filepath.Join(dir, "host-etc")
	res, err := uplink.Register(ctx, uplink.RegisterOptions{Server: a.addr, ConfigDir: conf, Token: []byte(strings.TrimSpace(tok)),
		Fingerprint: a.fingerprint, Facts: uplink.HostFacts{Hostname: "web-07.example", MachineID: strings.Repeat("a7", 16)}})
	if err != nil || res.Status != uplink.StatusGranted {
		t.Fatalf("register through A: %+v, %v", res, err)
	}
	if _, err := os.Stat(stateA.Tokens()); err == nil {
		t.Errorf("the token went to A's state directory, not the shared registry")
	}
	if _, err := os.Stat(stateA.Host(res.HostID).Record); err == nil {
		t.Errorf("the host record went to A's state directory, not the shared registry")
	}

	// The host's spool: real signed segments.
	keys, err := uplink.EnsureKeys(conf)
	if err != nil {
		t.Fatal(err)
	}
	spoolDir := t.TempDir()
	w, err := spool.Open(spoolDir, spool.Options{HostID: res.HostID, BootID: "boot-1", Key: keys.Signing,
		MaxSegmentAge: time.Hour, MaxSegmentBytes: 32 << 20, Quota: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	seal := func() {
		t.Helper()
		procs, files, socks := servertest.BusyRows(servertest.HostileBase(), 300)
		event.AppendAll(w, procs, files, socks, nil, nil)
		if err := w.Seal(); err != nil {
			t.Fatal(err)
		}
	}
	push := func(to *serveProc) (int, error) {
		cfg, err := uplink.LoadConfig(conf)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Server = to.addr // DNS now answers with this receiver
		p, err := uplink.NewPusher(uplink.PushOptions{Config: cfg, Signer: keys.SSH, Queue: spoolQueue(spoolDir), DialTimeout: 20 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		pctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		return p.Drain(pctx)
	}

	// Registered through A, pushed to B: B accepts.
	seal()
	seal()
	if n, err := push(b); err != nil || n != 2 {
		t.Fatalf("push to B: %d segments, %v; want 2", n, err)
	}
	ents, _ := os.ReadDir(stateB.Host(res.HostID).Inbox)
	if len(ents) != 2 {
		t.Fatalf("B's inbox has %d files, want 2", len(ents))
	}

	// B's loader (its own state directory, the shared registry) loads them
	// into the host's shard.
	code, out, errs := runApp(t, "load", "--shards", mapf, "--state-dir", stateB.String())
	if code != 0 {
		t.Fatalf("load on B: %d\n%s%s", code, out, errs)
	}
	var segs int
	if err := shardDB.QueryRowContext(ctx, "SELECT COUNT(*) FROM segments WHERE host_id = ?", res.HostID).Scan(&segs); err != nil || segs != 2 {
		t.Fatalf("shard holds %d segments of %s (%v), want 2", segs, res.HostID, err)
	}

	// Revoked through B's side: A refuses the host.
	code, out, errs = runApp(t, "deregister", "--shards", mapf, "--state-dir", stateB.String(), res.HostID)
	if code != 0 {
		t.Fatalf("deregister: %d\n%s%s", code, out, errs)
	}
	seal()
	if n, err := push(a); err == nil || n != 0 {
		t.Errorf("push to A after revocation through B: %d segments, %v; want refused", n, err)
	}
	if ents, _ := os.ReadDir(stateA.Host(res.HostID).Inbox); len(ents) != 0 {
		t.Errorf("A accepted %d files of a revoked host", len(ents))
	}

	// Hostile requests through A: control characters are refused by the
	// request's parser before anything is stored; C1 controls and bidi
	// overrides pass it, wait for an admin, and are listed through B
	// escaped.
	register := func(hostname, machine string) *uplink.Result {
		t.Helper()
		r, err := uplink.Register(ctx, uplink.RegisterOptions{Server: a.addr, ConfigDir: filepath.Join(dir, "etc-"+machine),
			Password: []byte("correct horse battery staple"), Fingerprint: a.fingerprint,
			Facts: uplink.HostFacts{Hostname: hostname, MachineID: machine}})
		if err != nil {
			t.Fatalf("register %q: %v", hostname, err)
		}
		return r
	}
	if r := register("evil\x1b[2J\x00.example", strings.Repeat("e0", 16)); r.Status != uplink.StatusDenied {
		t.Errorf("registration with control characters: %+v, want denied", r)
	}
	res2 := register("evil\u009b2J\u202eexample", strings.Repeat("e1", 16))
	if res2.Status != uplink.StatusPending {
		t.Fatalf("hostile registration: %+v; want pending", res2)
	}
	code, out, errs = runApp(t, "registrations", "list", "--all", "--shards", mapf, "--state-dir", stateB.String())
	if code != 0 || !strings.Contains(out, res2.RequestID) || strings.Count(out, "\n") != 3 {
		t.Fatalf("registrations list on B: %d\n%s%s", code, out, errs)
	}
	if strings.ContainsAny(out, "\x1b\x00\u009b\u202e") {
		t.Errorf("registrations list passes control characters through:\n%q", out)
	}
	code, out, errs = runApp(t, "registrations", "approve", "--shards", mapf, "--state-dir", stateB.String(), res2.RequestID)
	if code != 0 || !strings.Contains(out, "is on shard s1") {
		t.Fatalf("approve through B: %d\n%s%s", code, out, errs)
	}
	code, out, _ = runApp(t, "registrations", "hosts", "--shards", mapf, "--state-dir", stateA.String())
	if code != 0 || strings.Count(out, "\n") != 3 || !strings.Contains(out, "\n"+res.HostID+" ") || strings.Fields(out[strings.Index(out, "\n"+res.HostID):])[1] != "revoked" {
		t.Errorf("hosts listed through A:\n%s", out)
	}
}

// TestRegistryImport: 'registry import' copies a file registry (hosts with
// their shards, a pending request, a token) into the MariaDB registry, and
// a second run skips what is there; without a registry in the map it is a
// usage error.
func TestRegistryImport(t *testing.T) {
	m := testutil.StartMariaDB(t)
	f := servertest.NewFixture(t, "h1", "h2")
	dir := t.TempDir()
	regDSN, _ := m.NewDatabase(t)
	rf := writeLine(t, dir, "registry.dsn", regDSN)
	sf := writeLine(t, dir, "s1.dsn", regDSN)
	noReg := filepath.Join(dir, "plain.json")
	fm := fleet.Map{Shards: []fleet.Shard{{Name: "s1", AdminDSNFile: sf, LoaderDSNFiles: []string{sf}}}}
	if err := fm.Save(noReg); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runApp(t, "registry", "import", "--shards", noReg, "--state-dir", f.State.String()); code != 2 {
		t.Errorf("import without a registry entry: exit %d, want 2\n%s", code, errs)
	}
	fm.Registry = &fleet.Registry{DSNFile: rf}
	mapf := filepath.Join(dir, "shards.json")
	if err := fm.Save(mapf); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runApp(t, "shards", "pin", "--shards", noReg, "--state-dir", f.State.String(), "h1", "s1"); code != 0 {
		t.Fatalf("pin: %s", errs)
	}
	if code, _, errs := runApp(t, "token", "create", "--shards", noReg, "--state-dir", f.State.String()); code != 0 {
		t.Fatalf("token: %s", errs)
	}
	run := func(want string) {
		t.Helper()
		code, out, errs := runApp(t, "registry", "import", "--shards", mapf, "--state-dir", f.State.String())
		if code != 0 || strings.TrimSpace(out) != want {
			t.Errorf("registry import: exit %d, %q, want %q\n%s", code, out, want, errs)
		}
	}
	run("imported 2 hosts, 0 requests, 1 tokens; skipped 0 already there")
	run("imported 0 hosts, 0 requests, 0 tokens; skipped 3 already there")
	code, out, errs := runApp(t, "shards", "ls", "--shards", mapf, "--state-dir", t.TempDir())
	if code != 0 || !strings.Contains(out, "s1     1") || !strings.Contains(out, "-      1") {
		t.Errorf("shards ls through the MariaDB registry: exit %d\n%s%s", code, out, errs)
	}
}
