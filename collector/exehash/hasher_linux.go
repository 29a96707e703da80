//go:build linux

package exehash

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pofr/pofr/collector"
	"github.com/pofr/pofr/internal/defaults"
	"github.com/pofr/pofr/internal/event"
)

// Defaults of Options.
const (
	DefaultMaxSize   = 256 << 20
	DefaultBudget    = 0.1
	DefaultQueue     = 256
	DefaultRefresh   = 10 * time.Minute
	DefaultCacheSize = 1 << 16
	chunk            = 1 << 20
)

// Options configures a Hasher.
type Options struct {
	// Exes receives the exe rows; Gaps the gap rows of execs not looked at.
	Exes event.ExeSink
	Gaps event.Sink
	// MaxSize is the largest file hashed, in bytes (0: DefaultMaxSize); a
	// larger one gets a row with skip too_large.
	MaxSize int64
	// Budget is the CPU the worker may spend hashing, as a fraction of one
	// CPU (0: DefaultBudget; 1 or more: no limit).
	Budget float64
	// Queue is how many new identities may wait for the worker (0:
	// DefaultQueue); each holds a descriptor.
	Queue int
	// Refresh is how often an identity still being executed gets a row with
	// its later last_ts (0: DefaultRefresh).
	Refresh time.Duration
	// CacheSize bounds the identities remembered (0: DefaultCacheSize).
	CacheSize int
	// ProcRoot is the procfs mount point ("" is /proc).
	ProcRoot string
	// Log receives start and stop lines; nil discards.
	Log *slog.Logger
}

// Stats are a Hasher's counters since it was created.
type Stats struct {
	Execs      uint64 // execs handed over
	Hits       uint64 // execs of an identity already known
	Hashed     uint64 // identities hashed
	Bytes      uint64 // bytes hashed
	CPUNanos   uint64 // thread CPU time the worker spent hashing
	TooLarge   uint64 // identities over MaxSize
	Changed    uint64 // identities changed while read
	ReadErrors uint64 // identities that could not be read
	Lost       uint64 // execs not looked at: queue full or nothing to open (gap rows)
	Evicted    uint64 // identities dropped from the full cache
	KeyHits    uint64 // execs counted by key, without opening the file (part of Hits)
}

// identity names one version of one file on the host.
type identity struct {
	dev, ino           uint64
	size, mtime, ctime int64
}

func identityOf(st *unix.Stat_t) identity {
	return identity{dev: st.Dev, ino: st.Ino, size: st.Size, mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano()}
}

// entry is what the hasher remembers of an identity.
type entry struct {
	done   bool // hashed (or skipped) and its first row sent
	row    event.Executable
	n      uint32 // execs since the last row
	sentAt int64
	key    uint64 // event.ExeKey of the identity, for exec rows
}

type job struct {
	fd  int
	id  identity
	ts  int64
	how string
}

// Hasher implements collector.ExecHasher.
type Hasher struct {
	opts  Options
	queue chan job

	mu       sync.Mutex
	cache    map[identity]*entry
	keys     map[string]identity // HashExecKey's caller keys (fanotify FIDs) of identities seen
	lostN    int64
	lostFrom int64
	lostTo   int64
	lossC    chan struct{} // the first loss since the last gap row: Run writes one within lossFlush

	execs, hits, keyHits, hashed, bytes, cpu, tooLarge, changed, readErrs, lost, evicted atomic.Uint64
}

var _ collector.ExecHasher = (*Hasher)(nil)

// New returns a Hasher; Run must run for queued identities to be hashed.
func New(opts Options) (*Hasher, error) {
	if opts.Exes == nil || opts.Gaps == nil {
		return nil, errors.New("exehash: Exes and Gaps are required")
	}
	defaults.Positive(&opts.MaxSize, DefaultMaxSize)
	defaults.Positive(&opts.Budget, DefaultBudget)
	defaults.Positive(&opts.Queue, DefaultQueue)
	defaults.Positive(&opts.Refresh, DefaultRefresh)
	defaults.Positive(&opts.CacheSize, DefaultCacheSize)
	defaults.Zero(&opts.ProcRoot, "/proc")
	defaults.Zero(&opts.Log, slog.New(slog.DiscardHandler))
	return &Hasher{opts: opts, queue: make(chan job, opts.Queue), cache: map[identity]*entry{},
		keys: map[string]identity{}, lossC: make(chan struct{}, 1)}, nil
}

// Stats returns the counters.
func (h *Hasher) Stats() Stats {
	return Stats{Execs: h.execs.Load(), Hits: h.hits.Load(), Hashed: h.hashed.Load(), Bytes: h.bytes.Load(),
		CPUNanos: h.cpu.Load(), TooLarge: h.tooLarge.Load(), Changed: h.changed.Load(), ReadErrors: h.readErrs.Load(),
		Lost: h.lost.Load(), Evicted: h.evicted.Load(), KeyHits: h.keyHits.Load()}
}

// HashExec implements collector.ExecHasher: it stats the file, counts the
// exec of a known identity, and queues a new one for the worker.
func (h *Hasher) HashExec(fd int, pid int32, ts int64, path []byte) uint64 {
	return h.HashExecKey(fd, nil, pid, ts, path)
}

var _ collector.ExecKeyHasher = (*Hasher)(nil)

// SeenExecKey implements collector.ExecKeyHasher: an exec of the file the
// caller named key in an earlier HashExecKey is counted against that
// identity, without opening or stating the file, while the identity is
// still cached.
func (h *Hasher) SeenExecKey(key []byte, pid int32, ts int64) (uint64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	id, ok := h.keys[string(key)]
	if !ok {
		return 0, false
	}
	e := h.cache[id]
	if e == nil {
		delete(h.keys, string(key))
		return 0, false
	}
	h.execs.Add(1)
	h.hits.Add(1)
	h.keyHits.Add(1)
	h.seenLocked(e, pid, ts)
	return e.key, true
}

// ForgetExecKey implements collector.ExecKeyHasher.
func (h *Hasher) ForgetExecKey(key []byte) {
	h.mu.Lock()
	if key == nil {
		clear(h.keys)
	} else if len(h.keys) > 0 {
		delete(h.keys, string(key))
	}
	h.mu.Unlock()
}

// HashExecKey implements collector.ExecKeyHasher: HashExec that also
// remembers key (if not nil) for the identity fd has.
func (h *Hasher) HashExecKey(fd int, key []byte, pid int32, ts int64, path []byte) uint64 {
	h.execs.Add(1)
	how := event.ExeByHandle
	if fd < 0 {
		how = event.ExeByProc
		var err error
		fd, err = unix.Open(h.opts.ProcRoot+"/"+strconv.Itoa(int(pid))+"/exe", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			h.loss(ts)
			return 0
		}
	}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		unix.Close(fd)
		h.loss(ts)
		return 0
	}
	id := identityOf(&st)
	h.mu.Lock()
	if key != nil && how == event.ExeByHandle {
		if len(h.keys) >= h.opts.CacheSize {
			clear(h.keys)
		}
		h.keys[string(key)] = id
	}
	if e := h.cache[id]; e != nil {
		h.hits.Add(1)
		unix.Close(fd)
		h.seenLocked(e, pid, ts)
		h.mu.Unlock()
		return e.key
	}
	if len(h.cache) >= h.opts.CacheSize {
		h.evictLocked()
	}
	e := &entry{row: event.Executable{TS: ts, LastTS: ts, PID: pid, Dev: id.dev, Inode: id.ino, Size: id.size,
		MTimeNS: id.mtime, CTimeNS: id.ctime, How: how, Path: append([]byte(nil), path...)}, n: 1,
		key: event.ExeKey(id.dev, id.ino, id.size, id.mtime, id.ctime)}
	select {
	case h.queue <- job{fd: fd, id: id, ts: ts, how: how}:
		h.cache[id] = e
	default:
		unix.Close(fd)
		h.lossLocked(ts)
	}
	h.mu.Unlock()
	return e.key
}

// seenLocked counts an exec of a known identity and sends a refresh row
// when the last one is older than Refresh.
func (h *Hasher) seenLocked(e *entry, pid int32, ts int64) {
	if e.n == 0 {
		e.row.TS, e.row.PID = ts, pid
	}
	e.n++
	e.row.LastTS = max(e.row.LastTS, ts)
	if e.done && ts-e.sentAt >= int64(h.opts.Refresh) {
		h.sendLocked(e, ts)
	}
}

func (h *Hasher) sendLocked(e *entry, now int64) {
	e.row.Count = e.n
	h.opts.Exes.AppendExecutable(&e.row)
	e.n, e.sentAt = 0, now
}

// evictLocked drops one identity, sending its pending execs first.
func (h *Hasher) evictLocked() {
	for id, e := range h.cache {
		if !e.done {
			continue
		}
		if e.n > 0 {
			h.sendLocked(e, e.row.LastTS)
		}
		delete(h.cache, id)
		h.evicted.Add(1)
		return
	}
}

func (h *Hasher) loss(ts int64) {
	h.mu.Lock()
	h.lossLocked(ts)
	h.mu.Unlock()
}

func (h *Hasher) lossLocked(ts int64) {
	h.lost.Add(1)
	if h.lostN == 0 {
		h.lostFrom = ts
		select {
		case h.lossC <- struct{}{}:
		default:
		}
	}
	h.lostN++
	h.lostTo = max(h.lostTo, ts)
}

// flushLoss writes the execs lost since the last call as one gap row.
func (h *Hasher) flushLoss() {
	h.mu.Lock()
	n, from, to := h.lostN, h.lostFrom, h.lostTo
	h.lostN, h.lostFrom, h.lostTo = 0, 0, 0
	h.mu.Unlock()
	if n > 0 {
		h.opts.Gaps.AppendGap(&event.Gap{FromTS: from, ToTS: max(from, to), Source: event.SourceExe, Lost: event.Some(n),
			Reason: "executables not hashed: hash queue full or file not openable"})
	}
}

// lossFlush is how long losses are gathered into one gap row.
const lossFlush = time.Second

// Run hashes queued identities until ctx ends, then sends the execs counted
// since each identity's last row and closes what is still queued. Losses
// are written lossFlush after the first one: no timer runs while nothing
// is lost (an idle collector's wakeups, docs/design.md "Idle wakeups").
func (h *Hasher) Run(ctx context.Context) error {
	runtime.LockOSThread() // thread CPU time measures this goroutine
	defer runtime.UnlockOSThread()
	flushT := time.NewTimer(lossFlush)
	flushT.Stop()
	defer flushT.Stop()
	var flush <-chan time.Time
	buf := make([]byte, chunk)
	for {
		select {
		case <-ctx.Done():
			h.stop()
			return nil
		case <-h.lossC:
			if flush == nil {
				flushT.Reset(lossFlush)
				flush = flushT.C
			}
		case <-flush:
			flush = nil
			h.flushLoss()
		case j := <-h.queue:
			sum, skip := h.hash(ctx, j, buf)
			unix.Close(j.fd)
			h.mu.Lock()
			if e := h.cache[j.id]; e != nil {
				e.row.SHA256, e.row.Skip, e.done = sum, skip, true
				h.sendLocked(e, time.Now().UnixNano())
			}
			h.mu.Unlock()
		}
	}
}

func (h *Hasher) stop() {
	for {
		select {
		case j := <-h.queue:
			unix.Close(j.fd)
			h.loss(j.ts)
			h.mu.Lock()
			delete(h.cache, j.id)
			h.mu.Unlock()
			continue
		default:
		}
		break
	}
	h.mu.Lock()
	for _, e := range h.cache {
		if e.done && e.n > 0 {
			h.sendLocked(e, e.row.LastTS)
		}
	}
	h.mu.Unlock()
	h.flushLoss()
}

// hash reads the file from offset 0 in chunks, sleeping after each so that
// its CPU time stays within the budget; it returns the digest, or nil and
// why not.
func (h *Hasher) hash(ctx context.Context, j job, buf []byte) ([]byte, string) {
	if j.id.size > h.opts.MaxSize {
		h.tooLarge.Add(1)
		return nil, event.ExeSkipTooLarge
	}
	d := sha256.New()
	var off int64
	for {
		c0 := threadCPU()
		n, err := unix.Pread(j.fd, buf, off)
		if n > 0 {
			d.Write(buf[:n])
			off += int64(n)
		}
		spent := threadCPU() - c0
		h.cpu.Add(uint64(max(spent, 0)))
		if err != nil && !errors.Is(err, unix.EINTR) {
			h.readErrs.Add(1)
			return nil, event.ExeSkipRead
		}
		if n == 0 || off > h.opts.MaxSize {
			break
		}
		if h.opts.Budget < 1 && spent > 0 {
			t := time.NewTimer(time.Duration(float64(spent) * (1/h.opts.Budget - 1)))
			select {
			case <-ctx.Done():
				t.Stop()
				h.readErrs.Add(1)
				return nil, event.ExeSkipRead
			case <-t.C:
			}
		}
	}
	h.bytes.Add(uint64(off))
	var st unix.Stat_t
	if off != j.id.size || unix.Fstat(j.fd, &st) != nil || !unchangedWhileRead(identityOf(&st), uint64(st.Nlink), j.id) {
		h.changed.Add(1)
		return nil, event.ExeSkipChanged
	}
	h.hashed.Add(1)
	return d.Sum(nil), ""
}

// threadCPU returns the calling thread's CPU time in ns.
func threadCPU() int64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) != nil {
		return 0
	}
	return ts.Nano()
}

// unchangedWhileRead reports whether the file's identity after the read
// (now, with its link count) still describes the bytes of the identity it
// was queued with: equal, or only ctime moved because the last link was
// removed meanwhile (a dropper deleting itself right after it started; the
// unlink changes ctime, not the bytes).
func unchangedWhileRead(now identity, nlink uint64, was identity) bool {
	if now == was {
		return true
	}
	now.ctime = was.ctime
	return nlink == 0 && now == was
}
