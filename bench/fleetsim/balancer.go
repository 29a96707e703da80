package fleetsim

import (
	"io"
	"net"
	"sync"
	"time"

	"github.com/pofr/pofr/bench"
)

// balancer is the TCP load balancer in front of the receivers (what a
// fleet puts behind one DNS name): each connection goes to the next
// receiver in turn, or the one after when a receiver refuses it, so a
// host whose receiver died reconnects to another one.
type balancer struct {
	ln       net.Listener
	backends []string
	mu       sync.Mutex
	next     int
	conns    map[net.Conn]struct{}
	wg       sync.WaitGroup
}

func newBalancer(backends []string) (*balancer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &balancer{ln: ln, backends: backends, conns: map[net.Conn]struct{}{}}
	b.wg.Go(b.serve)
	return b, nil
}

func (b *balancer) addr() string { return b.ln.Addr().String() }

func (b *balancer) serve() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.wg.Go(func() { b.relay(c) })
	}
}

// track records an open connection (for close), or forgets it.
func (b *balancer) track(c net.Conn, open bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if open {
		b.conns[c] = struct{}{}
	} else {
		delete(b.conns, c)
	}
}

// relay connects c to a receiver and copies both ways until either side
// ends; then it closes both, so that a host notices a dead receiver.
func (b *balancer) relay(c net.Conn) {
	b.track(c, true)
	defer b.track(c, false)
	defer c.Close()
	b.mu.Lock()
	start := b.next
	b.next++
	b.mu.Unlock()
	var up net.Conn
	for i := range b.backends {
		var err error
		if up, err = net.DialTimeout("tcp", b.backends[(start+i)%len(b.backends)], 2*time.Second); err == nil {
			break
		}
	}
	if up == nil {
		return
	}
	b.track(up, true)
	defer b.track(up, false)
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
}

// close stops accepting, closes every relayed connection and waits.
func (b *balancer) close() {
	b.ln.Close()
	b.mu.Lock()
	for c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// cpuMeter adds up the CPU time of the server's processes by kind
// (receiver, loader, shard mariadbd, head), from /proc/PID/stat: each
// process's CPU since the meter started (or since it started, if later).
// A process's last reading stands once it is gone, so the meter is read
// (sample) just before a process is killed.
type cpuMeter struct {
	mu    sync.Mutex
	procs map[int]*meterProc
}

type meterProc struct {
	kind       string
	start      uint64 // starttime: a reused pid is not this process
	base, last time.Duration
}

func newCPUMeter() *cpuMeter { return &cpuMeter{procs: map[int]*meterProc{}} }

// add starts counting pid under kind; fromZero counts all its CPU (a
// process started during the measurement).
func (m *cpuMeter) add(kind string, pid int, fromZero bool) {
	st, err := bench.ProcFS("/proc").Stat(pid)
	m.mu.Lock()
	defer m.mu.Unlock()
	p := &meterProc{kind: kind}
	if err == nil {
		p.start, p.last = st.StartTime, st.CPU()
		if !fromZero {
			p.base = p.last
		}
	}
	m.procs[pid] = p
}

// sample reads every process still running.
func (m *cpuMeter) sample() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for pid, p := range m.procs {
		if st, err := bench.ProcFS("/proc").Stat(pid); err == nil && st.StartTime == p.start && st.CPU() >= p.last {
			p.last = st.CPU()
		}
	}
}

// rebase starts counting every process afresh from now.
func (m *cpuMeter) rebase() {
	m.sample()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.procs {
		p.base = p.last
	}
}

// total returns the CPU seconds per kind and over all.
func (m *cpuMeter) total() (map[string]float64, float64) {
	m.sample()
	m.mu.Lock()
	defer m.mu.Unlock()
	by := map[string]float64{}
	var all float64
	for _, p := range m.procs {
		s := (p.last - p.base).Seconds()
		by[p.kind] += s
		all += s
	}
	return by, all
}
