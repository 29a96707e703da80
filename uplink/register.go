package uplink

import (
	"bytes"
	"context"
	"crypto/ed25519"
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
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pofr/pofr/internal/defaults"
	"github.com/pofr/pofr/wire"
)

// Registration statuses, as in Result.Status.
const (
	StatusPending = wire.StatusPending
	StatusGranted = wire.StatusGranted
	StatusDenied  = wire.StatusDenied
)

// Sentinel errors of registration.
var (
	// ErrHostKeyRejected reports a server host key that does not match the
	// given or pinned fingerprint, or that the user did not confirm.
	ErrHostKeyRejected = errors.New("uplink: server host key rejected")
	// ErrAlreadyRegistered reports a configuration directory that already
	// has a server.json (use Replace, or deregister first).
	ErrAlreadyRegistered = errors.New("uplink: already registered")
	// ErrAuth reports that the server refused the token or password.
	ErrAuth = errors.New("uplink: registration token or password refused")
)

// DefaultPort is the SSH port used when the server address has none.
const DefaultPort = "22"

// RegisterOptions configure Register.
type RegisterOptions struct {
	// Server is HOST or HOST:PORT.
	Server string
	// ConfigDir receives the keys and server.json (DefaultConfigDir).
	ConfigDir string
	// Token is a one-time token from 'pofr-server token create'; it
	// approves the request at once. Either Token or Password is required.
	Token []byte
	// Password is the server's registration password; an admin approves.
	Password []byte
	// Fingerprint, when set (SHA256:…), is the server host key expected;
	// otherwise Confirm decides.
	Fingerprint string
	// Confirm is asked whether to trust a server host key seen for the
	// first time; nil refuses it.
	Confirm func(fingerprint string) bool
	// Facts describe the host (GatherFacts).
	Facts HostFacts
	// Replace asks the server to replace an active registration of the same
	// machine, and lets Register overwrite a local server.json.
	Replace bool
	// Wait keeps asking, while the request is pending, for up to this long.
	Wait time.Duration
	// PollInterval is the pause between questions while waiting (5 s).
	PollInterval time.Duration
	// Timeout bounds connecting and the handshake (15 s).
	Timeout time.Duration
	Log     *slog.Logger
}

// Result is the server's decision.
type Result struct {
	// Status is StatusPending, StatusGranted or StatusDenied.
	Status    wire.Status
	HostID    string
	Reason    string
	RequestID string
	// Fingerprint is the server's host key fingerprint.
	Fingerprint string
}

// Register asks the server to register this host, or asks again about a
// pending request from an earlier run (same keys, same request id). On grant
// it writes server.json with the pinned host key; while pending it keeps
// pending.json so that the next run resumes.
func Register(ctx context.Context, o RegisterOptions) (*Result, error) {
	defaults.Zero(&o.ConfigDir, DefaultConfigDir)
	defaults.Zero(&o.Log, slog.New(slog.DiscardHandler))
	defaults.Positive(&o.PollInterval, 5*time.Second)
	defaults.Positive(&o.Timeout, 15*time.Second)
	secret := o.Token
	if len(secret) == 0 {
		secret = o.Password
	}
	if len(secret) == 0 {
		return nil, errors.New("register: a token or the registration password is required")
	}
	addr := o.Server
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(strings.Trim(addr, "[]"), DefaultPort)
	}
	if _, err := os.Stat(filepath.Join(o.ConfigDir, ConfigFile)); err == nil && !o.Replace {
		return nil, fmt.Errorf("register: %w: %s exists; deregister first or use replace", ErrAlreadyRegistered, filepath.Join(o.ConfigDir, ConfigFile))
	}
	keys, err := EnsureKeys(o.ConfigDir)
	if err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	pend, err := loadPending(o.ConfigDir)
	if err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	if pend != nil && pend.Server != addr {
		pend = nil // a request to another server: start afresh
	}
	if pend == nil {
		id, err := wire.NewRequestID(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("register: %w", err)
		}
		pend = &pending{Server: addr, RequestID: id}
	}

	var seen ssh.PublicKey
	hostKeyCB := func(_ string, _ net.Addr, key ssh.PublicKey) error {
		fp := ssh.FingerprintSHA256(key)
		switch {
		case pend.HostKey != "":
			if wire.Fingerprint(pend.HostKey) != fp {
				return fmt.Errorf("%w: %s is not the key %s seen when this request was made", ErrHostKeyRejected, fp, wire.Fingerprint(pend.HostKey))
			}
		case o.Fingerprint != "":
			if strings.TrimSpace(o.Fingerprint) != fp {
				return fmt.Errorf("%w: server offers %s, expected %s", ErrHostKeyRejected, fp, o.Fingerprint)
			}
		case o.Confirm == nil || !o.Confirm(fp):
			return fmt.Errorf("%w: %s not confirmed", ErrHostKeyRejected, fp)
		}
		seen = key
		return nil
	}
	cfg := &ssh.ClientConfig{
		User: wire.RegisterUser,
		Auth: []ssh.AuthMethod{
			ssh.Password(string(secret)),
			ssh.KeyboardInteractive(func(name, instr string, qs []string, echos []bool) ([]string, error) {
				ans := make([]string, len(qs))
				if len(qs) == 1 {
					ans[0] = string(secret)
				}
				return ans, nil
			}),
		},
		HostKeyCallback: hostKeyCB,
		Timeout:         o.Timeout,
	}

	deadline := time.Now().Add(o.Wait)
	for {
		res, err := registerOnce(ctx, addr, cfg, keys, pend, o)
		if err != nil {
			return nil, err
		}
		if seen != nil && pend.HostKey == "" {
			pend.HostKey = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(seen)))
		}
		res.Fingerprint = ssh.FingerprintSHA256(seen)
		switch res.Status {
		case StatusGranted:
			c := &Config{Server: addr, HostKey: pend.HostKey, HostID: res.HostID, User: res.user, RegisteredAt: time.Now().UTC()}
			if err := SaveConfig(o.ConfigDir, c); err != nil {
				return nil, fmt.Errorf("register: %w", err)
			}
			os.Remove(filepath.Join(o.ConfigDir, PendingFile))
			return &res.Result, nil
		case StatusDenied:
			os.Remove(filepath.Join(o.ConfigDir, PendingFile))
			return &res.Result, nil
		}
		if err := writeJSON(o.ConfigDir, PendingFile, pend); err != nil {
			return nil, fmt.Errorf("register: %w", err)
		}
		if time.Now().Add(o.PollInterval).After(deadline) {
			return &res.Result, nil
		}
		o.Log.Info("registration pending; asking again", "request", pend.RequestID, "in", o.PollInterval)
		select {
		case <-ctx.Done():
			return &res.Result, nil
		case <-time.After(o.PollInterval):
		}
	}
}

type regResult struct {
	Result
	user string
}

// registerOnce connects, sends the request and reads the answer.
func registerOnce(ctx context.Context, addr string, cfg *ssh.ClientConfig, keys *Keys, pend *pending, o RegisterOptions) (*regResult, error) {
	client, err := dial(ctx, addr, cfg)
	if err != nil {
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, fmt.Errorf("register with %s: %w", addr, ErrAuth)
		}
		return nil, fmt.Errorf("register with %s: %w", addr, err)
	}
	defer client.Close()
	proof, err := keys.SSH.Sign(rand.Reader, wire.ProofData(client.SessionID(), pend.RequestID))
	if err != nil {
		return nil, fmt.Errorf("register: sign proof: %w", err)
	}
	req := wire.Request{
		Version:    wire.Version,
		RequestID:  pend.RequestID,
		Facts:      o.Facts,
		SSHKey:     keys.SSHAuthorizedKey(),
		SigningKey: []byte(keys.Signing.Public().(ed25519.PublicKey)),
		Proof:      ssh.Marshal(proof),
		Replace:    o.Replace,
	}
	body, err := json.Marshal(&req)
	if err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	resp, err := subsystemCall(client, wire.RegisterSubsystem, body)
	if err != nil {
		return nil, fmt.Errorf("register with %s: %w", addr, err)
	}
	if resp.Status != StatusDenied && resp.RequestID != pend.RequestID {
		return nil, fmt.Errorf("register with %s: answer for request %q, sent %q", addr, resp.RequestID, pend.RequestID)
	}
	return &regResult{Result: Result{Status: resp.Status, HostID: resp.HostID, Reason: resp.Reason, RequestID: pend.RequestID}, user: resp.User}, nil
}

// subsystemCall opens a session, starts subsystem, sends body and reads one
// response.
func subsystemCall(client *ssh.Client, subsystem string, body []byte) (*wire.Response, error) {
	sess, err := client.NewSession()
	if err != nil {
		return nil, fmt.Errorf("open session: %w", err)
	}
	defer sess.Close()
	stdin, err := sess.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("open session: %w", err)
	}
	stdout, err := sess.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("open session: %w", err)
	}
	if err := sess.RequestSubsystem(subsystem); err != nil {
		return nil, fmt.Errorf("start %s: %w", subsystem, err)
	}
	if _, err := io.Copy(stdin, bytes.NewReader(body)); err != nil {
		return nil, fmt.Errorf("send to %s: %w", subsystem, err)
	}
	stdin.Close()
	b, err := io.ReadAll(io.LimitReader(stdout, wire.MaxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s answer: %w", subsystem, err)
	}
	return wire.ParseResponse(b)
}

// dial connects with a deadline from ctx and cfg.Timeout.
func dial(ctx context.Context, addr string, cfg *ssh.ClientConfig) (*ssh.Client, error) {
	d := net.Dialer{Timeout: cfg.Timeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return handshake(ctx, nc, addr, cfg)
}

// handshake runs the SSH handshake on nc within cfg.Timeout.
func handshake(ctx context.Context, nc net.Conn, addr string, cfg *ssh.ClientConfig) (*ssh.Client, error) {
	if cfg.Timeout > 0 {
		nc.SetDeadline(time.Now().Add(cfg.Timeout))
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	c, chans, reqs, err := ssh.NewClientConn(nc, addr, cfg)
	stop()
	if err != nil {
		nc.Close()
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}
