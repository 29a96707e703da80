package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// Connection kinds: protocol and address family over loopback.
const (
	TCP4 = "tcp4" // TCP over 127.0.0.1
	TCP6 = "tcp6" // TCP over ::1
	UDP4 = "udp4" // connected UDP over 127.0.0.1
	UDP6 = "udp6" // connected UDP over ::1
)

// ConnKinds lists every kind [RunConns] knows.
var ConnKinds = []string{TCP4, TCP6, UDP4, UDP6}

// ConnConfig describes a stream of short connections over loopback.
type ConnConfig struct {
	Kinds     []string
	Lifetimes []time.Duration
	// PerBucket is the number of connections per (kind, lifetime).
	PerBucket int
	// Rate is the number of connections opened per second (they overlap).
	Rate float64
}

// ConnRecord is one client connection a [RunConns] stream made: connect,
// send one byte, hold for Lifetime, close. Times are ns since the Unix epoch.
type ConnRecord struct {
	Kind       string        `json:"kind"`
	Lifetime   time.Duration `json:"lifetime_ns"`
	LocalPort  uint16        `json:"lport"`
	RemotePort uint16        `json:"rport"`
	Open       int64         `json:"open_ns"`
	Close      int64         `json:"close_ns"`
	Err        string        `json:"err,omitempty"`
}

// ConnsResult is what a [RunConns] stream did. Owner is the pid holding
// every client socket.
type ConnsResult struct {
	Owner int          `json:"owner"`
	Conns []ConnRecord `json:"conns"`
}

// Proto returns "tcp" or "udp" for a kind.
func Proto(kind string) string { return kind[:3] }

// Family returns 4 or 6 for a kind.
func Family(kind string) uint8 {
	if kind[3] == '6' {
		return 6
	}
	return 4
}

func loopback(kind string) string {
	if Family(kind) == 6 {
		return "[::1]:0"
	}
	return "127.0.0.1:0"
}

// connServer is one loopback server: a TCP listener that reads each accepted
// connection to EOF, or a UDP socket that swallows datagrams.
type connServer struct {
	addr  netip.AddrPort
	close func()
}

func startServer(kind string, wg *sync.WaitGroup) (*connServer, error) {
	if Proto(kind) == "tcp" {
		ln, err := net.Listen(kind, loopback(kind))
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", kind, err)
		}
		wg.Go(func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				wg.Go(func() { io.Copy(io.Discard, c); c.Close() })
			}
		})
		return &connServer{addr: ln.Addr().(*net.TCPAddr).AddrPort(), close: func() { ln.Close() }}, nil
	}
	pc, err := net.ListenPacket(kind, loopback(kind))
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", kind, err)
	}
	wg.Go(func() {
		buf := make([]byte, 64)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	})
	return &connServer{addr: pc.LocalAddr().(*net.UDPAddr).AddrPort(), close: func() { pc.Close() }}, nil
}

// RunConns makes the connections described by cfg from this process, to
// servers it starts on loopback, and waits until all are closed.
func RunConns(ctx context.Context, cfg ConnConfig) (ConnsResult, error) {
	if cfg.Rate <= 0 {
		return ConnsResult{}, fmt.Errorf("run connections: rate %v, want > 0", cfg.Rate)
	}
	var srvWG, cliWG sync.WaitGroup
	servers := map[string]*connServer{}
	defer func() {
		for _, s := range servers {
			s.close()
		}
		srvWG.Wait()
	}()
	for _, k := range cfg.Kinds {
		s, err := startServer(k, &srvWG)
		if err != nil {
			return ConnsResult{}, err
		}
		servers[k] = s
	}
	type job struct {
		kind string
		life time.Duration
	}
	var plan []job
	for range cfg.PerBucket {
		for _, l := range cfg.Lifetimes {
			for _, k := range cfg.Kinds {
				plan = append(plan, job{k, l})
			}
		}
	}
	res := ConnsResult{Owner: os.Getpid(), Conns: make([]ConnRecord, len(plan))}
	n := 0
	for i := range paced(ctx, len(plan), cfg.Rate) {
		rec := &res.Conns[i]
		rec.Kind, rec.Lifetime = plan[i].kind, plan[i].life
		srv := servers[rec.Kind]
		rec.RemotePort = srv.addr.Port()
		cliWG.Go(func() { dialHold(rec, srv.addr) })
		n++
	}
	res.Conns = res.Conns[:n]
	cliWG.Wait()
	var errs []error
	for _, c := range res.Conns {
		if c.Err != "" {
			errs = append(errs, errors.New(c.Err))
		}
	}
	if len(errs) > 0 {
		return res, fmt.Errorf("%d of %d connections failed, first: %w", len(errs), len(res.Conns), errs[0])
	}
	return res, ctx.Err()
}

// dialHold makes one connection: connect, one byte, hold, close.
func dialHold(rec *ConnRecord, to netip.AddrPort) {
	rec.Open = time.Now().UnixNano()
	c, err := net.Dial(rec.Kind, to.String())
	if err != nil {
		rec.Err = fmt.Sprintf("dial %s %s: %v", rec.Kind, to, err)
		return
	}
	switch a := c.LocalAddr().(type) {
	case *net.TCPAddr:
		rec.LocalPort = uint16(a.Port)
	case *net.UDPAddr:
		rec.LocalPort = uint16(a.Port)
	}
	if _, err := c.Write([]byte{'x'}); err != nil {
		rec.Err = fmt.Sprintf("write %s %s: %v", rec.Kind, to, err)
	}
	time.Sleep(rec.Lifetime)
	c.Close()
	rec.Close = time.Now().UnixNano()
}
