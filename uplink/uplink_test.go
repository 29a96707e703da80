package uplink_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"

	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/internal/testutil"
	"github.com/pofr/pofr/receiver"
	"github.com/pofr/pofr/uplink"
)

func sshFingerprint(k ssh.PublicKey) string { return ssh.FingerprintSHA256(k) }

// registerWithToken registers a host with a fresh token and returns its
// config dir.
func registerWithToken(t *testing.T, s *testServer, facts uplink.HostFacts, replace bool) (string, *uplink.Result) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "etc-pofr")
	return dir, registerToken(t, s, dir, facts, replace)
}

// registerAgain registers the host of dir again, with replace and a fresh
// token, keeping its keys.
func registerAgain(t *testing.T, s *testServer, dir string, facts uplink.HostFacts) *uplink.Result {
	t.Helper()
	return registerToken(t, s, dir, facts, true)
}

// registerToken registers the host of dir with a fresh token.
func registerToken(t *testing.T, s *testServer, dir string, facts uplink.HostFacts, replace bool) *uplink.Result {
	t.Helper()
	tok, err := receiver.CreateToken(registry.NewFiles(s.state), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return mustRegister(t, testutil.Deadline(t, 30*time.Second), uplink.RegisterOptions{
		Server: s.addr, ConfigDir: dir, Token: []byte(tok), Fingerprint: s.fingerprint(), Facts: facts, Replace: replace,
	})
}

// mustRegister runs uplink.Register and fails the test on an error.
func mustRegister(t *testing.T, ctx context.Context, opts uplink.RegisterOptions) *uplink.Result {
	t.Helper()
	res, err := uplink.Register(ctx, opts)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	return res
}

// pushAll writes n segments of host, segment i of size(i) bytes, into a new
// spool, pushes them with the registration in dir and waits for every
// upload. It returns the spool, the segments by name, the queue and the
// running pusher.
func pushAll(t *testing.T, dir, host string, n int, size func(i int) int, what string) (string, map[string][]byte, *dirQueue, *uplink.Pusher) {
	t.Helper()
	spool := t.TempDir()
	want := map[string][]byte{}
	for i := range n {
		name := segName(host, i)
		want[name] = writeSegment(t, spool, name, size(i))
	}
	q := &dirQueue{dir: spool}
	p, err := uplink.NewPusher(uplink.PushOptions{ConfigDir: dir, Queue: q, Interval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runPusher(t, p)
	testutil.WaitFor(t, 30*time.Second, what, func() bool { return p.Stats().Uploaded == int64(n) })
	return spool, want, q, p
}

func TestRegisterTokenThenPush(t *testing.T) {
	testutil.RequireTier(t, testutil.TierService)
	s := startReceiver(t, "", "127.0.0.1:0", nil)
	facts := testFacts(t, "web-01.example.org")
	dir, res := registerWithToken(t, s, facts, false)
	if res.Status != uplink.StatusGranted || !strings.HasPrefix(res.HostID, "web-01-") {
		t.Fatalf("Register = %+v, want granted with a host id from the hostname", res)
	}
	if res.Fingerprint != s.fingerprint() {
		t.Errorf("Result.Fingerprint = %s, want %s", res.Fingerprint, s.fingerprint())
	}

	// Client side: 0600 files, 0700 dir, server.json pins the key.
	for _, name := range []string{uplink.SSHKeyFile, uplink.SigningKeyFile, uplink.ConfigFile} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("%s mode = %o, want 600", name, got)
		}
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("config dir mode = %o, want 700", fi.Mode().Perm())
	}
	cfg, err := uplink.LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HostID != res.HostID || cfg.User != res.HostID || cfg.Server != s.addr {
		t.Errorf("server.json = %+v, want host %s at %s", cfg, res.HostID, s.addr)
	}
	keys, err := uplink.EnsureKeys(dir)
	if err != nil {
		t.Fatal(err)
	}

	// Server side: the registry has the host with both keys.
	h, err := registry.Load(s.state, res.HostID)
	if err != nil {
		t.Fatal(err)
	}
	if h.Status != registry.StatusActive || h.SSHKey != keys.SSHAuthorizedKey() || !bytes.Equal(h.SigningKey, keys.Signing.Public().(ed25519.PublicKey)) {
		t.Errorf("registry host = %+v, want active with the client's keys", h)
	}
	if h.MachineID != facts.MachineID || h.Hostname != facts.Hostname {
		t.Errorf("registry facts = %s %s, want %s %s", h.Hostname, h.MachineID, facts.Hostname, facts.MachineID)
	}

	// The token is spent.
	tokens, _ := os.ReadDir(s.state.Tokens())
	if len(tokens) != 0 {
		t.Errorf("%d tokens left after use, want 0", len(tokens))
	}

	// Push 20 segments.
	spool, want, q, p := pushAll(t, dir, res.HostID, 20, func(i int) int { return 1000 + i*997 }, "20 uploads")
	inbox := s.state.Host(res.HostID).Inbox
	got := map[string][]byte{}
	for _, n := range inboxNames(t, inbox) {
		b, err := os.ReadFile(filepath.Join(inbox, n))
		if err != nil {
			t.Fatal(err)
		}
		got[n] = b
		if fi, _ := os.Stat(filepath.Join(inbox, n)); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %o, want 600", n, fi.Mode().Perm())
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("inbox differs from what was sent (-want +got):\n%s", diff)
	}
	if left := inboxNames(t, spool); len(left) != 0 {
		t.Errorf("spool still holds %v", left)
	}
	if !slices.IsSorted(q.Removed()) {
		t.Errorf("removed out of order: %v", q.Removed())
	}
	st := p.Stats()
	if !st.Connected || st.Failures != 0 || st.Backlog != 0 {
		t.Errorf("Stats = %+v, want connected, no failures, no backlog", st)
	}
}

func TestRegisterPasswordPendingApprove(t *testing.T) {
	testutil.RequireTier(t, testutil.TierService)
	s := startReceiver(t, "", "127.0.0.1:0", nil)
	dir := filepath.Join(t.TempDir(), "etc-pofr")
	var asked []string
	opts := uplink.RegisterOptions{
		Server: s.addr, ConfigDir: dir, Password: []byte("correct horse battery"),
		Confirm: func(fp string) bool { asked = append(asked, fp); return true },
		Facts:   testFacts(t, "db-1"),
	}
	ctx := testutil.Deadline(t, 30*time.Second)
	res := mustRegister(t, ctx, opts)
	if res.Status != uplink.StatusPending {
		t.Fatalf("first Register = %+v, want pending", res)
	}
	if diff := cmp.Diff([]string{s.fingerprint()}, asked); diff != "" {
		t.Errorf("Confirm asked (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(dir, uplink.PendingFile)); err != nil {
		t.Errorf("pending.json: %v", err)
	}
	if _, err := uplink.LoadConfig(dir); !errors.Is(err, uplink.ErrNotRegistered) {
		t.Errorf("LoadConfig while pending: %v, want ErrNotRegistered", err)
	}

	// Resume: same request, no second question about the key.
	res2 := mustRegister(t, ctx, opts)
	if res2.Status != uplink.StatusPending || res2.RequestID != res.RequestID {
		t.Fatalf("resumed Register = %+v, want pending %s", res2, res.RequestID)
	}
	if len(asked) != 1 {
		t.Errorf("Confirm asked %d times, want once (the key is pinned in pending.json)", len(asked))
	}
	regs, err := receiver.ListRegistrations(registry.NewFiles(s.state))
	if err != nil {
		t.Fatal(err)
	}
	if len(regs) != 1 || regs[0].RequestID != res.RequestID || regs[0].Status != "pending" || regs[0].Auth != "password" {
		t.Fatalf("ListRegistrations = %+v, want the one pending request", regs)
	}

	r, err := receiver.Approve(registry.NewFiles(s.state), res.RequestID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := receiver.Approve(registry.NewFiles(s.state), res.RequestID); !errors.Is(err, receiver.ErrDecided) {
		t.Errorf("second Approve: %v, want ErrDecided", err)
	}
	res3 := mustRegister(t, ctx, opts)
	if res3.Status != uplink.StatusGranted || res3.HostID != r.HostID {
		t.Fatalf("Register after approval = %+v, want granted %s", res3, r.HostID)
	}
	if _, err := os.Stat(filepath.Join(dir, uplink.PendingFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pending.json after grant: %v, want it removed", err)
	}
	cfg, err := uplink.LoadConfig(dir)
	if err != nil || cfg.HostID != r.HostID {
		t.Fatalf("LoadConfig = %+v, %v", cfg, err)
	}

	// Registering again without replace is refused locally.
	if _, err := uplink.Register(ctx, opts); !errors.Is(err, uplink.ErrAlreadyRegistered) {
		t.Errorf("Register when registered: %v, want ErrAlreadyRegistered", err)
	}
}

func TestRegisterWaitSeesApproval(t *testing.T) {
	testutil.RequireTier(t, testutil.TierService)
	s := startReceiver(t, "", "127.0.0.1:0", nil)
	dir := filepath.Join(t.TempDir(), "etc-pofr")
	ctx := testutil.Deadline(t, 30*time.Second)
	// An admin approves whatever is pending, from another goroutine.
	go func() {
		for ctx.Err() == nil {
			regs, _ := receiver.ListRegistrations(registry.NewFiles(s.state))
			for _, r := range regs {
				if r.Status == "pending" {
					receiver.Approve(registry.NewFiles(s.state), r.RequestID)
					return
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	res, err := uplink.Register(ctx, uplink.RegisterOptions{
		Server: s.addr, ConfigDir: dir, Password: []byte("correct horse battery"), Fingerprint: s.fingerprint(),
		Facts: testFacts(t, "batch-7"), Wait: 20 * time.Second, PollInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != uplink.StatusGranted {
		t.Fatalf("Register --wait = %+v, want granted", res)
	}
}

func TestRegisterDenied(t *testing.T) {
	testutil.RequireTier(t, testutil.TierService)
	s := startReceiver(t, "", "127.0.0.1:0", nil)
	dir := filepath.Join(t.TempDir(), "etc-pofr")
	opts := uplink.RegisterOptions{
		Server: s.addr, ConfigDir: dir, Password: []byte("correct horse battery"), Fingerprint: s.fingerprint(),
		Facts: testFacts(t, "laptop"),
	}
	ctx := testutil.Deadline(t, 30*time.Second)
	res, err := uplink.Register(ctx, opts)
	if err != nil || res.Status != uplink.StatusPending {
		t.Fatalf("Register = %+v, %v; want pending", res, err)
	}
	const reason = "laptops are not monitored"
	if _, err := receiver.Deny(registry.NewFiles(s.state), res.RequestID, reason); err != nil {
		t.Fatal(err)
	}
	res = mustRegister(t, ctx, opts)
	if res.Status != uplink.StatusDenied || res.Reason != reason {
		t.Fatalf("Register after deny = %+v, want denied %q", res, reason)
	}
	if _, err := os.Stat(filepath.Join(dir, uplink.PendingFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pending.json after denial: %v, want removed", err)
	}
	if hosts, _ := registry.List(s.state); len(hosts) != 0 {
		t.Errorf("registry has %d hosts after a denial, want 0", len(hosts))
	}
}

func TestRegisterDuplicateAndReplace(t *testing.T) {
	testutil.RequireTier(t, testutil.TierService)
	s := startReceiver(t, "", "127.0.0.1:0", nil)
	facts := testFacts(t, "app")
	firstDir, first := registerWithToken(t, s, facts, false)
	if first.Status != uplink.StatusGranted {
		t.Fatalf("first registration: %+v", first)
	}
	// Same machine-id, new keys (a reinstall): denied without replace…
	_, dup := registerWithToken(t, s, facts, false)
	if dup.Status != uplink.StatusDenied || !strings.Contains(dup.Reason, first.HostID) || !strings.Contains(dup.Reason, "machine-id") {
		t.Fatalf("duplicate registration = %+v, want denied naming %s and machine-id", dup, first.HostID)
	}
	// …and with replace and a token only pending: new keys do not prove
	// they belong to the host they would revoke (anyone can read a
	// machine-id); an admin decides.
	_, hijack := registerWithToken(t, s, facts, true)
	if hijack.Status != uplink.StatusPending || !strings.Contains(hijack.Reason, first.HostID) {
		t.Fatalf("replace with new keys = %+v, want pending naming %s", hijack, first.HostID)
	}
	if h, err := registry.Load(s.state, first.HostID); err != nil || h.Status != registry.StatusActive {
		t.Fatalf("host after a replace with new keys: %+v, %v; want active", h, err)
	}
	// The same machine with its kept keys replaces its registration with a
	// token, and the old host is revoked.
	rep := registerAgain(t, s, firstDir, facts)
	if rep.Status != uplink.StatusGranted || rep.HostID == first.HostID {
		t.Fatalf("replace = %+v, want granted with a new host id", rep)
	}
	old, err := registry.Load(s.state, first.HostID)
	if err != nil {
		t.Fatal(err)
	}
	if old.Status != registry.StatusRevoked || old.SSHKey != "" {
		t.Errorf("replaced host = %s with key %q, want revoked without key", old.Status, old.SSHKey)
	}

	// With the password, replace waits for an admin, who cannot approve a
	// duplicate that did not ask to replace.
	dir := filepath.Join(t.TempDir(), "pw")
	ctx := testutil.Deadline(t, 30*time.Second)
	res, err := uplink.Register(ctx, uplink.RegisterOptions{Server: s.addr, ConfigDir: dir, Password: []byte("correct horse battery"),
		Fingerprint: s.fingerprint(), Facts: facts})
	if err != nil || res.Status != uplink.StatusDenied {
		t.Fatalf("password duplicate = %+v, %v; want denied", res, err)
	}
	res, err = uplink.Register(ctx, uplink.RegisterOptions{Server: s.addr, ConfigDir: dir, Password: []byte("correct horse battery"),
		Fingerprint: s.fingerprint(), Facts: facts, Replace: true})
	if err != nil || res.Status != uplink.StatusPending {
		t.Fatalf("password replace = %+v, %v; want pending", res, err)
	}
	r, err := receiver.Approve(registry.NewFiles(s.state), res.RequestID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{rep.HostID}, r.Replaces); diff != "" {
		t.Errorf("approved replace revoked (-want +got):\n%s", diff)
	}
}

func TestRegisterHostKeyChecks(t *testing.T) {
	testutil.RequireTier(t, testutil.TierService)
	s := startReceiver(t, "", "127.0.0.1:0", nil)
	ctx := testutil.Deadline(t, 30*time.Second)
	base := uplink.RegisterOptions{Server: s.addr, Password: []byte("correct horse battery"), Facts: testFacts(t, "x")}

	o := base
	o.ConfigDir, o.Fingerprint = t.TempDir(), "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	if _, err := uplink.Register(ctx, o); !errors.Is(err, uplink.ErrHostKeyRejected) {
		t.Errorf("Register with a wrong fingerprint: %v, want ErrHostKeyRejected", err)
	}
	o = base
	o.ConfigDir, o.Confirm = t.TempDir(), func(string) bool { return false }
	if _, err := uplink.Register(ctx, o); !errors.Is(err, uplink.ErrHostKeyRejected) {
		t.Errorf("Register with the key not confirmed: %v, want ErrHostKeyRejected", err)
	}
	o = base
	o.ConfigDir, o.Fingerprint, o.Password = t.TempDir(), s.fingerprint(), []byte("wrong password")
	if _, err := uplink.Register(ctx, o); !errors.Is(err, uplink.ErrAuth) {
		t.Errorf("Register with a wrong password: %v, want ErrAuth", err)
	}
	if regs, _ := receiver.ListRegistrations(registry.NewFiles(s.state)); len(regs) != 0 {
		t.Errorf("%d requests stored from refused connections, want 0", len(regs))
	}
}

func TestPushRefusesWrongHostKey(t *testing.T) {
	testutil.RequireTier(t, testutil.TierService)
	s := startReceiver(t, "", "127.0.0.1:0", nil)
	dir, res := registerWithToken(t, s, testFacts(t, "h"), false)
	cfg, err := uplink.LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Another server (another host key) on another address takes the place.
	other := startReceiver(t, "", "127.0.0.1:0", nil)
	cfg.Server = other.addr
	spool := t.TempDir()
	writeSegment(t, spool, segName(res.HostID, 1), 100)
	signer, err := uplink.LoadSSHKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	p, err := uplink.NewPusher(uplink.PushOptions{Config: cfg, Signer: signer, Queue: &dirQueue{dir: spool}, MaxBackoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runPusher(t, p)
	testutil.WaitFor(t, 20*time.Second, "a failed attempt", func() bool { return p.Stats().Failures >= 2 })
	st := p.Stats()
	if st.Uploaded != 0 || st.Connected || !strings.Contains(st.LastError, "host key") {
		t.Errorf("Stats = %+v, want no upload, not connected, a host key error", st)
	}
	if other.srv.Stats().AuthFailures != 0 || other.srv.Stats().Uploads != 0 {
		t.Errorf("impostor server saw %+v: the client must stop before authenticating", other.srv.Stats())
	}
}

func TestPushIdempotentResend(t *testing.T) {
	testutil.RequireTier(t, testutil.TierService)
	s := startReceiver(t, "", "127.0.0.1:0", nil)
	dir, res := registerWithToken(t, s, testFacts(t, "h"), false)
	spool := t.TempDir()
	name := segName(res.HostID, 7)
	data := writeSegment(t, spool, name, 5000)
	// The server got it, the client crashed before removing it.
	inbox := s.state.Host(res.HostID).Inbox
	if err := os.WriteFile(filepath.Join(inbox, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
	q := &dirQueue{dir: spool}
	p, err := uplink.NewPusher(uplink.PushOptions{ConfigDir: dir, Queue: q})
	if err != nil {
		t.Fatal(err)
	}
	runPusher(t, p)
	testutil.WaitFor(t, 20*time.Second, "the local copy removed", func() bool { return len(q.Removed()) == 1 })
	if got := s.srv.Stats().Uploads; got != 0 {
		t.Errorf("server renamed %d uploads, want 0 (the file was there)", got)
	}
	b, _ := os.ReadFile(filepath.Join(inbox, name))
	if !bytes.Equal(b, data) {
		t.Error("inbox copy changed")
	}
}

func TestPushOutage(t *testing.T) {
	testutil.RequireTier(t, testutil.TierService)
	s := startReceiver(t, "", "127.0.0.1:0", nil)
	dir, res := registerWithToken(t, s, testFacts(t, "h"), false)
	spool := t.TempDir()
	q := &dirQueue{dir: spool}
	p, err := uplink.NewPusher(uplink.PushOptions{ConfigDir: dir, Queue: q, Interval: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// Whoever sees a segment leave the spool must see the uplink healthy:
	// a planned stop reads that to decide whether to push its last segment.
	var staleErrs atomic.Int32
	q.onRemove = func(string) {
		if p.Stats().LastError != "" {
			staleErrs.Add(1)
		}
	}
	runPusher(t, p)

	const total = 120
	seq := 0
	produce := func(n int) {
		for range n {
			writeSegment(t, spool, segName(res.HostID, seq), 2000+seq)
			seq++
			p.Notify()
			time.Sleep(2 * time.Millisecond)
		}
	}
	produce(40)
	testutil.WaitFor(t, 20*time.Second, "40 uploads before the outage", func() bool { return p.Stats().Uploaded >= 40 })

	s.stop() // outage: the client keeps producing
	produce(40)
	testutil.WaitFor(t, 20*time.Second, "failed attempts during the outage", func() bool { return p.Stats().Failures >= 3 })
	if st := p.Stats(); st.Uploaded != 40 || st.Connected {
		t.Fatalf("during outage Stats = %+v, want 40 uploaded and disconnected", st)
	}
	produce(20)

	s2 := startReceiver(t, s.state, s.addr, nil) // same state, same address
	produce(total - seq)
	testutil.WaitFor(t, 60*time.Second, "every segment after the restart", func() bool { return p.Stats().Uploaded == total })

	var want []string
	for i := range total {
		want = append(want, segName(res.HostID, i))
	}
	if diff := cmp.Diff(want, inboxNames(t, s.state.Host(res.HostID).Inbox)); diff != "" {
		t.Errorf("inbox after outage (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, q.Removed()); diff != "" {
		t.Errorf("removal order, once each (-want +got):\n%s", diff)
	}
	if got := s.srv.Stats().Uploads + s2.srv.Stats().Uploads; got != total {
		t.Errorf("server renames = %d, want %d (none twice)", got, total)
	}
	if left := inboxNames(t, spool); len(left) != 0 {
		t.Errorf("spool still holds %v", left)
	}
	if n := staleErrs.Load(); n != 0 {
		t.Errorf("%d segments left the spool while Stats still reported the outage's error", n)
	}
}

func TestDeregister(t *testing.T) {
	testutil.RequireTier(t, testutil.TierService)
	s := startReceiver(t, "", "127.0.0.1:0", nil)
	dir, res := registerWithToken(t, s, testFacts(t, "h"), false)
	signer, err := uplink.LoadSSHKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := uplink.LoadConfig(dir)
	dr, err := uplink.Deregister(testutil.Deadline(t, 20*time.Second), dir, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !dr.Notified || len(dr.Removed) != 3 {
		t.Errorf("Deregister = %+v, want notified and 3 files removed", dr)
	}
	for _, n := range []string{uplink.SSHKeyFile, uplink.SigningKeyFile, uplink.ConfigFile} {
		if _, err := os.Stat(filepath.Join(dir, n)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after deregister: %v", n, err)
		}
	}
	h, err := registry.Load(s.state, res.HostID)
	if err != nil {
		t.Fatal(err)
	}
	if h.Status != registry.StatusRevoked || h.SSHKey != "" {
		t.Errorf("host after deregister = %s key %q, want revoked, no key", h.Status, h.SSHKey)
	}
	// The old key no longer logs in.
	hk, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(cfg.HostKey))
	_, err = ssh.Dial("tcp", s.addr, &ssh.ClientConfig{User: res.HostID, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(hk), Timeout: 10 * time.Second})
	if err == nil {
		t.Error("revoked key still logs in")
	}
}

func TestPushToOpenSSH(t *testing.T) {
	dir := t.TempDir()
	keys, err := uplink.EnsureKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	sshd := testutil.StartSSHD(t, testutil.SSHDConfig{
		AuthorizedKeysLines: []string{"restrict " + keys.SSHAuthorizedKey()},
		Chroot:              true,
	})
	const host = "h-0a0b0c0d"
	cfg := &uplink.Config{
		Server:    sshd.Addr,
		HostKey:   strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshd.HostKey))),
		HostID:    host,
		User:      sshd.User,
		RemoteDir: sshd.RemoteInbox,
	}
	if err := uplink.SaveConfig(dir, cfg); err != nil {
		t.Fatal(err)
	}
	spool, want, q, p := pushAll(t, dir, host, 10, func(i int) int { return 3000 * (i + 1) }, "10 uploads to sshd")
	got := map[string][]byte{}
	for _, n := range inboxNames(t, sshd.Inbox) {
		got[n], _ = os.ReadFile(filepath.Join(sshd.Inbox, n))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sshd inbox (-want +got):\n%s\nsshd log:\n%s", diff, sshd.Log())
	}
	// Idempotent resend against sshd too: put one back locally.
	n := segName(host, 3)
	writeSegment(t, spool, n, len(want[n]))
	p.Notify()
	testutil.WaitFor(t, 20*time.Second, "the resent segment removed", func() bool { return len(q.Removed()) == 11 })
	if st := p.Stats(); st.Failures != 0 {
		t.Errorf("Stats = %+v, want no failures", st)
	}
}

// TestPushAfterIdleClose: the server closes a connection that moved no data
// for its idle timeout, keep-alives or not; the next push connects again
// without a failed attempt.
func TestPushAfterIdleClose(t *testing.T) {
	testutil.RequireTier(t, testutil.TierService)
	s := startReceiver(t, "", "127.0.0.1:0", func(o *receiver.Options) { o.IdleTimeout = 300 * time.Millisecond })
	dir, res := registerWithToken(t, s, testFacts(t, "h"), false)
	spool := t.TempDir()
	q := &dirQueue{dir: spool}
	p, err := uplink.NewPusher(uplink.PushOptions{ConfigDir: dir, Queue: q, Interval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runPusher(t, p)
	writeSegment(t, spool, segName(res.HostID, 1), 3000)
	p.Notify()
	testutil.WaitFor(t, 20*time.Second, "the first upload", func() bool { return p.Stats().Uploaded == 1 })
	time.Sleep(time.Second) // the server closes the connection after 300 ms without data
	writeSegment(t, spool, segName(res.HostID, 2), 3000)
	p.Notify()
	testutil.WaitFor(t, 20*time.Second, "the second upload", func() bool { return p.Stats().Uploaded == 2 })
	if st := p.Stats(); st.Failures != 0 {
		t.Errorf("pusher stats %+v: want no failed attempt after the server closed an idle connection", st)
	}
	if got := s.srv.Stats().Conns; got != 3 {
		t.Errorf("server saw %d connections, want 3 (registration, one closed for idleness, one more)", got)
	}
}
