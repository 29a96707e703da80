package receiver

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/pofr/pofr/fleet"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pofr/pofr/internal/durable"
	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/spool"
	"github.com/pofr/pofr/wire"
)

// DefaultListen is the address pofr-server serve listens on.
const DefaultListen = ":2222"

// HostKeyFile is the server's SSH host key under the state directory
// (statedir.Dir.HostKey), generated on first start and kept.
const HostKeyFile = "ssh_host_ed25519_key"

// Defaults of Options.
const (
	DefaultMaxSegmentBytes = 64 << 20
	DefaultMaxConns        = 256
	// DefaultMaxStartups is the budget of connections not yet
	// authenticated, of DefaultMaxConns.
	DefaultMaxStartups = 32
	// DefaultMaxStartupsPerAddr is the part of it one source address may
	// hold.
	DefaultMaxStartupsPerAddr = 4
	// DefaultMaxConnsPerHost bounds the connections of one registered host
	// (and of registrations from one address).
	DefaultMaxConnsPerHost = 4
	// DefaultHandshakeTimeout bounds key exchange and authentication.
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultIdleTimeout      = 5 * time.Minute
	// DefaultAuthFailuresPerMinute is the global rate of failed password
	// and token attempts, across connections.
	DefaultAuthFailuresPerMinute = 30
	// maxAuthTries is the per-connection limit of authentication attempts.
	maxAuthTries = 3
	// maxChannels bounds the open channels of one connection.
	maxChannels = 4
	// maxOpenFiles bounds the open upload handles of one SFTP session.
	maxOpenFiles = 8
)

// Options configure a Server.
type Options struct {
	// StateDir holds the host key and the inboxes, and the registry (hosts,
	// tokens and requests) unless Registry is set.
	StateDir statedir.Dir
	// Registry, if set, is where hosts, tokens and requests are kept
	// (registry.DB: shared by several receivers); its Local must be
	// StateDir. Default: the files under StateDir.
	Registry registry.Store
	// RegistrationPassword, when set, lets hosts request registration with
	// it (an admin then approves). Without it only tokens register.
	RegistrationPassword []byte
	// MaxSegmentBytes limits one uploaded file (DefaultMaxSegmentBytes).
	MaxSegmentBytes int64
	// MaxConns limits concurrent connections (DefaultMaxConns); further
	// connections are closed at once.
	MaxConns int
	// MaxStartups limits the connections not yet authenticated
	// (DefaultMaxStartups), MaxStartupsPerAddr those from one source
	// address (DefaultMaxStartupsPerAddr); further ones are closed at once.
	MaxStartups        int
	MaxStartupsPerAddr int
	// MaxConnsPerHost limits the authenticated connections of one host, and
	// the registration connections from one address
	// (DefaultMaxConnsPerHost); a connection beyond it is closed once
	// authenticated.
	MaxConnsPerHost int
	// HandshakeTimeout closes a connection that has not finished key
	// exchange and authentication in this time (DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration
	// IdleTimeout closes an authenticated connection whose channels move no
	// data for this long (DefaultIdleTimeout); keep-alives and other
	// requests do not count as activity.
	IdleTimeout time.Duration
	// AuthFailuresPerMinute is the global budget of failed password and
	// token attempts (DefaultAuthFailuresPerMinute); once spent, every
	// attempt fails without being checked until the budget refills.
	AuthFailuresPerMinute int
	// Log receives connection-level events; uploads log at Debug.
	Log *slog.Logger
	// Shards, if set, assigns every granted host a shard (AssignShard).
	Shards *fleet.Map
}

// Stats are the server's counters since start.
type Stats struct {
	Conns        int64 // connections accepted
	Refused      int64 // connections closed at once by a connection limit
	AuthFailures int64 // failed authentication attempts
	Uploads      int64 // segments renamed into an inbox
	Bytes        int64 // bytes written to inboxes
	Registered   int64 // registration requests answered
}

// Server is the embedded SSH server: write-only SFTP inboxes for registered
// hosts and the registration endpoint.
type Server struct {
	opts    Options
	reg     registry.Store
	log     *slog.Logger
	hostKey ssh.Signer
	limiter *failureLimiter
	climit  *connLimiter

	conns, refused, authFailures, uploads, bytes, registered atomic.Int64

	// openUploads are the upload handles open now, by host and file name,
	// so that a rename can close every handle on the file it delivers.
	uploadsMu   sync.Mutex
	openUploads map[string]map[*upload]struct{}
	hostLocks   sync.Map // host id → *sync.Mutex (lockHost)
}

func uploadKey(host, name string) string { return host + "/" + name }

// lockHost serialises opening upload files and renames of one host, across
// its sessions; it returns the unlock.
func (s *Server) lockHost(host string) func() {
	m, _ := s.hostLocks.LoadOrStore(host, new(sync.Mutex))
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

func (s *Server) uploadsAdd(host string, u *upload) {
	s.uploadsMu.Lock()
	defer s.uploadsMu.Unlock()
	k := uploadKey(host, u.name)
	if s.openUploads[k] == nil {
		s.openUploads[k] = map[*upload]struct{}{}
	}
	s.openUploads[k][u] = struct{}{}
}

func (s *Server) uploadsRemove(host string, u *upload) {
	s.uploadsMu.Lock()
	defer s.uploadsMu.Unlock()
	k := uploadKey(host, u.name)
	delete(s.openUploads[k], u)
	if len(s.openUploads[k]) == 0 {
		delete(s.openUploads, k)
	}
}

func (s *Server) uploadsOf(host, name string) []*upload {
	s.uploadsMu.Lock()
	defer s.uploadsMu.Unlock()
	var out []*upload
	for u := range s.openUploads[uploadKey(host, name)] {
		out = append(out, u)
	}
	return out
}

// NewServer loads (or on first start generates) the host key and prepares a
// server. It does not listen: call Serve.
func NewServer(opts Options) (*Server, error) {
	if opts.StateDir == "" {
		return nil, errors.New("new server: no state directory")
	}
	if opts.MaxSegmentBytes <= 0 {
		opts.MaxSegmentBytes = DefaultMaxSegmentBytes
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = DefaultMaxConns
	}
	if opts.MaxStartups <= 0 {
		opts.MaxStartups = min(DefaultMaxStartups, opts.MaxConns)
	}
	if opts.MaxStartupsPerAddr <= 0 {
		opts.MaxStartupsPerAddr = min(DefaultMaxStartupsPerAddr, opts.MaxStartups)
	}
	if opts.MaxConnsPerHost <= 0 {
		opts.MaxConnsPerHost = DefaultMaxConnsPerHost
	}
	if opts.HandshakeTimeout <= 0 {
		opts.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.AuthFailuresPerMinute <= 0 {
		opts.AuthFailuresPerMinute = DefaultAuthFailuresPerMinute
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.StateDir.String(), 0o700); err != nil {
		return nil, fmt.Errorf("new server: %w", err)
	}
	key, err := loadOrCreateHostKey(opts.StateDir.HostKey())
	if err != nil {
		return nil, err
	}
	reg := opts.Registry
	if reg == nil {
		reg = registry.NewFiles(opts.StateDir)
	}
	return &Server{
		opts:    opts,
		reg:     reg,
		log:     opts.Log,
		hostKey: key,
		limiter: newFailureLimiter(opts.AuthFailuresPerMinute, time.Minute),
		climit:  newConnLimiter(&opts),

		openUploads: map[string]map[*upload]struct{}{},
	}, nil
}

// HostKey returns the server's public host key, which clients pin.
func (s *Server) HostKey() ssh.PublicKey { return s.hostKey.PublicKey() }

// Stats returns the counters.
func (s *Server) Stats() Stats {
	return Stats{
		Conns: s.conns.Load(), Refused: s.refused.Load(), AuthFailures: s.authFailures.Load(),
		Uploads: s.uploads.Load(), Bytes: s.bytes.Load(), Registered: s.registered.Load(),
	}
}

func loadOrCreateHostKey(path string) (ssh.Signer, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate host key: %w", err)
		}
		block, err := ssh.MarshalPrivateKey(priv, "pofr-server host key")
		if err != nil {
			return nil, fmt.Errorf("generate host key: %w", err)
		}
		if err := durable.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			return nil, fmt.Errorf("save host key: %w", err)
		}
		return ssh.NewSignerFromKey(priv)
	}
	if err != nil {
		return nil, fmt.Errorf("read host key: %w", err)
	}
	k, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("parse host key %s: %w", path, err)
	}
	return k, nil
}

// Permission extensions set at authentication.
const (
	extRole  = "pofr-role" // roleUpload or roleRegister
	extHost  = "pofr-host"
	extAuth  = "pofr-auth" // "password" or "token"
	extToken = "pofr-token"
	roleUp   = "upload"
	roleReg  = "register"
)

// errAuth is the one message every failed authentication gets.
var errAuth = errors.New("authentication failed")

func (s *Server) config() *ssh.ServerConfig {
	cfg := &ssh.ServerConfig{
		MaxAuthTries: maxAuthTries,
		PublicKeyCallback: func(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			return s.checkUploadKey(c.User(), key)
		},
		PasswordCallback: func(c ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			return s.checkSecret(c, pw)
		},
		KeyboardInteractiveCallback: func(c ssh.ConnMetadata, ch ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
			if c.User() != wire.RegisterUser {
				return nil, errAuth
			}
			ans, err := ch("", "pofr registration", []string{"Registration token or password: "}, []bool{false})
			if err != nil || len(ans) != 1 {
				return nil, errAuth
			}
			return s.checkSecret(c, []byte(ans[0]))
		},
		AuthLogCallback: func(c ssh.ConnMetadata, method string, err error) {
			if err != nil && method != "none" && !errors.Is(err, ssh.ErrNoAuth) {
				s.authFailures.Add(1)
				s.log.Debug("authentication failed", "user", c.User(), "method", method, "remote", c.RemoteAddr().String())
			}
		},
		ServerVersion: "SSH-2.0-pofr",
	}
	cfg.AddHostKey(s.hostKey)
	return cfg
}

// checkUploadKey accepts key for user when user is an active host whose
// registered upload key is key.
func (s *Server) checkUploadKey(user string, key ssh.PublicKey) (*ssh.Permissions, error) {
	if !spool.ValidHostID(user) || user == wire.RegisterUser {
		return nil, errAuth
	}
	h, err := s.reg.Host(user)
	if err != nil || h.Status != registry.StatusActive || h.SSHKey == "" {
		return nil, errAuth
	}
	want, err := wire.ParseUploadKey(h.SSHKey)
	if err != nil || ssh.FingerprintSHA256(want) != ssh.FingerprintSHA256(key) {
		return nil, errAuth
	}
	return &ssh.Permissions{Extensions: map[string]string{extRole: roleUp, extHost: h.HostID}}, nil
}

// checkSecret accepts a one-time token or the registration password for the
// registration user, within the global failure budget.
func (s *Server) checkSecret(c ssh.ConnMetadata, secret []byte) (*ssh.Permissions, error) {
	if c.User() != wire.RegisterUser {
		return nil, errAuth
	}
	if !s.limiter.allow(time.Now()) {
		return nil, errAuth
	}
	if h, ok := checkToken(s.reg, secret, time.Now()); ok {
		return &ssh.Permissions{Extensions: map[string]string{extRole: roleReg, extAuth: string(AuthToken), extToken: h}}, nil
	}
	if checkPassword(s.opts.RegistrationPassword, secret) {
		return &ssh.Permissions{Extensions: map[string]string{extRole: roleReg, extAuth: string(AuthPassword)}}, nil
	}
	s.limiter.fail(time.Now())
	return nil, errAuth
}

// Serve accepts connections on ln until ctx ends, then closes ln and every
// connection and returns nil. It returns an accept error that is not
// temporary.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	cfg := s.config()
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := map[net.Conn]struct{}{}
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
	})
	defer stop()
	defer wg.Wait()
	s.log.Info("receiver listening", "addr", ln.Addr().String(), "host_key", ssh.FingerprintSHA256(s.HostKey()))
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		tk, why := s.climit.admit(addrKey(c.RemoteAddr()))
		if tk == nil {
			s.refused.Add(1)
			s.log.Debug("connection refused", "remote", c.RemoteAddr().String(), "why", why)
			c.Close()
			continue
		}
		s.conns.Add(1)
		mu.Lock()
		if ctx.Err() != nil {
			mu.Unlock()
			c.Close()
			tk.release()
			continue
		}
		open[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer tk.release()
			defer func() {
				mu.Lock()
				delete(open, c)
				mu.Unlock()
				c.Close()
			}()
			s.handle(ctx, c, cfg, tk)
		}()
	}
}

// handle runs one connection: handshake within the handshake timeout, then
// its channels, until no channel has moved data for the idle timeout.
func (s *Server) handle(ctx context.Context, nc net.Conn, cfg *ssh.ServerConfig, tk *ticket) {
	hs := time.AfterFunc(s.opts.HandshakeTimeout, func() { nc.Close() })
	conn, chans, reqs, err := ssh.NewServerConn(nc, cfg)
	if !hs.Stop() {
		// The deadline closed nc; the handshake may have completed just now.
		if err == nil {
			conn.Close()
		}
		s.log.Debug("handshake timed out", "remote", nc.RemoteAddr().String())
		return
	}
	if err != nil {
		s.log.Debug("handshake failed", "remote", nc.RemoteAddr().String(), "err", err)
		return
	}
	defer conn.Close()
	owner := conn.Permissions.Extensions[extHost]
	if owner == "" {
		owner = "register@" + addrKey(nc.RemoteAddr())
	}
	if !tk.promote(owner) {
		s.refused.Add(1)
		s.log.Info("connection refused: host has too many connections", "remote", nc.RemoteAddr().String(),
			"user", conn.User(), "max", s.opts.MaxConnsPerHost)
		return
	}
	idle := newIdleTimer(s.opts.IdleTimeout, func() { nc.Close() })
	defer idle.stop()

	// Global requests (tcpip-forward, keepalives…) are all refused.
	go func() {
		for r := range reqs {
			if r.WantReply {
				r.Reply(false, nil)
			}
		}
	}()
	perms := conn.Permissions
	role := perms.Extensions[extRole]
	log := s.log.With("remote", conn.RemoteAddr().String(), "user", conn.User())
	log.Debug("connection authenticated", "role", role)

	var chwg sync.WaitGroup
	defer chwg.Wait()
	var nch atomic.Int32
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.Prohibited, "only session channels")
			continue
		}
		if nch.Load() >= maxChannels {
			nc.Reject(ssh.ResourceShortage, "too many channels")
			continue
		}
		raw, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		ch := &idleChannel{Channel: raw, idle: idle}
		nch.Add(1)
		chwg.Add(1)
		go func() {
			defer chwg.Done()
			defer nch.Add(-1)
			defer ch.Close()
			s.session(conn, log, ch, creqs)
		}()
	}
}

// session serves one session channel: exactly one subsystem request, the
// one the connection's role allows; everything else is refused.
func (s *Server) session(conn *ssh.ServerConn, log *slog.Logger, ch ssh.Channel, reqs <-chan *ssh.Request) {
	perms := conn.Permissions.Extensions
	for r := range reqs {
		if r.Type != "subsystem" {
			r.Reply(false, nil)
			continue
		}
		var p struct{ Name string }
		if err := ssh.Unmarshal(r.Payload, &p); err != nil {
			r.Reply(false, nil)
			continue
		}
		var run func() uint32
		switch {
		case perms[extRole] == roleUp && p.Name == "sftp":
			run = func() uint32 { return s.serveSFTP(log, ch, perms[extHost]) }
		case perms[extRole] == roleUp && p.Name == wire.DeregisterSubsystem:
			run = func() uint32 { return s.deregister(log, ch, perms[extHost]) }
		case perms[extRole] == roleReg && p.Name == wire.RegisterSubsystem:
			run = func() uint32 { return s.register(log, conn, ch, perms) }
		default:
			r.Reply(false, nil)
			continue
		}
		r.Reply(true, nil)
		go func() {
			// Refuse every later request on this channel (env, pty-req,
			// exec…) while the subsystem runs.
			for r := range reqs {
				if r.WantReply {
					r.Reply(false, nil)
				}
			}
		}()
		status := run()
		ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
		return
	}
}

// register reads one request and answers it.
func (s *Server) register(log *slog.Logger, conn *ssh.ServerConn, ch ssh.Channel, perms map[string]string) uint32 {
	resp := s.answerRegistration(log, conn, ch, perms)
	b, _ := json.Marshal(resp)
	ch.Write(append(b, '\n'))
	ch.CloseWrite()
	s.registered.Add(1)
	if resp.Status == wire.StatusDenied && resp.RequestID == "" {
		return 1
	}
	return 0
}

func (s *Server) answerRegistration(log *slog.Logger, conn *ssh.ServerConn, ch ssh.Channel, perms map[string]string) *wire.Response {
	deny := func(reason string) *wire.Response { return &wire.Response{Status: wire.StatusDenied, Reason: reason} }
	b, err := io.ReadAll(io.LimitReader(ch, wire.MaxRequestBytes+1))
	if err != nil {
		return deny("read request: " + err.Error())
	}
	if len(b) > wire.MaxRequestBytes {
		return deny(fmt.Sprintf("request larger than %d bytes", wire.MaxRequestBytes))
	}
	req, err := wire.ParseRequest(b)
	if err != nil {
		return deny(err.Error())
	}
	if err := req.VerifyProof(conn.SessionID()); err != nil {
		return deny(err.Error())
	}
	tokenHash := ""
	if Auth(perms[extAuth]) == AuthToken {
		tokenHash = perms[extToken]
	}
	remote := ""
	if a, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
		remote = a.IP.String()
	}
	var r *Registration
	var shard string
	var shardErr error
	err = s.reg.Update(func(reg registry.Store) error {
		var err error
		r, err = submit(reg, req, Auth(perms[extAuth]), tokenHash, remote, time.Now())
		if err == nil && r.Status == wire.StatusGranted && s.opts.Shards != nil {
			shard, shardErr = assignShard(reg, s.opts.Shards, r.HostID)
		}
		return err
	})
	if err != nil {
		if errors.Is(err, wire.ErrBadRequest) || errors.Is(err, ErrTooManyPending) {
			return deny(err.Error())
		}
		log.Error("registration", "request", req.RequestID, "err", err)
		return deny("server error")
	}
	if r.Status == wire.StatusGranted && s.opts.Shards != nil {
		if shardErr != nil {
			log.Error("registration: no shard assigned; the loader assigns one", "host_id", r.HostID, "err", shardErr)
		} else {
			log.Info("host assigned to shard", "host_id", r.HostID, "shard", shard)
		}
	}
	log.Info("registration request", "request", r.RequestID, "hostname", r.Facts.Hostname, "status", r.Status, "host_id", r.HostID, "auth", r.Auth)
	switch {
	case r.Status == wire.StatusGranted && len(r.Replaces) > 0:
		log.Warn("host replaced", "host_id", r.HostID, "replaced_host_ids", r.Replaces, "request", r.RequestID, "by", r.DecidedBy)
	case r.Status == wire.StatusPending && r.Replace:
		log.Warn("registration asks to replace a host; waiting for an administrator", "request", r.RequestID, "reason", r.Reason)
	}
	resp := &wire.Response{Status: r.Status, RequestID: r.RequestID, HostID: r.HostID, Reason: r.Reason}
	if r.Status == wire.StatusGranted {
		resp.User = r.HostID
	}
	return resp
}

// deregister revokes the connected host.
func (s *Server) deregister(log *slog.Logger, ch ssh.Channel, hostID string) uint32 {
	resp := wire.Response{Status: wire.StatusRevoked, HostID: hostID}
	if err := Revoke(s.reg, hostID, false); err != nil {
		log.Error("deregister", "host", hostID, "err", err)
		resp = wire.Response{Status: wire.StatusDenied, HostID: hostID, Reason: "server error"}
	} else {
		log.Info("host deregistered itself", "host", hostID)
	}
	b, _ := json.Marshal(resp)
	ch.Write(append(b, '\n'))
	ch.CloseWrite()
	return 0
}

// idleChannel restarts the idle timer on every read and write of channel
// data. Only data counts: SSH keep-alives, window adjustments and requests
// pass below it, so they cannot keep a connection open.
type idleChannel struct {
	ssh.Channel
	idle *idleTimer
}

func (c *idleChannel) Read(p []byte) (int, error) {
	n, err := c.Channel.Read(p)
	if n > 0 {
		c.idle.touch()
	}
	return n, err
}

func (c *idleChannel) Write(p []byte) (int, error) {
	n, err := c.Channel.Write(p)
	if n > 0 {
		c.idle.touch()
	}
	return n, err
}

// idleTimer closes a connection when touch is not called for d.
type idleTimer struct {
	d     time.Duration
	t     *time.Timer
	mu    sync.Mutex
	ended bool
}

func newIdleTimer(d time.Duration, onIdle func()) *idleTimer {
	it := &idleTimer{d: d}
	it.t = time.AfterFunc(d, onIdle)
	return it
}

func (it *idleTimer) touch() {
	it.mu.Lock()
	defer it.mu.Unlock()
	if !it.ended {
		it.t.Reset(it.d)
	}
}

func (it *idleTimer) stop() {
	it.mu.Lock()
	defer it.mu.Unlock()
	it.ended = true
	it.t.Stop()
}

// failureLimiter is a global budget of failed secret checks: n failures per
// window, refilled continuously.
type failureLimiter struct {
	mu     sync.Mutex
	tokens float64
	max    float64
	rate   float64 // per second
	last   time.Time
}

func newFailureLimiter(n int, per time.Duration) *failureLimiter {
	return &failureLimiter{tokens: float64(n), max: float64(n), rate: float64(n) / per.Seconds()}
}

func (l *failureLimiter) refill(now time.Time) {
	if !l.last.IsZero() {
		l.tokens = min(l.max, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	l.last = now
}

// allow reports whether a check may run now.
func (l *failureLimiter) allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refill(now)
	return l.tokens >= 1
}

// fail spends one failure.
func (l *failureLimiter) fail(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refill(now)
	l.tokens = max(0, l.tokens-1)
}
