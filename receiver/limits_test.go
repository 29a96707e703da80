package receiver

import (
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// dialFrom opens a TCP connection to addr from the loopback address src, so
// that one test can play several source addresses.
func dialFrom(src, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return d.Dial("tcp", addr)
}

// sshFrom logs in as user from the loopback address src.
func (f *fixture) sshFrom(src, user string, auth ...ssh.AuthMethod) (*ssh.Client, error) {
	nc, err := dialFrom(src, f.addr)
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	cc, chans, reqs, err := ssh.NewClientConn(nc, f.addr, &ssh.ClientConfig{
		User: user, Auth: auth, HostKeyCallback: ssh.FixedHostKey(f.srv.HostKey()), Timeout: 10 * time.Second,
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	return ssh.NewClient(cc, chans, reqs), nil
}

// TestFloodAndGreedyHostDoNotLockOut: a stranger opening many silent
// connections and a registered host holding connections open with
// keep-alives do not stop another host from pushing. Loopback only; the
// flood is 200 connections, every wait has a deadline.
func TestFloodAndGreedyHostDoNotLockOut(t *testing.T) {
	const flood = 200
	f := start(t, func(o *Options) {
		o.MaxConns = 16
		o.MaxStartups = 8
		o.MaxStartupsPerAddr = 4
		o.MaxConnsPerHost = 2
		o.HandshakeTimeout = 2 * time.Second
		o.IdleTimeout = 2 * time.Second
	})
	const stranger, greedy, victim = "127.0.0.2", "127.0.0.3", "127.0.0.4"

	// The flood: silent TCP connections from one address, never a byte.
	var held []net.Conn
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	for range flood {
		c, err := dialFrom(stranger, f.addr)
		if err != nil {
			t.Fatalf("flood connection: %v", err)
		}
		held = append(held, c)
	}
	// The greedy host: as many connections as it can get, kept alive by
	// keep-alives every 100 ms and nothing else.
	var greedyConns []*ssh.Client
	refusedGreedy := 0
	for range 5 {
		c, err := f.sshFrom(greedy, "host-b", ssh.PublicKeys(f.keys["host-b"]))
		if err != nil {
			refusedGreedy++
			continue
		}
		// The server closes a connection over the per-host cap right after
		// authentication; see whether this one survives a round trip.
		if _, _, err := c.SendRequest("keepalive@openssh.com", true, nil); err != nil {
			refusedGreedy++
			c.Close()
			continue
		}
		greedyConns = append(greedyConns, c)
	}
	if len(greedyConns) > 2 {
		t.Errorf("greedy host holds %d connections, want at most 2 (MaxConnsPerHost)", len(greedyConns))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	t0 := time.Now()
	greedyEnded := make(chan time.Duration, len(greedyConns))
	for _, c := range greedyConns {
		go func() { c.Wait(); greedyEnded <- time.Since(t0).Round(time.Millisecond) }()
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, _, err := c.SendRequest("keepalive@openssh.com", true, nil); err != nil {
						return
					}
				}
			}
		}()
	}
	t.Cleanup(func() {
		close(stop)
		for _, c := range greedyConns {
			c.Close()
		}
		wg.Wait()
	})

	// The victim pushes a segment, while the flood and the greedy host hold
	// what they can.
	pushStart := time.Now()
	c, err := f.sshFrom(victim, "host-a", ssh.PublicKeys(f.keys["host-a"]))
	if err != nil {
		t.Fatalf("host-a cannot log in during the flood: %v (stats %+v)", err, f.srv.Stats())
	}
	defer c.Close()
	sc := sftpClient(t, c)
	data := []byte("evidence pushed during a flood")
	if err := put(sc, seg("host-a", 1), data); err != nil {
		t.Fatalf("host-a push during the flood: %v", err)
	}
	pushTook := time.Since(pushStart)
	if b, err := os.ReadFile(filepath.Join(f.state.Host("host-a").Inbox, seg("host-a", 1))); err != nil || string(b) != string(data) {
		t.Errorf("pushed segment = %q, %v", b, err)
	}

	// The stranger's connections are closed: all but MaxStartupsPerAddr at
	// once, those within the handshake timeout.
	closedBy := make([]time.Duration, len(held))
	var cwg sync.WaitGroup
	for i, hc := range held {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			hc.SetReadDeadline(time.Now().Add(10 * time.Second))
			var b [256]byte
			for {
				if _, err := hc.Read(b[:]); err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						closedBy[i] = -1
					} else {
						closedBy[i] = time.Since(t0)
					}
					return
				}
			}
		}()
	}
	cwg.Wait()
	open, slowest := 0, time.Duration(0)
	for _, d := range closedBy {
		if d < 0 {
			open++
		}
		slowest = max(slowest, d)
	}
	if open > 0 {
		t.Errorf("%d of %d silent connections still open after 10 s (handshake timeout 2 s)", open, flood)
	}
	// The greedy host's connections end within the idle timeout despite
	// their keep-alives.
	deadline := time.After(10 * time.Second)
	var greedyClosed []time.Duration
	for i := range greedyConns {
		select {
		case d := <-greedyEnded:
			greedyClosed = append(greedyClosed, d)
		case <-deadline:
			t.Fatalf("greedy connection %d still open after 10 s of keep-alives (idle timeout 2 s)", i)
		}
	}
	st := f.srv.Stats()
	t.Logf("flood %d silent connections from one address: %d refused at once; last closed after %v; greedy host: %d connections kept, %d refused, closed after %v despite keep-alives; host-a push took %v; stats %+v",
		flood, st.Refused-int64(refusedGreedy), slowest.Round(time.Millisecond), len(greedyConns), refusedGreedy, greedyClosed, pushTook.Round(time.Millisecond), st)
	if st.Refused < flood-4 {
		t.Errorf("refused %d connections, want at least %d", st.Refused, flood-4)
	}
}

func sftpClient(t *testing.T, c *ssh.Client) *sftp.Client {
	t.Helper()
	sc, err := sftp.NewClient(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	return sc
}
