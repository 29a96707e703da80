package uplink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/pofr/pofr/internal/defaults"
	"github.com/pofr/pofr/wire"
)

// Item is one sealed segment waiting to be pushed.
type Item struct {
	// Name is the segment's file name, <host_id>_<seq>_<digest>.pofr.
	Name string
	// Path is where it is on the local disk.
	Path string
	Size int64
}

// Queue is the pusher's view of the spool: what to send, and how to drop
// what was sent.
type Queue interface {
	// Pending returns the sealed, unsent segments, oldest first.
	Pending() ([]Item, error)
	// Remove deletes a segment once the server has it.
	Remove(name string) error
}

// ErrConflict reports a segment name that exists on the server with another
// size: the pusher does not overwrite it and stops on it.
var ErrConflict = errors.New("uplink: segment exists on the server with another size")

// Defaults of PushOptions.
const (
	DefaultInterval   = 5 * time.Second
	DefaultMaxBackoff = 5 * time.Minute
	minBackoff        = time.Second
	keepAliveInterval = 30 * time.Second
)

// PushOptions configure a Pusher.
type PushOptions struct {
	// ConfigDir holds server.json and ssh.key; ignored when Config and
	// Signer are set.
	ConfigDir string
	Config    *Config
	Signer    ssh.Signer
	Queue     Queue
	Log       *slog.Logger
	// Interval is how often an idle pusher looks at the queue
	// (DefaultInterval); Notify wakes it earlier.
	Interval time.Duration
	// MaxBackoff caps the wait between failed attempts (DefaultMaxBackoff).
	MaxBackoff time.Duration
	// BandwidthBPS caps the upload rate in bytes per second; 0 is no cap.
	BandwidthBPS int64
	// OnSelfConn is called with the addresses of each new connection to the
	// server, so that the socket source can tag it as the collector's own.
	OnSelfConn func(local, remote net.Addr)
	// DialTimeout bounds connect plus handshake (15 s).
	DialTimeout time.Duration
}

// PushStats are the pusher's counters.
type PushStats struct {
	Uploaded  int64 // segments the server has and that were removed locally
	Bytes     int64 // bytes uploaded
	Failures  int64 // failed attempts (each followed by a backoff)
	Backlog   int   // segments pending at the last look
	Connected bool
	LastError string
	// LastUpload is when the last segment was uploaded (zero: none yet).
	LastUpload time.Time
}

// Pusher sends sealed segments to the server over one kept-alive SSH
// connection, oldest first, and removes each locally only once it is under
// its final name on the server.
type Pusher struct {
	o      PushOptions
	cfg    *Config
	signer ssh.Signer
	log    *slog.Logger
	wake   chan struct{}

	uploaded, bytes, failures atomic.Int64
	backlog                   atomic.Int64
	connected                 atomic.Bool
	mu                        sync.Mutex
	lastErr                   string
	lastUpload                time.Time

	client *ssh.Client
	sftp   *sftp.Client
	closed chan struct{} // closed once client's connection has ended
}

// NewPusher checks the options and loads the configuration and key.
func NewPusher(o PushOptions) (*Pusher, error) {
	if o.Queue == nil {
		return nil, errors.New("new pusher: no queue")
	}
	cfg, signer := o.Config, o.Signer
	var err error
	if cfg == nil {
		if cfg, err = LoadConfig(o.ConfigDir); err != nil {
			return nil, fmt.Errorf("new pusher: %w", err)
		}
	} else if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("new pusher: %w", err)
	}
	if signer == nil {
		if signer, err = LoadSSHKey(o.ConfigDir); err != nil {
			return nil, fmt.Errorf("new pusher: %w", err)
		}
	}
	defaults.Positive(&o.Interval, DefaultInterval)
	defaults.Positive(&o.MaxBackoff, DefaultMaxBackoff)
	defaults.Positive(&o.DialTimeout, 15*time.Second)
	defaults.Zero(&o.Log, slog.New(slog.DiscardHandler))
	return &Pusher{o: o, cfg: cfg, signer: signer, log: o.Log, wake: make(chan struct{}, 1)}, nil
}

// Notify wakes the pusher: a segment was sealed.
func (p *Pusher) Notify() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Stats returns the counters.
func (p *Pusher) Stats() PushStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return PushStats{
		Uploaded: p.uploaded.Load(), Bytes: p.bytes.Load(), Failures: p.failures.Load(),
		Backlog: int(p.backlog.Load()), Connected: p.connected.Load(), LastError: p.lastErr,
		LastUpload: p.lastUpload,
	}
}

// Run pushes until ctx ends, then closes the connection and returns nil.
// Errors are retried with exponential backoff and jitter; Run returns an
// error only for a queue that cannot be read at all on the first look.
func (p *Pusher) Run(ctx context.Context) error {
	defer p.disconnect()
	bo := backoff{min: minBackoff, max: p.o.MaxBackoff}
	for ctx.Err() == nil {
		n, err := p.drain(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var wait time.Duration
		switch {
		case err != nil:
			p.failures.Add(1)
			p.setErr(err)
			p.disconnect()
			wait = bo.next(rand.Float64)
			p.log.Warn("upload retry", "err", err, "in", wait.Round(time.Millisecond))
		case n > 0:
			bo.reset()
			p.setErr(nil)
			continue // look again at once: more may have been sealed
		default:
			bo.reset()
			p.setErr(nil)
			wait = p.o.Interval
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-p.wake:
			t.Stop()
			if err != nil {
				// Still back off after an error, but not from scratch.
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(wait / 2):
				}
			}
		case <-t.C:
		}
	}
	return nil
}

// drain uploads every pending segment, oldest first, and stops at the first
// error. It returns how many it uploaded.
// Drain pushes every pending segment once, oldest first, and returns: for a
// planned stop, after the last segment was sealed. It returns the number
// pushed and the first error; the connection is closed on return.
func (p *Pusher) Drain(ctx context.Context) (int, error) {
	defer p.disconnect()
	n, err := p.drain(ctx)
	if err != nil {
		p.failures.Add(1)
		p.setErr(err)
	} else {
		p.setErr(nil)
	}
	return n, err
}

func (p *Pusher) drain(ctx context.Context) (int, error) {
	items, err := p.o.Queue.Pending()
	if err != nil {
		return 0, fmt.Errorf("list pending segments: %w", err)
	}
	p.backlog.Store(int64(len(items)))
	n := 0
	for _, it := range items {
		if ctx.Err() != nil {
			return n, nil
		}
		if err := p.connect(ctx); err != nil {
			return n, err
		}
		if err := p.push(ctx, it); err != nil {
			return n, fmt.Errorf("push %s: %w", it.Name, err)
		}
		n++
		p.backlog.Add(-1)
	}
	return n, nil
}

// connect opens the SSH connection and SFTP session if there is none.
func (p *Pusher) connect(ctx context.Context) error {
	if p.sftp != nil {
		select {
		case <-p.closed:
			// The server closed it meanwhile (its idle timeout: keep-alives
			// do not keep a connection open): connect again, not an error.
			p.disconnect()
		default:
			return nil
		}
	}
	hk, err := p.cfg.hostKey()
	if err != nil {
		return err
	}
	cc := &ssh.ClientConfig{
		User:              p.cfg.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(p.signer)},
		HostKeyCallback:   ssh.FixedHostKey(hk),
		HostKeyAlgorithms: []string{hk.Type()},
		Timeout:           p.o.DialTimeout,
	}
	d := net.Dialer{Timeout: p.o.DialTimeout}
	nc, err := d.DialContext(ctx, "tcp", p.cfg.Server)
	if err != nil {
		return fmt.Errorf("connect %s: %w", p.cfg.Server, err)
	}
	if p.o.OnSelfConn != nil {
		p.o.OnSelfConn(nc.LocalAddr(), nc.RemoteAddr())
	}
	client, err := handshake(ctx, nc, p.cfg.Server, cc)
	if err != nil {
		return fmt.Errorf("connect %s: %w", p.cfg.Server, err)
	}
	sc, err := sftp.NewClient(client, sftp.UseConcurrentWrites(true), sftp.MaxConcurrentRequestsPerFile(64))
	if err != nil {
		client.Close()
		return fmt.Errorf("start sftp on %s: %w", p.cfg.Server, err)
	}
	closed := make(chan struct{})
	go func() { client.Wait(); close(closed) }()
	p.client, p.sftp, p.closed = client, sc, closed
	p.connected.Store(true)
	go keepAlive(client, keepAliveInterval)
	p.log.Info("connected to server", "server", p.cfg.Server, "host_id", p.cfg.HostID)
	return nil
}

// keepAlive sends keepalive@openssh.com until the connection fails, then
// closes it so that the next upload reconnects.
func keepAlive(c *ssh.Client, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			if _, _, err := c.SendRequest("keepalive@openssh.com", true, nil); err != nil {
				c.Close()
				return
			}
		}
	}
}

func (p *Pusher) disconnect() {
	if p.sftp != nil {
		p.sftp.Close()
	}
	if p.client != nil {
		p.client.Close()
	}
	p.sftp, p.client = nil, nil
	p.connected.Store(false)
}

// setErr records the last error; nil clears it after a success, so that
// Stats says whether the uplink is healthy now, not whether it ever failed.
func (p *Pusher) setErr(err error) {
	p.mu.Lock()
	if err == nil {
		p.lastErr = ""
	} else {
		p.lastErr = err.Error()
	}
	p.mu.Unlock()
}

func (p *Pusher) remote(name string) string {
	if p.cfg.RemoteDir == "" {
		return name
	}
	return path.Join(p.cfg.RemoteDir, name)
}

// push uploads one segment to its temporary name, renames it and removes it
// locally. A final name already on the server with the same size counts as
// uploaded (a crash between rename and local removal).
func (p *Pusher) push(ctx context.Context, it Item) error {
	final := p.remote(it.Name)
	if done, err := p.present(final, it.Size); err != nil || done {
		if done {
			return p.o.Queue.Remove(it.Name)
		}
		return err
	}
	f, err := os.Open(it.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	part := p.remote(wire.PartName(it.Name))
	rf, err := p.sftp.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("create %s: %w", part, err)
	}
	var src io.Reader = f
	if p.o.BandwidthBPS > 0 {
		src = &limitedReader{r: f, l: newRateLimiter(p.o.BandwidthBPS, time.Now), ctx: ctx}
	}
	n, err := rf.ReadFrom(src)
	if err != nil {
		rf.Close()
		return fmt.Errorf("write %s: %w", part, err)
	}
	if err := rf.Close(); err != nil {
		return fmt.Errorf("close %s: %w", part, err)
	}
	if n != it.Size {
		p.sftp.Remove(part)
		return fmt.Errorf("upload %s: sent %d bytes, file has %d (changed while sending)", it.Name, n, it.Size)
	}
	if _, ok := p.sftp.HasExtension("posix-rename@openssh.com"); ok {
		err = p.sftp.PosixRename(part, final)
	} else {
		err = p.sftp.Rename(part, final)
	}
	if err != nil {
		// The rename may have happened before an error was reported.
		if done, serr := p.present(final, it.Size); serr != nil || !done {
			return fmt.Errorf("rename %s: %w", part, err)
		}
	}
	p.bytes.Add(n)
	// The upload is healthy from here on: clear the error before the local
	// copy goes, so that whoever sees the spool empty also sees no error
	// (a planned stop decides from that whether to push its last segment).
	p.mu.Lock()
	p.lastErr = ""
	p.lastUpload = time.Now().UTC()
	p.mu.Unlock()
	if err := p.o.Queue.Remove(it.Name); err != nil {
		return fmt.Errorf("remove sent segment: %w", err)
	}
	p.uploaded.Add(1)
	p.log.Debug("segment uploaded", "segment", it.Name, "bytes", n)
	return nil
}

// present reports whether name is on the server with size.
func (p *Pusher) present(name string, size int64) (bool, error) {
	fi, err := p.sftp.Stat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("stat %s: %w", name, err)
	case fi.Size() == size:
		return true, nil
	default:
		return false, fmt.Errorf("%w: %s has %d bytes, local %d", ErrConflict, name, fi.Size(), size)
	}
}

// backoff is exponential backoff with jitter: each wait is drawn from
// [d/2, d), d doubling from min to max.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next(rnd func() float64) time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(b.cur*2, b.max)
	}
	return b.cur/2 + time.Duration(rnd()*float64(b.cur/2))
}

func (b *backoff) reset() { b.cur = 0 }

// rateLimiter is a token bucket of rate bytes per second holding at most
// one second's worth.
type rateLimiter struct {
	rate   float64
	tokens float64
	last   time.Time
	now    func() time.Time
}

func newRateLimiter(bps int64, now func() time.Time) *rateLimiter {
	return &rateLimiter{rate: float64(bps), tokens: float64(bps), last: now(), now: now}
}

// take spends n bytes and returns how long to wait before sending them.
func (l *rateLimiter) take(n int) time.Duration {
	t := l.now()
	l.tokens = min(l.rate, l.tokens+t.Sub(l.last).Seconds()*l.rate)
	l.last = t
	l.tokens -= float64(n)
	if l.tokens >= 0 {
		return 0
	}
	return time.Duration(-l.tokens / l.rate * float64(time.Second))
}

// limitedReader reads through a rateLimiter, in chunks of at most 32 KiB so
// that the bucket stays smooth.
type limitedReader struct {
	r   io.Reader
	l   *rateLimiter
	ctx context.Context
}

func (lr *limitedReader) Read(b []byte) (int, error) {
	if len(b) > 32<<10 {
		b = b[:32<<10]
	}
	n, err := lr.r.Read(b)
	if n > 0 {
		if d := lr.l.take(n); d > 0 {
			select {
			case <-time.After(d):
			case <-lr.ctx.Done():
				return n, lr.ctx.Err()
			}
		}
	}
	return n, err
}
