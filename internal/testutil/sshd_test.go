package testutil_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/pofr/pofr/internal/testutil"
)

// dialSFTP logs in to s with signer and opens an SFTP session, both closed
// when the test ends.
func dialSFTP(t *testing.T, s *testutil.SSHD, signer ssh.Signer) (*ssh.Client, *sftp.Client) {
	t.Helper()
	c, err := ssh.Dial("tcp", s.Addr, s.ClientConfig(signer))
	if err != nil {
		t.Fatalf("log in to %s as %s: %v\nsshd log:\n%s", s.Addr, s.User, err, s.Log())
	}
	t.Cleanup(func() { c.Close() })
	sc, err := sftp.NewClient(c)
	if err != nil {
		t.Fatalf("start SFTP: %v\nsshd log:\n%s", err, s.Log())
	}
	t.Cleanup(func() { sc.Close() })
	return c, sc
}

// push uploads data as a client of pofr's uplink does: to .name.part, then
// renamed.
func push(t *testing.T, sc *sftp.Client, dir, name string, data []byte) {
	t.Helper()
	part := dir + "/." + name + ".part"
	f, err := sc.Create(part)
	if err != nil {
		t.Fatalf("create %s: %v", part, err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatalf("write %s: %v", part, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close %s: %v", part, err)
	}
	if err := sc.PosixRename(part, dir+"/"+name); err != nil {
		t.Fatalf("rename %s: %v", part, err)
	}
}

func owner(t *testing.T, path string) uint32 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Uid
}

func TestSSHDChrootedSFTP(t *testing.T) {
	t.Parallel()
	signer := testutil.NewSigner(t)
	s := testutil.StartSSHD(t, testutil.SSHDConfig{AuthorizedKeys: []ssh.PublicKey{signer.PublicKey()}, Chroot: true})
	u, err := user.Lookup(s.User)
	if err != nil {
		t.Fatalf("account %s: %v", s.User, err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	if fi, err := os.Stat(s.Chroot); err != nil || owner(t, s.Chroot) != 0 || fi.Mode().Perm()&0o022 != 0 {
		t.Errorf("chroot %s must be root's and not group or world writable: %v %v", s.Chroot, fi.Mode(), err)
	}
	if got := owner(t, s.Inbox); got != uint32(uid) {
		t.Errorf("inbox %s belongs to uid %d, want the account's %d", s.Inbox, got, uid)
	}

	client, sc := dialSFTP(t, s, signer)
	if wd, err := sc.Getwd(); err != nil || wd != s.RemoteInbox {
		t.Errorf("SFTP starts in %q (%v), want %q", wd, err, s.RemoteInbox)
	}
	data := bytes.Repeat([]byte("segment\x00"), 100_000)
	push(t, sc, s.RemoteInbox, "seg1.pofr", data)
	got, err := os.ReadFile(filepath.Join(s.Inbox, "seg1.pofr"))
	if err != nil {
		t.Fatalf("uploaded file on the server: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("uploaded file has %d bytes, want the %d bytes sent", len(got), len(data))
	}
	if o := owner(t, filepath.Join(s.Inbox, "seg1.pofr")); o != uint32(uid) {
		t.Errorf("uploaded file belongs to uid %d, want %d", o, uid)
	}
	if _, err := os.Stat(filepath.Join(s.Inbox, ".seg1.pofr.part")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("temporary upload name still exists after the rename: %v", err)
	}

	// The chroot is all the account sees.
	entries, err := sc.ReadDir("/")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if diff := cmp.Diff([]string{"inbox"}, names); diff != "" {
		t.Errorf("ReadDir(/) in the chroot (-want +got):\n%s", diff)
	}
	if _, err := sc.Stat("/etc/passwd"); err == nil {
		t.Error("Stat(/etc/passwd) succeeded inside the chroot")
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	escape := "pofr-escape-" + hex.EncodeToString(rnd[:])
	hostTmp := filepath.Join(os.TempDir(), escape)
	for _, p := range []string{"/" + escape, "/../../../../../../.." + hostTmp, "../../../../../../.." + hostTmp} {
		if f, err := sc.Create(p); err == nil {
			f.Close()
			t.Errorf("Create(%q) succeeded outside the inbox", p)
		}
	}
	for _, p := range []string{filepath.Join(s.Chroot, escape), hostTmp, filepath.Join(filepath.Dir(s.Chroot), escape)} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s exists on the server after an escape attempt (%v)", p, err)
		}
	}
	// A symbolic link resolves inside the chroot, where /etc/passwd is not.
	if err := sc.Symlink("/etc/passwd", s.RemoteInbox+"/passwd"); err == nil {
		if f, err := sc.Open(s.RemoteInbox + "/passwd"); err == nil {
			b, _ := io.ReadAll(f)
			f.Close()
			t.Errorf("read %d bytes through a symlink to /etc/passwd inside the chroot", len(b))
		}
	}
	// ForceCommand: a command runs internal-sftp instead.
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, _ := sess.CombinedOutput("cat /etc/passwd")
	sess.Close()
	if bytes.Contains(out, []byte("root:")) {
		t.Errorf("a command ran despite ForceCommand internal-sftp: %q", out)
	}
}

func TestSSHDRefusesWrongKeys(t *testing.T) {
	t.Parallel()
	signer := testutil.NewSigner(t)
	s := testutil.StartSSHD(t, testutil.SSHDConfig{AuthorizedKeys: []ssh.PublicKey{signer.PublicKey()}, Chroot: true})

	cfg := s.ClientConfig(signer)
	cfg.HostKeyCallback = ssh.FixedHostKey(testutil.NewSigner(t).PublicKey())
	if c, err := ssh.Dial("tcp", s.Addr, cfg); err == nil {
		c.Close()
		t.Error("login succeeded with another host key pinned")
	} else if !strings.Contains(err.Error(), "host key mismatch") {
		t.Errorf("login with another host key pinned: %v, want a host key mismatch", err)
	}

	if c, err := ssh.Dial("tcp", s.Addr, s.ClientConfig(testutil.NewSigner(t))); err == nil {
		c.Close()
		t.Error("login succeeded with a key that is not authorized")
	} else if !strings.Contains(err.Error(), "unable to authenticate") {
		t.Errorf("login with an unauthorized key: %v, want unable to authenticate", err)
	}
}

func TestSSHDWithoutChroot(t *testing.T) {
	t.Parallel()
	signer := testutil.NewSigner(t)
	line := "restrict " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
	s := testutil.StartSSHD(t, testutil.SSHDConfig{AuthorizedKeysLines: []string{line}})
	if s.Chroot != "" || s.RemoteInbox != s.Inbox {
		t.Errorf("without chroot: Chroot %q, RemoteInbox %q; want \"\" and Inbox %q", s.Chroot, s.RemoteInbox, s.Inbox)
	}
	_, sc := dialSFTP(t, s, signer)
	push(t, sc, s.RemoteInbox, "seg2.pofr", []byte("hello"))
	if got, err := os.ReadFile(filepath.Join(s.Inbox, "seg2.pofr")); err != nil || string(got) != "hello" {
		t.Errorf("uploaded file = %q, %v; want \"hello\"", got, err)
	}
	// Without the chroot the account sees the file system, but may not
	// write where it has no permission.
	if f, err := sc.Create("/etc/pofr-test-must-not-exist"); err == nil {
		f.Close()
		os.Remove("/etc/pofr-test-must-not-exist")
		t.Error("the test account could create a file in /etc")
	}
}

func TestSSHDAccountRemoved(t *testing.T) {
	t.Parallel()
	signer := testutil.NewSigner(t)
	var name, dir string
	t.Run("inner", func(t *testing.T) {
		s := testutil.StartSSHD(t, testutil.SSHDConfig{AuthorizedKeys: []ssh.PublicKey{signer.PublicKey()}, Chroot: true})
		name, dir = s.User, filepath.Dir(s.Chroot)
		dialSFTP(t, s, signer) // a live session must not keep the account alive
	})
	if name == "" {
		t.Skip("no sshd: see the inner test")
	}
	if _, err := user.Lookup(name); !errors.As(err, new(user.UnknownUserError)) {
		t.Errorf("account %s still exists after its test ended (%v)", name, err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("sshd state %s still exists after its test ended (%v)", dir, err)
	}
}
