package uplink

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pofr/pofr/wire"
)

// DeregisterResult says what Deregister did.
type DeregisterResult struct {
	// Notified is true when the server confirmed the revocation.
	Notified bool
	// NotifyErr says why the server was not told (unreachable, or a stock
	// OpenSSH server without the pofr-deregister subsystem).
	NotifyErr error
	// Removed lists the local files deleted.
	Removed []string
}

// Deregister tells the server (when reachable, within timeout) that this
// host leaves, then removes the local keys, server.json and any pending
// request. Unsent segments in the spool are not touched. The server is told
// first, because without the key the host can no longer prove who it is.
func Deregister(ctx context.Context, configDir string, timeout time.Duration) (*DeregisterResult, error) {
	if configDir == "" {
		configDir = DefaultConfigDir
	}
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	res := &DeregisterResult{}
	cfg, err := LoadConfig(configDir)
	switch {
	case errors.Is(err, ErrNotRegistered):
		res.NotifyErr = err
	case err != nil:
		return nil, fmt.Errorf("deregister: %w", err)
	default:
		res.NotifyErr = notifyDeregister(ctx, configDir, cfg, timeout)
		res.Notified = res.NotifyErr == nil
	}
	for _, name := range []string{ConfigFile, PendingFile, SSHKeyFile, SigningKeyFile} {
		p := filepath.Join(configDir, name)
		err := os.Remove(p)
		switch {
		case err == nil:
			res.Removed = append(res.Removed, p)
		case !errors.Is(err, os.ErrNotExist):
			return res, fmt.Errorf("deregister: %w", err)
		}
	}
	return res, nil
}

func notifyDeregister(ctx context.Context, configDir string, cfg *Config, timeout time.Duration) error {
	signer, err := LoadSSHKey(configDir)
	if err != nil {
		return err
	}
	hk, err := cfg.hostKey()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client, err := dial(ctx, cfg.Server, &ssh.ClientConfig{
		User:              cfg.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback:   ssh.FixedHostKey(hk),
		HostKeyAlgorithms: []string{hk.Type()},
		Timeout:           timeout,
	})
	if err != nil {
		return fmt.Errorf("connect %s: %w", cfg.Server, err)
	}
	defer client.Close()
	resp, err := subsystemCall(client, wire.DeregisterSubsystem, nil)
	if err != nil {
		return err
	}
	if resp.Status != wire.StatusRevoked {
		return fmt.Errorf("server answered %s: %s", resp.Status, resp.Reason)
	}
	return nil
}
