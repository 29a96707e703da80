package receiver

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/internal/servertest"
	"github.com/pofr/pofr/internal/statedir"
)

func keyLine(t *testing.T) (string, ed25519.PublicKey) { return servertest.KeyLine(t, "a comment") }

func TestAddManual(t *testing.T) {
	state := statedir.Dir(t.TempDir())
	upload, _ := keyLine(t)
	signing, signingPub := keyLine(t)
	chroot := t.TempDir()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	h, err := AddManual(registry.NewFiles(state), ManualHost{HostID: "web-01", Hostname: "web01.example", SSHKey: upload, SigningKey: signing, Inbox: chroot}, now)
	if err != nil {
		t.Fatal(err)
	}
	got, err := registry.Load(state, "web-01")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != registry.StatusActive || got.Hostname != "web01.example" || !got.RegisteredAt.Equal(now) ||
		got.SSHKey != strings.TrimSuffix(upload, " a comment") || string(got.SigningKey) != string(signingPub) {
		t.Errorf("registry has %+v (returned %+v)", got, h)
	}
	if pk, err := got.SigningPublicKey(); err != nil || !pk.Equal(signingPub) {
		t.Errorf("SigningPublicKey = %v, %v", pk, err)
	}
	inbox := state.Host("web-01").Inbox
	if dst, err := os.Readlink(inbox); err != nil || dst != chroot {
		t.Errorf("inbox link → %q, %v; want %s", dst, err, chroot)
	}
	for _, d := range []string{state.Host("web-01").Archive, state.Host("web-01").Quarantine} {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			t.Errorf("%s: %v", d, err)
		}
	}

	other, _ := keyLine(t)
	rsa := "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7 x"
	for name, c := range map[string]struct {
		h    ManualHost
		want string
	}{
		"same id":           {ManualHost{HostID: "web-01", SSHKey: other, SigningKey: signing}, "already registered"},
		"same upload key":   {ManualHost{HostID: "web-02", SSHKey: upload, SigningKey: other}, "same upload key"},
		"same signing key":  {ManualHost{HostID: "web-02", SSHKey: other, SigningKey: signing}, "same signing key"},
		"one key for both":  {ManualHost{HostID: "web-02", SSHKey: other, SigningKey: other}, "the same key"},
		"bad id":            {ManualHost{HostID: "../etc", SSHKey: other, SigningKey: signing}, "invalid host id"},
		"not a key":         {ManualHost{HostID: "web-02", SSHKey: "hello", SigningKey: signing}, "upload key"},
		"not ed25519":       {ManualHost{HostID: "web-02", SSHKey: other, SigningKey: rsa}, "signing key"},
		"relative inbox":    {ManualHost{HostID: "web-03", SSHKey: other, SigningKey: keyLineOnly(t), Inbox: "srv/inbox"}, "absolute"},
		"inbox not a dir":   {ManualHost{HostID: "web-03", SSHKey: other, SigningKey: keyLineOnly(t), Inbox: "/etc/hostname"}, "not a directory"},
		"inbox not present": {ManualHost{HostID: "web-03", SSHKey: other, SigningKey: keyLineOnly(t), Inbox: filepath.Join(chroot, "nope")}, "no such file"},
	} {
		_, err := AddManual(registry.NewFiles(state), c.h, now)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: AddManual = %v, want an error with %q", name, err, c.want)
		}
	}
	if hs, _ := registry.List(state); len(hs) != 1 {
		t.Errorf("%d hosts after the refused adds, want 1", len(hs))
	}
}

func keyLineOnly(t *testing.T) string { l, _ := keyLine(t); return l }
