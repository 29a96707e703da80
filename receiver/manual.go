package receiver

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/spool"
	"github.com/pofr/pofr/wire"
)

// ManualHost is a host registered by hand, for sites whose hosts push to a
// stock OpenSSH sshd instead of pofr-server serve (docs/transport.md): the
// admin copies the public keys that 'pofr-collector keys' prints.
type ManualHost struct {
	HostID     string
	Hostname   string
	MachineID  string
	SSHKey     string // upload key, authorized_keys line (ssh-ed25519)
	SigningKey string // segment signing key, authorized_keys line (ssh-ed25519)
	// Inbox, when set, is the directory the host's account uploads to (its
	// chroot inbox); the host's inbox in the state directory becomes a
	// symbolic link to it, so that the loader finds the uploads there.
	Inbox string
}

// AddManual adds h to the registry as an active host. It refuses an id
// already registered (active or revoked: ids are never reused) and keys that
// an active host already uses.
func AddManual(reg registry.Store, h ManualHost, now time.Time) (out *registry.Host, err error) {
	if !spool.ValidHostID(h.HostID) {
		return nil, fmt.Errorf("add host %q: invalid host id (lower-case letters, digits and dashes, at most 63)", h.HostID)
	}
	upload, err := parseKeyLine("upload key", h.SSHKey)
	if err != nil {
		return nil, fmt.Errorf("add host %s: %w", h.HostID, err)
	}
	signing, err := parseKeyLine("signing key", h.SigningKey)
	if err != nil {
		return nil, fmt.Errorf("add host %s: %w", h.HostID, err)
	}
	if bytes.Equal(upload.Marshal(), signing.Marshal()) {
		return nil, fmt.Errorf("add host %s: the upload and signing keys are the same key", h.HostID)
	}
	err = reg.Update(func(reg registry.Store) error {
		out, err = addManual(reg, h, upload, signing, now)
		return err
	})
	return out, err
}

func addManual(reg registry.Store, h ManualHost, upload, signing ssh.PublicKey, now time.Time) (*registry.Host, error) {
	hosts, err := reg.Hosts()
	if err != nil {
		return nil, err
	}
	sshLine := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(upload)))
	rawSigning := []byte(signing.(ssh.CryptoPublicKey).CryptoPublicKey().(ed25519.PublicKey))
	for _, o := range hosts {
		switch {
		case o.HostID == h.HostID:
			return nil, fmt.Errorf("add host %s: already registered (%s)", h.HostID, o.Status)
		case o.Status != registry.StatusActive:
		case o.SSHKey != "" && wire.Fingerprint(o.SSHKey) == wire.Fingerprint(sshLine):
			return nil, fmt.Errorf("add host %s: host %s is active with the same upload key", h.HostID, o.HostID)
		case bytes.Equal(o.SigningKey, rawSigning):
			return nil, fmt.Errorf("add host %s: host %s is active with the same signing key", h.HostID, o.HostID)
		}
	}
	if h.Inbox != "" {
		if err := linkInbox(reg.Local(), h.HostID, h.Inbox); err != nil {
			return nil, fmt.Errorf("add host %s: %w", h.HostID, err)
		}
	}
	r := &registry.Host{HostID: h.HostID, Facts: wire.Facts{Hostname: h.Hostname, MachineID: h.MachineID}, SSHKey: sshLine,
		SigningKey: rawSigning, Status: registry.StatusActive, RegisteredAt: now.UTC()}
	if err := reg.PutHost(r); err != nil {
		return nil, err
	}
	return r, nil
}

// parseKeyLine parses what as an ssh-ed25519 authorized_keys line.
func parseKeyLine(what, line string) (ssh.PublicKey, error) {
	k, err := wire.ParseUploadKey(line)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (want the 'ssh-ed25519 AAAA…' line that pofr-collector keys prints)", what, err)
	}
	return k, nil
}

// linkInbox makes the host's inbox a symbolic link to dir, which must be an
// existing directory given by an absolute path. An empty inbox directory in
// its place is removed first; anything else there is refused.
func linkInbox(state statedir.Dir, id, dir string) error {
	if !strings.HasPrefix(dir, "/") {
		return fmt.Errorf("inbox %q: want an absolute path", dir)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("inbox: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("inbox %s: not a directory", dir)
	}
	link := state.Host(id).Inbox
	if err := os.MkdirAll(filepath.Dir(link), 0o700); err != nil {
		return err
	}
	if err := os.Remove(link); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("inbox %s is in the way: %w", link, err)
	}
	return os.Symlink(dir, link)
}
