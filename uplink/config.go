package uplink

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pofr/pofr/internal/durable"
	"github.com/pofr/pofr/spool"
	"github.com/pofr/pofr/wire"
)

// DefaultConfigDir is the client's configuration directory.
const DefaultConfigDir = "/etc/pofr"

// Files in the configuration directory (all 0600, the directory 0700).
const (
	// SSHKeyFile is the upload key: ed25519, OpenSSH private key format.
	SSHKeyFile = "ssh.key"
	// SigningKeyFile is the segment signing key: ed25519, OpenSSH private
	// key format (PEM "OPENSSH PRIVATE KEY").
	SigningKeyFile = "signing.key"
	// ConfigFile is the server.json written at registration.
	ConfigFile = "server.json"
	// PendingFile remembers a registration request that waits for approval.
	PendingFile = "pending.json"
)

// ErrNotRegistered reports a configuration directory without server.json.
var ErrNotRegistered = errors.New("uplink: not registered (no server.json); run pofr-collector register")

// Config is server.json: where to push and how to recognise the server.
// Registration writes it; for a stock OpenSSH server, register-openssh does
// (docs/transport.md).
type Config struct {
	// Server is host:port.
	Server string `json:"server"`
	// HostKey is the server's host key as an authorized_keys line; the
	// client accepts no other.
	HostKey string `json:"host_key"`
	// HostID is the id the server assigned; segment names carry it.
	HostID string `json:"host_id"`
	// User is the SSH user for uploads.
	User string `json:"user"`
	// RemoteDir is the directory uploads go to; "" means the session's
	// start directory (the inbox on pofr-server, the account's home on
	// OpenSSH).
	RemoteDir    string    `json:"remote_dir,omitempty"`
	RegisteredAt time.Time `json:"registered_at"`
}

// hostKey parses the pinned host key.
func (c *Config) hostKey() (ssh.PublicKey, error) {
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(c.HostKey))
	if err != nil {
		return nil, fmt.Errorf("server.json host_key: %w", err)
	}
	return k, nil
}

// validate checks that c can be used to push.
func (c *Config) validate() error {
	if _, _, err := net.SplitHostPort(c.Server); err != nil {
		return fmt.Errorf("server.json server %q: %w", c.Server, err)
	}
	if _, err := c.hostKey(); err != nil {
		return err
	}
	if c.HostID == "" || c.User == "" {
		return errors.New("server.json: host_id and user are required")
	}
	return nil
}

// LoadConfig reads server.json from dir.
func LoadConfig(dir string) (*Config, error) {
	b, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotRegistered
	}
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("load config %s: %w", filepath.Join(dir, ConfigFile), err)
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	return &c, nil
}

// SaveConfig writes server.json to dir (0600, atomically).
func SaveConfig(dir string, c *Config) error {
	if err := c.validate(); err != nil {
		return fmt.Errorf("save config: %w", err)
	}
	return writeJSON(dir, ConfigFile, c)
}

func writeJSON(dir, name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return writeFileAtomic(dir, name, append(b, '\n'))
}

// ensureDir creates dir 0700, or tightens it.
func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create config dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("create config dir: %w", err)
	}
	return nil
}

// writeFileAtomic writes dir/name 0600 through a synced temporary file.
func writeFileAtomic(dir, name string, data []byte) error {
	if err := ensureDir(dir); err != nil {
		return err
	}
	return durable.WriteFile(filepath.Join(dir, name), data, 0o600)
}

// Keys are the host's two private keys.
type Keys struct {
	// SSH authenticates uploads.
	SSH ssh.Signer
	// Signing signs segments.
	Signing ed25519.PrivateKey
}

// SSHAuthorizedKey returns the upload key as an authorized_keys line
// (without newline).
func (k *Keys) SSHAuthorizedKey() string {
	b := ssh.MarshalAuthorizedKey(k.SSH.PublicKey())
	return string(b[:len(b)-1])
}

// EnsureKeys loads the host's keys from dir, creating those that are missing
// (ed25519, 0600).
func EnsureKeys(dir string) (*Keys, error) {
	if err := ensureDir(dir); err != nil {
		return nil, err
	}
	sshKey, err := loadOrCreateKey(dir, SSHKeyFile, "pofr upload key")
	if err != nil {
		return nil, err
	}
	signing, err := loadOrCreateKey(dir, SigningKeyFile, "pofr segment signing key")
	if err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromKey(sshKey)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", SSHKeyFile, err)
	}
	return &Keys{SSH: signer, Signing: signing}, nil
}

// LoadSSHKey reads the upload key from dir.
func LoadSSHKey(dir string) (ssh.Signer, error) {
	b, err := os.ReadFile(filepath.Join(dir, SSHKeyFile))
	if err != nil {
		return nil, fmt.Errorf("load upload key: %w", err)
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("load upload key %s: %w", filepath.Join(dir, SSHKeyFile), err)
	}
	return s, nil
}

func loadOrCreateKey(dir, name, comment string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dir, name)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate %s: %w", name, err)
		}
		block, err := ssh.MarshalPrivateKey(priv, comment)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", name, err)
		}
		if err := writeFileAtomic(dir, name, pem.EncodeToMemory(block)); err != nil {
			return nil, err
		}
		return priv, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", name, err)
	}
	k, err := spool.ParseKey(b)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return k, nil
}

// pending is pending.json: a registration that waits for a decision.
type pending struct {
	Server    string `json:"server"`
	RequestID string `json:"request_id"`
	HostKey   string `json:"host_key"`
}

func loadPending(dir string) (*pending, error) {
	b, err := os.ReadFile(filepath.Join(dir, PendingFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load pending request: %w", err)
	}
	var p pending
	if err := json.Unmarshal(b, &p); err != nil || !wire.ValidRequestID(p.RequestID) {
		return nil, fmt.Errorf("load pending request %s: malformed", filepath.Join(dir, PendingFile))
	}
	return &p, nil
}
