package testutil

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pofr/pofr/internal/daemon"
)

// SSHDConfig says how [StartSSHD] sets up sshd and its account.
type SSHDConfig struct {
	// AuthorizedKeys may log in to the account.
	AuthorizedKeys []ssh.PublicKey
	// AuthorizedKeysLines go into authorized_keys as they are, for keys with
	// options such as restrict or from="…".
	AuthorizedKeysLines []string
	// Chroot confines the account to SFTP inside a chroot (ChrootDirectory,
	// ForceCommand internal-sftp), the setup documented for sites that push
	// to a stock sshd. Without it the account may use the sftp subsystem
	// (internal-sftp) on the whole file system, as its permissions allow.
	Chroot bool
	// Config lines are added to sshd_config ahead of the account's Match
	// block.
	Config []string
}

// SSHD is a stock OpenSSH sshd listening on 127.0.0.1 with its own host key
// and one system account that logs in with public keys only. [StartSSHD]
// starts one per test.
type SSHD struct {
	// Addr is the address sshd listens on, 127.0.0.1:port.
	Addr string
	// HostKey is sshd's host key, to pin in clients.
	HostKey ssh.PublicKey
	// User is the name of the account.
	User string
	// Chroot is the host path of the account's ChrootDirectory, or "" when
	// SSHDConfig.Chroot is false. It is owned by root and not writable by
	// the account.
	Chroot string
	// Inbox is the host path of a directory owned by the account, where it
	// can create files.
	Inbox string
	// RemoteInbox is Inbox as the client sees it: "/inbox" inside the chroot,
	// else the same as Inbox. It is also the account's home directory, where
	// SFTP sessions start.
	RemoteInbox string

	dir string
	srv *daemon.Process
	log *logBuffer
}

// sshdReady bounds the wait for a new sshd to listen.
const sshdReady = 15 * time.Second

// accounts serialises useradd and userdel within the test process.
var accounts sync.Mutex

// StartSSHD starts /usr/sbin/sshd -D -e on a free port of 127.0.0.1 with a
// temporary configuration, host key and system account, and stops and
// removes all of it when the test ends. It needs root (for the account and
// the chroot) and skips the test (tier service) without root or without
// OpenSSH.
func StartSSHD(t testing.TB, cfg SSHDConfig) *SSHD {
	t.Helper()
	RequireTier(t, TierService)
	sshd, err := daemon.LookTool("sshd")
	if err != nil {
		Skip(t, TierService, fmt.Sprintf("%v; apt-get install openssh-server", err))
	}
	if euid := os.Geteuid(); euid != 0 {
		Skip(t, TierService, fmt.Sprintf("sshd with a test account needs root, running as euid %d; run make test as root", euid))
	}
	if len(cfg.AuthorizedKeys)+len(cfg.AuthorizedKeysLines) == 0 {
		t.Fatal("StartSSHD: SSHDConfig has no authorized keys")
	}
	start := time.Now()
	s := &SSHD{}
	if err := s.setup(t, cfg); err != nil {
		t.Fatal(err)
	}
	if err := s.start(t, sshd); err != nil {
		t.Fatal(err)
	}
	t.Logf("sshd ready in %v on %s for account %s", time.Since(start).Round(time.Millisecond), s.Addr, s.User)
	return s
}

// setup creates the state directory, host key, account, chroot and
// authorized_keys, each removed in t.Cleanup.
func (s *SSHD) setup(t testing.TB, cfg SSHDConfig) error {
	// sshd refuses a ChrootDirectory, and with StrictModes an
	// authorized_keys file, below a directory that others can write, such as
	// /tmp: keep everything below a root-owned parent.
	parent, err := secureParent()
	if err != nil {
		return err
	}
	if s.dir, err = newStateDir(parent, "sshd"); err != nil {
		return err
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(s.dir); err != nil {
			t.Errorf("remove sshd state: %v", err)
		}
	})
	if err := os.Chmod(s.dir, 0o755); err != nil {
		return fmt.Errorf("set up sshd: %w", err)
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return fmt.Errorf("create privilege separation directory: %w", err)
	}

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate host key: %w", err)
	}
	if s.HostKey, err = ssh.NewPublicKey(pub); err != nil {
		return fmt.Errorf("generate host key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "pofr test host key")
	if err != nil {
		return fmt.Errorf("encode host key: %w", err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "host_ed25519_key"), pem.EncodeToMemory(block), 0o600); err != nil {
		return fmt.Errorf("write host key: %w", err)
	}

	root := filepath.Join(s.dir, "root")
	s.Inbox = filepath.Join(root, "inbox")
	s.RemoteInbox = s.Inbox
	if cfg.Chroot {
		s.Chroot = root
		s.RemoteInbox = "/inbox"
	}
	if err := os.Mkdir(root, 0o755); err != nil {
		return fmt.Errorf("set up sshd: %w", err)
	}

	var id [4]byte
	rand.Read(id[:])
	s.User = accountPrefix + hex.EncodeToString(id[:])
	// Recorded first, so that a test process that dies from here on leaves
	// a note for reapStale.
	if err := os.WriteFile(filepath.Join(s.dir, "account"), []byte(s.User+"\n"), 0o644); err != nil {
		return fmt.Errorf("set up sshd: %w", err)
	}
	acct, err := addAccount(s.User, s.RemoteInbox)
	if err != nil {
		return err
	}
	t.Cleanup(func() {
		if err := removeAccount(s.User); err != nil {
			t.Errorf("remove test account: %v", err)
		}
	})
	if err := os.Mkdir(s.Inbox, 0o700); err != nil {
		return fmt.Errorf("set up sshd: %w", err)
	}
	if err := os.Chown(s.Inbox, int(acct.uid), int(acct.gid)); err != nil {
		return fmt.Errorf("set up sshd: %w", err)
	}

	var keys bytes.Buffer
	for _, k := range cfg.AuthorizedKeys {
		keys.Write(ssh.MarshalAuthorizedKey(k))
	}
	for _, l := range cfg.AuthorizedKeysLines {
		keys.WriteString(strings.TrimSpace(l) + "\n")
	}
	if err := os.Mkdir(filepath.Join(s.dir, "authorized_keys"), 0o755); err != nil {
		return fmt.Errorf("set up sshd: %w", err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "authorized_keys", s.User), keys.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write authorized_keys: %w", err)
	}

	var conf strings.Builder
	fmt.Fprintf(&conf, `HostKey %[1]s/host_ed25519_key
PidFile %[1]s/sshd.pid
AuthorizedKeysFile %[1]s/authorized_keys/%%u
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
UsePAM no
StrictModes yes
PermitRootLogin no
AllowUsers %[2]s
PermitTTY no
AllowTcpForwarding no
AllowAgentForwarding no
AllowStreamLocalForwarding no
X11Forwarding no
PermitTunnel no
PrintMotd no
UseDNS no
LoginGraceTime 30
MaxStartups 64:30:128
LogLevel VERBOSE
Subsystem sftp internal-sftp -l VERBOSE
`, s.dir, s.User)
	for _, l := range cfg.Config {
		conf.WriteString(l + "\n")
	}
	if cfg.Chroot {
		fmt.Fprintf(&conf, "Match User %s\n\tChrootDirectory %s\n\tForceCommand internal-sftp -l VERBOSE\n", s.User, s.Chroot)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "sshd_config.base"), []byte(conf.String()), 0o644); err != nil {
		return fmt.Errorf("write sshd_config: %w", err)
	}
	return nil
}

// start runs sshd on a free port, retrying when another process takes the
// port first, and waits until it answers with its banner.
func (s *SSHD) start(t testing.TB, sshd string) error {
	base, err := os.ReadFile(filepath.Join(s.dir, "sshd_config.base"))
	if err != nil {
		return fmt.Errorf("start sshd: %w", err)
	}
	confPath := filepath.Join(s.dir, "sshd_config")
	for attempt := 1; ; attempt++ {
		port, err := daemon.FreePort()
		if err != nil {
			return err
		}
		s.Addr = fmt.Sprintf("127.0.0.1:%d", port)
		// ListenAddress comes first: after a Match block it would be refused.
		conf := "# One test's sshd, written by pofr's internal/testutil.\nListenAddress " + s.Addr + "\n" + string(base)
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			return fmt.Errorf("write sshd_config: %w", err)
		}
		s.log = &logBuffer{listening: make(chan struct{})}
		cmd := exec.Command(sshd, "-D", "-e", "-f", confPath)
		cmd.Stdout, cmd.Stderr = s.log, s.log
		// Session processes inherit stderr; do not wait for them to close it.
		cmd.WaitDelay = 2 * time.Second
		if s.srv, err = daemon.Start("sshd", cmd, ""); err != nil {
			return err
		}
		err = s.waitReady()
		if err == nil {
			t.Cleanup(func() {
				if err := s.stop(); err != nil {
					t.Errorf("%v\nsshd log:\n%s", err, s.Log())
				}
			})
			return nil
		}
		if s.srv.Running() {
			s.srv.Stop(5 * time.Second)
		}
		if !strings.Contains(s.Log(), "Address already in use") || attempt == 3 {
			return fmt.Errorf("%w\nsshd_config:\n%s\nsshd log:\n%s", err, conf, s.Log())
		}
	}
}

// waitReady waits until sshd says it listens and then sends its banner to a
// connection.
func (s *SSHD) waitReady() error {
	timeout := time.After(sshdReady)
	select {
	case <-s.log.listening:
	case <-s.srv.Exited():
		return fmt.Errorf("start sshd: exited before listening: %v", s.srv.Err())
	case <-timeout:
		return fmt.Errorf("start sshd: not listening after %v", sshdReady)
	}
	c, err := net.DialTimeout("tcp", s.Addr, sshdReady)
	if err != nil {
		return fmt.Errorf("start sshd: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(sshdReady))
	banner, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("start sshd: read banner: %w", err)
	}
	if !strings.HasPrefix(banner, "SSH-2.0-") {
		return fmt.Errorf("start sshd: banner %q, want SSH-2.0-…", banner)
	}
	return nil
}

// stop ends the per-connection sshd processes, then the listener.
func (s *SSHD) stop() error {
	// Session processes run in sessions of their own and ignore the
	// listener's end: find them while they are still its children. On Linux
	// FindProcess holds a pidfd, so the kill cannot hit a reused pid.
	if !s.srv.Running() {
		return fmt.Errorf("sshd (pid %d) had already exited: %v", s.srv.Pid(), s.srv.Err())
	}
	var children []*os.Process
	for _, pid := range childPids(s.srv.Pid()) {
		if p, err := os.FindProcess(pid); err == nil {
			children = append(children, p)
		}
	}
	for _, p := range children {
		p.Kill()
		p.Release()
	}
	return s.srv.Stop(10 * time.Second)
}

// Log returns what sshd has written to stderr so far (-e, LogLevel VERBOSE),
// including its session processes.
func (s *SSHD) Log() string { return s.log.String() }

// ClientConfig returns an x/crypto/ssh client configuration that logs in to
// the account with signer and accepts only sshd's host key.
func (s *SSHD) ClientConfig(signer ssh.Signer) *ssh.ClientConfig {
	return &ssh.ClientConfig{
		User:              s.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback:   ssh.FixedHostKey(s.HostKey),
		HostKeyAlgorithms: []string{s.HostKey.Type()},
		Timeout:           10 * time.Second,
	}
}

// logBuffer collects a server's output and signals when sshd listens.
type logBuffer struct {
	mu        sync.Mutex
	b         bytes.Buffer
	listening chan struct{}
	signalled bool
}

// Write appends p.
func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Write(p)
	if !l.signalled && bytes.Contains(l.b.Bytes(), []byte("Server listening on ")) {
		l.signalled = true
		close(l.listening)
	}
	return len(p), nil
}

// String returns everything written so far.
func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// accountPrefix starts the name of every account this package creates; other
// accounts are never removed.
const accountPrefix = "pofrt"

// addAccount creates a system account that cannot log in with a password or
// run a shell, with home directory home.
func addAccount(name, home string) (*account, error) {
	useradd, err := daemon.LookTool("useradd")
	if err != nil {
		return nil, fmt.Errorf("create account %s: %w", name, err)
	}
	nologin, err := daemon.LookTool("nologin")
	if err != nil {
		return nil, fmt.Errorf("create account %s: %w", name, err)
	}
	accounts.Lock()
	defer accounts.Unlock()
	// With UsePAM no, sshd refuses a locked account ("!" in the password
	// field, useradd's default) even for public keys; "*" is no password
	// without the lock.
	out, err := exec.Command(useradd, "--system", "--no-create-home", "--home-dir", home,
		"--shell", nologin, "--password", "*", "--comment", "pofr test account", name).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("useradd %s: %w\n%s", name, err, out)
	}
	return lookupAccount(name)
}

// removeAccount ends the processes of an account created by addAccount and
// deletes it. An account that does not exist is not an error.
func removeAccount(name string) error {
	if !strings.HasPrefix(name, accountPrefix) {
		return fmt.Errorf("remove account %q: not a test account", name)
	}
	acct, err := lookupAccount(name)
	if err != nil {
		if errors.As(err, new(user.UnknownUserError)) {
			return nil
		}
		return err
	}
	userdel, err := daemon.LookTool("userdel")
	if err != nil {
		return fmt.Errorf("remove account %s: %w", name, err)
	}
	accounts.Lock()
	defer accounts.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, pid := range uidPids(acct.uid) {
			if p, err := os.FindProcess(pid); err == nil {
				p.Kill()
				p.Release()
			}
		}
		out, err := exec.Command(userdel, name).CombinedOutput()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("userdel %s: %w\n%s", name, err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// secureParent returns a directory that it and every directory above it are
// owned by root and writable by no one else, as sshd demands of a
// ChrootDirectory.
func secureParent() (string, error) {
	for _, d := range []string{os.TempDir(), "/run", "/var/lib", "/srv"} {
		if rootOwnedPath(d) {
			return d, nil
		}
	}
	return "", errors.New("no root-owned directory that only root can write, for the sshd chroot: tried TMPDIR, /run, /var/lib, /srv")
}

// rootOwnedPath reports whether dir and all directories above it are owned by
// root and not writable by group or others.
func rootOwnedPath(dir string) bool {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for {
		fi, err := os.Stat(dir)
		if err != nil || !fi.IsDir() || fi.Mode().Perm()&0o022 != 0 || !ownedByRoot(fi) {
			return false
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return true
		}
		dir = parent
	}
}

// NewSigner returns a fresh ed25519 key for an SSH client or host.
func NewSigner(t testing.TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
