package fleetsim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/pofr/pofr/bench"
	"github.com/pofr/pofr/collector/agent"
	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/receiver"
	"github.com/pofr/pofr/spool"
	"github.com/pofr/pofr/uplink"
	"github.com/pofr/pofr/wire"
)

// markPrefix starts argv[0] of a marked exec row: markPrefix + index
// (bench.MarkerIndex reads it back).
const markPrefix = "pofr-lat-"

// markComm is the comm of marked exec rows, so the head poll finds them.
const markComm = "pofr-lat"

// simHost is one simulated host: its registration (config directory with
// its SSH and signing keys), its spool writer and its uplink pusher.
type simHost struct {
	id       string
	confDir  string
	spoolDir string
	w        *spool.Writer
	p        *uplink.Pusher

	mu     sync.Mutex
	sealed []string    // segment names, as sealed
	rows   [3]int64    // proc, file, sock rows written
	marks  []int64     // marked exec i: its row's timestamp (ns)
	seen   []time.Time // marked exec i: when a head query first returned it
}

// register registers host i through the balancer with a one-time token
// created in the shared registry, as 'pofr-collector register' does, with facts of its own (the registry refuses a second host with the
// same machine id).
func register(ctx context.Context, dir string, reg registry.Store, addr, fingerprint string, i int) (*simHost, error) {
	tok, err := receiver.CreateToken(reg, 10*time.Minute)
	if err != nil {
		return nil, err
	}
	mid := make([]byte, 16)
	rand.Read(mid)
	h := &simHost{confDir: filepath.Join(dir, fmt.Sprintf("host%03d", i)), spoolDir: filepath.Join(dir, fmt.Sprintf("spool%03d", i))}
	res, err := uplink.Register(ctx, uplink.RegisterOptions{Server: addr, ConfigDir: h.confDir, Token: []byte(tok),
		Fingerprint: fingerprint, Facts: wire.Facts{Hostname: fmt.Sprintf("sim%03d.fleet.example", i), MachineID: hex.EncodeToString(mid)}})
	if err != nil {
		return nil, fmt.Errorf("register host %d: %w", i, err)
	}
	if res.Status != wire.StatusGranted {
		return nil, fmt.Errorf("register host %d: %s %s", i, res.Status, res.Reason)
	}
	h.id = res.HostID
	return h, nil
}

// open opens the host's spool writer (segments sealed every age) and its
// pusher, woken by every seal.
func (h *simHost) open(age, interval time.Duration, log *slog.Logger) error {
	keys, err := uplink.EnsureKeys(h.confDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(h.spoolDir, 0o700); err != nil {
		return err
	}
	q := agent.SpoolQueue(h.spoolDir)
	h.p, err = uplink.NewPusher(uplink.PushOptions{ConfigDir: h.confDir, Queue: q, Interval: interval, MaxBackoff: 2 * time.Second,
		Log: log.With("host", h.id)})
	if err != nil {
		return err
	}
	h.w, err = spool.Open(h.spoolDir, spool.Options{HostID: h.id, BootID: "boot-" + h.id, Key: keys.Signing,
		MaxSegmentAge: age, Hostname: h.id, Log: log,
		Sealed: func(name string) {
			h.mu.Lock()
			h.sealed = append(h.sealed, name)
			h.mu.Unlock()
			h.p.Notify()
		}})
	return err
}

// generate appends rows at rate per second (the busy-host mix of
// bench.LoadRows, timestamped now) and a marked exec every mark, until ctx
// ends.
func (h *simHost) generate(ctx context.Context, rate int, mark time.Duration) {
	const tick = 100 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	start, written := time.Now(), 0
	nextMark := start.Add(time.Duration(float64(mark) * randFloat()))
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			due := int(now.Sub(start).Seconds()*float64(rate)) - written
			if due > 0 {
				procs, files, socks := bench.LoadRows(now.UnixNano(), due)
				event.AppendAll(h.w, procs, files, socks, nil, nil)
				written += due
				h.mu.Lock()
				h.rows[0] += int64(len(procs))
				h.rows[1] += int64(len(files))
				h.rows[2] += int64(len(socks))
				h.mu.Unlock()
			}
			if now.After(nextMark) {
				h.mark()
				nextMark = nextMark.Add(mark)
			}
		}
	}
}

// mark writes one marked exec row, timestamped now.
func (h *simHost) mark() {
	h.mu.Lock()
	i := len(h.marks)
	ts := time.Now().UnixNano()
	h.marks = append(h.marks, ts)
	h.seen = append(h.seen, time.Time{})
	h.rows[0]++
	h.mu.Unlock()
	pid := int32(4_000_000 + i)
	h.w.AppendProc(&event.Proc{TS: ts, Event: event.ProcExec, PID: pid, TID: pid, PPID: 1, ProcStart: ts, UID: 0, EUID: 0,
		Comm: []byte(markComm), Exe: []byte("/usr/bin/true"), Argv: []byte(markPrefix + strconv.Itoa(i) + "\x00"), Cwd: []byte("/")})
}

// randFloat is a uniform float in [0, 1) from crypto/rand (no seeding).
func randFloat() float64 {
	var b [8]byte
	rand.Read(b[:])
	var n uint64
	for _, c := range b {
		n = n<<8 | uint64(c)
	}
	return float64(n>>11) / (1 << 53)
}

// pending is the number of sealed segments not yet pushed.
func (h *simHost) pending() int {
	items, err := agent.SpoolQueue(h.spoolDir).Pending()
	if err != nil {
		return -1
	}
	return len(items)
}

// seqs returns the seq of every segment the host sealed.
func (h *simHost) seqs() (map[uint64]bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[uint64]bool{}
	for _, n := range h.sealed {
		host, seq, _, ok := spool.ParseName(n)
		if !ok || host != h.id {
			return nil, fmt.Errorf("host %s sealed a segment named %q", h.id, n)
		}
		out[seq] = true
	}
	return out, nil
}
