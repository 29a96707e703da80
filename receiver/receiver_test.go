package receiver

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/internal/testutil"
	"github.com/pofr/pofr/wire"
)

func TestMain(m *testing.M) { testutil.Main(m) }

type fixture struct {
	srv   *Server
	state statedir.Dir
	addr  string
	keys  map[string]ssh.Signer // host id → upload key
}

// start runs a server with hosts "host-a" and "host-b" registered.
func start(t *testing.T, mod func(*Options)) *fixture {
	t.Helper()
	testutil.RequireTier(t, testutil.TierService)
	f := &fixture{state: statedir.Dir(t.TempDir()), keys: map[string]ssh.Signer{}}
	for i, id := range []string{"host-a", "host-b"} {
		k := testutil.NewSigner(t)
		f.keys[id] = k
		err := registry.Save(f.state, &registry.Host{
			HostID: id, Facts: wire.Facts{Hostname: id, MachineID: fmt.Sprintf("%032x", i+1)},
			SSHKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k.PublicKey()))), SigningKey: make([]byte, 32),
			Status: registry.StatusActive, RegisteredAt: time.Now(),
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	o := Options{StateDir: f.state, RegistrationPassword: []byte("registration-secret"), MaxSegmentBytes: 1 << 20}
	if mod != nil {
		mod(&o)
	}
	var err error
	if f.srv, err = NewServer(o); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	testutil.Go(t, "Serve", func(ctx context.Context) error { return f.srv.Serve(ctx, ln) })
	return f
}

func (f *fixture) dial(user string, auth ...ssh.AuthMethod) (*ssh.Client, error) {
	return ssh.Dial("tcp", f.addr, &ssh.ClientConfig{
		User: user, Auth: auth, HostKeyCallback: ssh.FixedHostKey(f.srv.HostKey()), Timeout: 10 * time.Second,
	})
}

func (f *fixture) sftpAs(t *testing.T, host string) *sftp.Client {
	t.Helper()
	c, err := f.dial(host, ssh.PublicKeys(f.keys[host]))
	if err != nil {
		t.Fatalf("log in as %s: %v", host, err)
	}
	t.Cleanup(func() { c.Close() })
	sc, err := sftp.NewClient(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	return sc
}

func seg(host string, seq int) string { return fmt.Sprintf("%s_%020d_%016x.pofr", host, seq, seq) }

// put writes data to the temporary name and renames it.
func put(sc *sftp.Client, name string, data []byte) error {
	part := wire.PartName(name)
	f, err := sc.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	if err := sc.PosixRename(part, name); err != nil {
		return fmt.Errorf("rename: %w", err)
	}
	return nil
}

func TestHostKeyKept(t *testing.T) {
	f := start(t, nil)
	again, err := NewServer(Options{StateDir: f.state})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.HostKey().Marshal(), f.srv.HostKey().Marshal()) {
		t.Error("second NewServer on the same state has another host key")
	}
	fi, err := os.Stat(filepath.Join(f.state.String(), HostKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("host key file: %v mode %v, want 0600", err, fi.Mode())
	}
}

func TestAuthRefusals(t *testing.T) {
	f := start(t, nil)
	cases := map[string]struct {
		user string
		auth ssh.AuthMethod
	}{
		"unregistered key":            {"host-a", ssh.PublicKeys(testutil.NewSigner(t))},
		"key of another host":         {"host-b", ssh.PublicKeys(f.keys["host-a"])},
		"host key as register":        {wire.RegisterUser, ssh.PublicKeys(f.keys["host-a"])},
		"password for an upload user": {"host-a", ssh.Password("registration-secret")},
		"unknown user":                {"root", ssh.PublicKeys(f.keys["host-a"])},
		"path user":                   {"../host-a", ssh.PublicKeys(f.keys["host-a"])},
	}
	for name, tc := range cases {
		if c, err := f.dial(tc.user, tc.auth); err == nil {
			c.Close()
			t.Errorf("%s: logged in, want refused", name)
		}
	}
	if c, err := f.dial("host-a", ssh.PublicKeys(f.keys["host-a"])); err != nil {
		t.Errorf("host-a with its key: %v", err)
	} else {
		c.Close()
	}
	// A revoked host is refused.
	if err := Revoke(registry.NewFiles(f.state), "host-a", false); err != nil {
		t.Fatal(err)
	}
	if c, err := f.dial("host-a", ssh.PublicKeys(f.keys["host-a"])); err == nil {
		c.Close()
		t.Error("revoked host logged in")
	}
}

func TestSFTPConfinement(t *testing.T) {
	f := start(t, nil)
	a := f.sftpAs(t, "host-a")
	b := f.sftpAs(t, "host-b")
	inboxA := f.state.Host("host-a").Inbox
	inboxB := f.state.Host("host-b").Inbox
	dataB := []byte("host b evidence")
	if err := put(b, seg("host-b", 1), dataB); err != nil {
		t.Fatalf("host-b uploads its own segment: %v", err)
	}
	dataA := []byte("host a evidence")
	if err := put(a, seg("host-a", 1), dataA); err != nil {
		t.Fatalf("host-a uploads its own segment: %v", err)
	}
	if w, err := a.Create("/" + wire.PartName(seg("host-a", 2))); err != nil {
		t.Fatalf("host-a creates with an absolute path in its root: %v", err)
	} else {
		w.Close()
	}
	if err := a.Rename("/"+wire.PartName(seg("host-a", 2)), "/"+seg("host-a", 2)); err != nil {
		t.Fatalf("host-a renames with absolute paths in its root: %v", err)
	}

	// Symlinks planted in A's inbox (by anyone but A) are not followed.
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("secret"), 0o600)
	planted := wire.PartName(seg("host-a", 9))
	if err := os.Symlink(secret, filepath.Join(inboxA, planted)); err != nil {
		t.Fatal(err)
	}
	plantedB := wire.PartName(seg("host-a", 10))
	if err := os.Symlink(filepath.Join(inboxB, seg("host-b", 1)), filepath.Join(inboxA, plantedB)); err != nil {
		t.Fatal(err)
	}

	refused := map[string]func() error{
		"read own segment":   func() error { _, err := a.Open(seg("host-a", 1)); return err },
		"read B's segment":   func() error { _, err := a.Open("../host-b/" + seg("host-b", 1)); return err },
		"read /etc/passwd":   func() error { _, err := a.Open("/etc/passwd"); return err },
		"list own inbox":     func() error { _, err := a.ReadDir("/"); return err },
		"list B's inbox":     func() error { _, err := a.ReadDir("../host-b"); return err },
		"list state dir":     func() error { _, err := a.ReadDir("/.."); return err },
		"stat B's segment":   func() error { _, err := a.Stat("../host-b/" + seg("host-b", 1)); return err },
		"stat name of B":     func() error { _, err := a.Stat(seg("host-b", 1)); return err },
		"create name of B":   func() error { return put(a, seg("host-b", 2), dataA) },
		"create B's path":    func() error { _, err := a.Create("../host-b/" + wire.PartName(seg("host-b", 3))); return err },
		"create absolute":    func() error { _, err := a.Create(inboxA + "/" + wire.PartName(seg("host-a", 3))); return err },
		"create final name":  func() error { _, err := a.Create(seg("host-a", 4)); return err },
		"create other name":  func() error { _, err := a.Create("authorized_keys"); return err },
		"overwrite own":      func() error { return put(a, seg("host-a", 1), []byte("forged")) },
		"remove own segment": func() error { return a.Remove(seg("host-a", 1)) },
		"remove B's":         func() error { return a.Remove("../host-b/" + seg("host-b", 1)) },
		"rename onto B":      func() error { return a.Rename(wire.PartName(seg("host-a", 5)), "../host-b/"+seg("host-b", 1)) },
		"rename to other":    func() error { return a.Rename(wire.PartName(seg("host-a", 5)), seg("host-a", 6)) },
		"mkdir":              func() error { return a.Mkdir("x") },
		"symlink":            func() error { return a.Symlink("/etc/passwd", wire.PartName(seg("host-a", 7))) },
		"hard link":          func() error { return a.Link("../host-b/"+seg("host-b", 1), wire.PartName(seg("host-a", 8))) },
		"write via symlink":  func() error { _, err := a.Create(planted); return err },
		"write via link B":   func() error { _, err := a.Create(plantedB); return err },
		"readlink":           func() error { _, err := a.ReadLink(planted); return err },
	}
	for name, op := range refused {
		if err := op(); err == nil {
			t.Errorf("%s: allowed, want refused", name)
		}
	}

	// Nothing changed outside what A may create.
	if b, _ := os.ReadFile(secret); string(b) != "secret" {
		t.Errorf("file behind the planted symlink = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(inboxB, seg("host-b", 1))); !bytes.Equal(b, dataB) {
		t.Errorf("B's segment = %q, want %q", b, dataB)
	}
	if b, _ := os.ReadFile(filepath.Join(inboxA, seg("host-a", 1))); !bytes.Equal(b, dataA) {
		t.Errorf("A's segment = %q, want %q (no overwrite)", b, dataA)
	}
	ents, _ := os.ReadDir(inboxB)
	if len(ents) != 1 {
		t.Errorf("B's inbox has %d entries, want 1", len(ents))
	}

	// ".." stops at the root of A's inbox, as in a chroot: the file lands
	// there, nowhere above.
	w, err := a.Create("../../" + wire.PartName(seg("host-a", 3)))
	if err != nil {
		t.Fatalf("create ../../name: %v", err)
	}
	w.Close()
	if _, err := os.Lstat(filepath.Join(inboxA, wire.PartName(seg("host-a", 3)))); err != nil {
		t.Errorf("../../name not in A's inbox: %v", err)
	}
	for _, dir := range []string{f.state.String(), filepath.Dir(inboxA)} {
		if _, err := os.Lstat(filepath.Join(dir, wire.PartName(seg("host-a", 3)))); err == nil {
			t.Errorf("../../name escaped to %s", dir)
		}
	}

	// What A may do: stat its own segment (idempotent resend), remove its
	// own temporary file.
	fi, err := a.Stat(seg("host-a", 1))
	if err != nil || fi.Size() != int64(len(dataA)) {
		t.Errorf("stat own segment = %v, %v; want size %d", fi, err, len(dataA))
	}
	if _, err := a.Stat(seg("host-a", 99)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat of a missing own segment: %v, want not exist", err)
	}
	w, err = a.Create(wire.PartName(seg("host-a", 11)))
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := a.Remove(wire.PartName(seg("host-a", 11))); err != nil {
		t.Errorf("remove own temporary file: %v", err)
	}
}

func TestSFTPSizeLimit(t *testing.T) {
	f := start(t, func(o *Options) { o.MaxSegmentBytes = 64 << 10 })
	a := f.sftpAs(t, "host-a")
	if err := put(a, seg("host-a", 1), make([]byte, 64<<10)); err != nil {
		t.Errorf("upload at the limit: %v", err)
	}
	if err := put(a, seg("host-a", 2), make([]byte, 64<<10+1)); err == nil {
		t.Error("upload over the limit succeeded")
	}
	ents, _ := os.ReadDir(f.state.Host("host-a").Inbox)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) != 1 || names[0] != seg("host-a", 1) {
		t.Errorf("inbox = %v, want only the segment at the limit", names)
	}
}

func TestNoShellExecPtyForwarding(t *testing.T) {
	f := start(t, nil)
	tok, err := CreateToken(registry.NewFiles(f.state), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	clients := map[string][]ssh.AuthMethod{
		"host-a":          {ssh.PublicKeys(f.keys["host-a"])},
		wire.RegisterUser: {ssh.Password(tok)},
	}
	for user, auth := range clients {
		c, err := f.dial(user, auth...)
		if err != nil {
			t.Fatalf("log in as %s: %v", user, err)
		}
		defer c.Close()
		try := func(what string, op func(*ssh.Session) error) {
			s, err := c.NewSession()
			if err != nil {
				t.Fatalf("%s: open session: %v", user, err)
			}
			defer s.Close()
			if err := op(s); err == nil {
				t.Errorf("%s: %s granted, want refused", user, what)
			}
		}
		try("shell", func(s *ssh.Session) error { return s.Shell() })
		try("exec", func(s *ssh.Session) error { return s.Start("id") })
		try("pty", func(s *ssh.Session) error { return s.RequestPty("xterm", 24, 80, nil) })
		try("env", func(s *ssh.Session) error { return s.Setenv("LD_PRELOAD", "/tmp/x.so") })
		try("other subsystem", func(s *ssh.Session) error { return s.RequestSubsystem("netconf") })
		try("x11", func(s *ssh.Session) error {
			ok, err := s.SendRequest("x11-req", true, make([]byte, 16))
			if err == nil && !ok {
				return errors.New("refused")
			}
			return err
		})
		if user == "host-a" {
			try("register subsystem", func(s *ssh.Session) error { return s.RequestSubsystem(wire.RegisterSubsystem) })
		} else {
			try("sftp subsystem", func(s *ssh.Session) error { return s.RequestSubsystem("sftp") })
		}
		if conn, err := c.Dial("tcp", f.addr); err == nil {
			conn.Close()
			t.Errorf("%s: direct-tcpip granted", user)
		}
		if ln, err := c.Listen("tcp", "127.0.0.1:0"); err == nil {
			ln.Close()
			t.Errorf("%s: tcpip-forward granted", user)
		}
		if _, _, err := c.OpenChannel("direct-streamlocal@openssh.com", nil); err == nil {
			t.Errorf("%s: streamlocal channel granted", user)
		}
	}
}

// registerCall sends raw bytes on the registration subsystem.
func registerCall(t *testing.T, f *fixture, secret string, body func(sessionID []byte) []byte) *wire.Response {
	t.Helper()
	c, err := f.dial(wire.RegisterUser, ssh.Password(secret))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	in, _ := s.StdinPipe()
	out, _ := s.StdoutPipe()
	if err := s.RequestSubsystem(wire.RegisterSubsystem); err != nil {
		t.Fatal(err)
	}
	go func() {
		in.Write(body(c.SessionID()))
		in.Close()
	}()
	b, err := io.ReadAll(io.LimitReader(out, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	r, err := wire.ParseResponse(b)
	if err != nil {
		t.Fatalf("response %q: %v", b, err)
	}
	return r
}

func goodRequest(t *testing.T, sessionID []byte, key ssh.Signer, machine string) *wire.Request {
	r := &wire.Request{
		Version: wire.Version, RequestID: fmt.Sprintf("%032x", time.Now().UnixNano()),
		Facts:  wire.Facts{Hostname: "new-host", MachineID: machine},
		SSHKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key.PublicKey()))), SigningKey: make([]byte, 32),
	}
	sig, err := key.Sign(rand.Reader, wire.ProofData(sessionID, r.RequestID))
	if err != nil {
		t.Fatal(err)
	}
	r.Proof = ssh.Marshal(sig)
	return r
}

func TestRegistrationRequestsRefused(t *testing.T) {
	f := start(t, nil)
	key := testutil.NewSigner(t)
	cases := map[string]func([]byte) []byte{
		"garbage": func([]byte) []byte { return []byte("\x00\x01garbage") },
		"empty":   func([]byte) []byte { return nil },
		"huge":    func([]byte) []byte { return bytes.Repeat([]byte("{"), 4<<20) },
		"unknown field": func(sid []byte) []byte {
			b, _ := json.Marshal(goodRequest(t, sid, key, "aa"+strings.Repeat("0", 30)))
			return append(b[:len(b)-1], []byte(`,"cmd":"x"}`)...)
		},
		"bad machine id": func(sid []byte) []byte { b, _ := json.Marshal(goodRequest(t, sid, key, "../../x")); return b },
		"proof of another session": func([]byte) []byte {
			b, _ := json.Marshal(goodRequest(t, []byte("elsewhere"), key, strings.Repeat("b", 32)))
			return b
		},
		"proof by another key": func(sid []byte) []byte {
			r := goodRequest(t, sid, key, strings.Repeat("c", 32))
			r.SSHKey = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(testutil.NewSigner(t).PublicKey())))
			b, _ := json.Marshal(r)
			return b
		},
	}
	for name, body := range cases {
		r := registerCall(t, f, "registration-secret", body)
		if r.Status != wire.StatusDenied || r.Reason == "" {
			t.Errorf("%s: response %+v, want denied with a reason", name, r)
		}
	}
	if regs, _ := ListRegistrations(registry.NewFiles(f.state)); len(regs) != 0 {
		t.Errorf("%d requests stored, want 0", len(regs))
	}
	// The server still answers a good one.
	r := registerCall(t, f, "registration-secret", func(sid []byte) []byte {
		b, _ := json.Marshal(goodRequest(t, sid, key, strings.Repeat("d", 32)))
		return b
	})
	if r.Status != wire.StatusPending {
		t.Errorf("good request: %+v, want pending", r)
	}
	// A duplicate of host-a's machine id is denied at once.
	r = registerCall(t, f, "registration-secret", func(sid []byte) []byte {
		b, _ := json.Marshal(goodRequest(t, sid, testutil.NewSigner(t), fmt.Sprintf("%032x", 1)))
		return b
	})
	if r.Status != wire.StatusDenied || !strings.Contains(r.Reason, "host-a") {
		t.Errorf("duplicate: %+v, want denied naming host-a", r)
	}
}

func TestPasswordAttemptsLimited(t *testing.T) {
	f := start(t, func(o *Options) { o.AuthFailuresPerMinute = 5 })
	// Per connection: at most maxAuthTries attempts, however many the client
	// offers.
	c, err := f.dial(wire.RegisterUser, ssh.RetryableAuthMethod(ssh.Password("guess"), 20))
	if err == nil {
		c.Close()
		t.Fatal("wrong password logged in")
	}
	if got := f.srv.Stats().AuthFailures; got > maxAuthTries {
		t.Errorf("one connection made %d failed attempts, want at most %d", got, maxAuthTries)
	}
	// Globally: after the budget is spent, even the right password fails
	// until it refills (5 a minute: not within this test).
	for range 3 {
		if c, err := f.dial(wire.RegisterUser, ssh.Password("guess")); err == nil {
			c.Close()
		}
	}
	if c, err := f.dial(wire.RegisterUser, ssh.Password("registration-secret")); err == nil {
		c.Close()
		t.Error("right password accepted after the failure budget was spent")
	}
	// Upload keys are not affected by the password budget.
	if c, err := f.dial("host-a", ssh.PublicKeys(f.keys["host-a"])); err != nil {
		t.Errorf("host-a after password brute force: %v", err)
	} else {
		c.Close()
	}
}

func TestConnectionLimitAndIdle(t *testing.T) {
	f := start(t, func(o *Options) { o.MaxConns = 1; o.IdleTimeout = 300 * time.Millisecond })
	c1, err := f.dial("host-a", ssh.PublicKeys(f.keys["host-a"]))
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	if c2, err := f.dial("host-b", ssh.PublicKeys(f.keys["host-b"])); err == nil {
		c2.Close()
		t.Error("second connection accepted with MaxConns 1")
	}
	// The idle connection is closed by the server.
	done := make(chan error, 1)
	go func() { done <- c1.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("idle connection still open after 20 s (idle timeout 300 ms)")
	}
	// The server frees the slot just after it closes the connection, so the
	// client may see the close first: retry for a while.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c3, err := f.dial("host-b", ssh.PublicKeys(f.keys["host-b"]))
		if err == nil {
			c3.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection after the idle one ended: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFailureLimiter(t *testing.T) {
	l := newFailureLimiter(2, time.Minute)
	t0 := time.Unix(1000, 0)
	for i := range 2 {
		if !l.allow(t0) {
			t.Fatalf("attempt %d refused within budget", i)
		}
		l.fail(t0)
	}
	if l.allow(t0) {
		t.Error("allowed after the budget was spent")
	}
	if l.allow(t0.Add(10 * time.Second)) {
		t.Error("allowed after 10 s, want one refill per 30 s")
	}
	if !l.allow(t0.Add(31 * time.Second)) {
		t.Error("refused after 31 s, want one attempt refilled")
	}
}

// TestTokenReplaceNeedsOldKey: a one-time token and another host's
// machine-id (world-readable on that host) do not revoke that host; the
// request waits for an admin. The same machine with its kept upload key may
// replace its registration with a token, and the log names both hosts.
func TestTokenReplaceNeedsOldKey(t *testing.T) {
	var logs testutil.SyncBuffer
	f := start(t, func(o *Options) { o.Log = slog.New(slog.NewTextHandler(&logs, nil)) })
	victimMachine := fmt.Sprintf("%032x", 1) // host-a's
	replaceWith := func(key ssh.Signer) *wire.Response {
		tok, err := CreateToken(registry.NewFiles(f.state), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return registerCall(t, f, tok, func(sid []byte) []byte {
			r := goodRequest(t, sid, key, victimMachine)
			r.Replace = true
			sig, err := key.Sign(rand.Reader, wire.ProofData(sid, r.RequestID))
			if err != nil {
				t.Fatal(err)
			}
			r.Proof = ssh.Marshal(sig)
			b, _ := json.Marshal(r)
			return b
		})
	}
	r := replaceWith(testutil.NewSigner(t))
	if r.Status != wire.StatusPending || !strings.Contains(r.Reason, "host-a") {
		t.Errorf("token + replace + another host's machine-id = %+v, want pending naming host-a", r)
	}
	if h, err := registry.Load(f.state, "host-a"); err != nil || h.Status != registry.StatusActive {
		t.Fatalf("host-a after a stranger's replace: %+v, %v; want active", h, err)
	}
	if c, err := f.dial("host-a", ssh.PublicKeys(f.keys["host-a"])); err != nil {
		t.Errorf("host-a cannot log in after a stranger's replace: %v", err)
	} else {
		c.Close()
	}

	// host-a itself, with its upload key, replaces its registration.
	r = replaceWith(f.keys["host-a"])
	if r.Status != wire.StatusGranted || r.HostID == "host-a" {
		t.Fatalf("replace signed by host-a's key = %+v, want granted with a new host id", r)
	}
	if h, _ := registry.Load(f.state, "host-a"); h.Status != registry.StatusRevoked {
		t.Errorf("host-a after its own replace: %s, want revoked", h.Status)
	}
	out := logs.String()
	if !strings.Contains(out, "host replaced") || !strings.Contains(out, r.HostID) || !strings.Contains(out, "replaced_host_ids=[host-a]") {
		t.Errorf("log does not name both hosts of the replacement:\n%s", out)
	}
}
