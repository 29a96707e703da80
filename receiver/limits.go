package receiver

import (
	"net"
	"sync"
)

// connLimiter admits connections within the server's budgets: MaxConns in
// all, MaxStartups not yet authenticated (MaxStartupsPerAddr of them from one
// source address), and MaxConnsPerHost authenticated as one host. A stranger
// can so hold at most the pre-authentication budget, and only for the
// handshake timeout; a registered host at most its own cap.
type connLimiter struct {
	maxTotal, maxPre, maxPreAddr, maxHost int

	mu      sync.Mutex
	total   int
	pre     int
	preAddr map[string]int // pre-authentication connections by source address
	host    map[string]int // authenticated connections by host (or registrant address)
}

func newConnLimiter(o *Options) *connLimiter {
	return &connLimiter{
		maxTotal: o.MaxConns, maxPre: o.MaxStartups, maxPreAddr: o.MaxStartupsPerAddr, maxHost: o.MaxConnsPerHost,
		preAddr: map[string]int{}, host: map[string]int{},
	}
}

// Reasons admit and promote refuse a connection.
const (
	refuseTotal   = "connection limit"
	refusePre     = "pre-authentication limit"
	refusePreAddr = "pre-authentication limit per address"
	refuseHost    = "connection limit per host"
)

// ticket is one admitted connection's share of the budgets.
type ticket struct {
	l        *connLimiter
	addr     string
	host     string
	pre      bool
	released bool
}

// addrKey is the source address a connection is counted under: its IP
// without the port.
func addrKey(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// admit counts a new, unauthenticated connection from addr, or returns why
// it is refused.
func (l *connLimiter) admit(addr string) (*ticket, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.total >= l.maxTotal:
		return nil, refuseTotal
	case l.pre >= l.maxPre:
		return nil, refusePre
	case l.preAddr[addr] >= l.maxPreAddr:
		return nil, refusePreAddr
	}
	l.total++
	l.pre++
	l.preAddr[addr]++
	return &ticket{l: l, addr: addr, pre: true}, ""
}

// promote moves an authenticated connection from the pre-authentication
// budget to its host's, or returns false when the host has its cap already
// (the ticket then still counts as pre-authentication until released).
func (t *ticket) promote(host string) bool {
	l := t.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if !t.pre || t.released {
		return false
	}
	if l.host[host] >= l.maxHost {
		return false
	}
	l.dropPre(t.addr)
	t.pre = false
	t.host = host
	l.host[host]++
	return true
}

func (l *connLimiter) dropPre(addr string) {
	l.pre--
	if l.preAddr[addr]--; l.preAddr[addr] <= 0 {
		delete(l.preAddr, addr)
	}
}

// release gives the connection's share back; calling it again is a no-op.
func (t *ticket) release() {
	l := t.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.released {
		return
	}
	t.released = true
	l.total--
	if t.pre {
		l.dropPre(t.addr)
		return
	}
	if l.host[t.host]--; l.host[t.host] <= 0 {
		delete(l.host, t.host)
	}
}
