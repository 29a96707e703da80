package spool

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/pofr/pofr/internal/defaults"
	"github.com/pofr/pofr/internal/durable"
	"github.com/pofr/pofr/internal/event"
)

// Writer defaults.
const (
	DefaultMaxSegmentBytes = 4 << 20
	DefaultMaxSegmentAge   = 15 * time.Second
	DefaultQuota           = 256 << 20
	// maxSegmentBytesLimit keeps a segment well inside the reader's default
	// limits whatever the configuration.
	maxSegmentBytesLimit = 32 << 20
	// MaxSegmentRows bounds the rows of any segment a Writer seals, whatever
	// its configuration: a batch is sealed once its estimate reaches 32 MiB,
	// every row adds at least 24 bytes (an account row, the smallest), and
	// sealing may carry one gap row over. A database that must take a whole
	// segment in one transaction (Galera's wsrep_max_ws_rows) is sized by it.
	MaxSegmentRows = maxSegmentBytesLimit/acctRowBytes + 2
	// MaxSegmentEstimate is the estimated uncompressed size at which a
	// Writer seals a segment at the latest, whatever its configuration (the
	// row that crosses it comes on top).
	MaxSegmentEstimate = maxSegmentBytesLimit
)

// Options configure a Writer. HostID, BootID and Key are required.
type Options struct {
	// HostID is the host id assigned at registration ([ValidHostID]).
	HostID string
	// BootID is the kernel's boot id (/proc/sys/kernel/random/boot_id); with
	// pid and proc_start it identifies a process.
	BootID string
	// Key signs every manifest.
	Key ed25519.PrivateKey
	// MaxSegmentBytes seals a segment once the rows held in memory reach
	// this estimated uncompressed size (default 4 MiB, at most 32 MiB). The
	// file on disk is several times smaller.
	MaxSegmentBytes int64
	// MaxSegmentAge seals a segment once its oldest row is this old
	// (default 15 s).
	MaxSegmentAge time.Duration
	// Quota bounds the total size of sealed segments in the spool (default
	// 256 MiB). Beyond it the oldest are evicted and the eviction recorded as
	// a gap row in the next segment.
	Quota int64
	// MaxPendingBytes bounds the rows held in memory while sealing keeps
	// failing (default 4 × MaxSegmentBytes). Beyond it the oldest unsealed
	// rows are dropped and the drop recorded as a gap row.
	MaxPendingBytes int64
	// Stats returns the collector's modes and counters for the manifest. It
	// is called once per seal, from the sealing goroutine. Nil: none.
	Stats func() Stats
	// Now is the clock (default time.Now). The manifest's tz_offset_seconds
	// is the offset of the time it returns.
	Now func() time.Time
	// Sealed, if set, is called with each new segment's name once it is
	// durable and verified (the uploader's cue). It runs on the sealing
	// goroutine and must not block.
	Sealed func(name string)
	// Log receives seal errors and evictions (default: discard).
	Log *slog.Logger
	// Hostname for the manifest (default os.Hostname).
	Hostname string
	// Version of the collector for the manifest (default: the main module's
	// version from the build info).
	Version string
}

// Stats is what the collector reports in each manifest.
type Stats struct {
	// Modes maps a source to how it captures (for example "proc": "netlink"
	// or "poll").
	Modes map[string]string
	// Counters maps a source to its event counts. The Writer adds "spool":
	// rows appended and rows dropped since Open.
	Counters map[string]Counter
}

// Writer is the spool's event.Sink: it collects rows in memory and seals
// them into signed segments in its directory. Appends are safe for
// concurrent use, never block on I/O and never fail: a row that cannot be
// kept is counted and recorded in a gap row.
type Writer struct {
	dir        string
	opts       Options
	pub        ed25519.PublicKey
	log        *slog.Logger
	lock       *os.File
	maxBytes   int64
	maxPending int64

	mu       sync.Mutex // guards the fields up to sealMu
	cur      *batch     // nil once closed
	queue    []*batch   // full batches waiting to be sealed, oldest first
	queued   int64      // estimated bytes in queue
	appended uint64     // rows accepted since Open
	lost     uint64     // rows dropped since Open
	noSpace  uint64     // of them, dropped because the file system was full
	sealedN  uint64     // segments sealed since Open
	evictedN uint64     // segments evicted by the quota since Open
	// sized holds the rows of each table in the last batch queued: a new
	// batch's builders are made that large at once (up to maxGrowRows),
	// which spares the columns' copying as they grow.
	sized [8]int64
	// waking: the loop sleeps without a timer until a row comes (added
	// kicks it).
	waking bool

	sealMu       sync.Mutex // serialises sealing; guards the fields below
	st           state
	pending      []spoolGap // gap rows for the next segment (evictions, stops)
	pendingSince time.Time
	carried      []spoolGap // pending rows sealed but not yet uploaded (state.Carried)
	failures     int
	retryAt      time.Time
	enc          *memberEncoder // made at the first seal, kept

	kick chan struct{}
	done chan struct{}
	wg   sync.WaitGroup
}

var (
	_ event.Sink    = (*Writer)(nil)
	_ event.DNSSink = (*Writer)(nil)
)

// Open opens (creating if needed) the spool in dir and starts the writer's
// sealing goroutine. It removes temporary files a crash left, completes an
// interrupted eviction, adopts a segment sealed just before a crash, and,
// unless this is the spool's first start, queues a gap row for the time the
// collector was not recording: "unclean stop" after a crash, "clean stop"
// after Close.
func Open(dir string, opts Options) (*Writer, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, fmt.Errorf("open spool %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open spool %s: %w", dir, err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open spool %s: %w", dir, err)
	}
	w := &Writer{dir: dir, opts: opts, pub: opts.Key.Public().(ed25519.PublicKey), log: opts.Log, lock: lock,
		maxBytes: opts.MaxSegmentBytes, maxPending: opts.MaxPendingBytes,
		cur: newBatch(), kick: make(chan struct{}, 1), done: make(chan struct{})}
	if err := w.reconcile(); err != nil {
		lock.Close()
		return nil, fmt.Errorf("open spool %s: %w", dir, err)
	}
	tick := min(opts.MaxSegmentAge/4, time.Second)
	w.wg.Add(1)
	go w.loop(max(tick, time.Millisecond))
	return w, nil
}

func (o *Options) setDefaults() error {
	switch {
	case !ValidHostID(o.HostID):
		return fmt.Errorf("invalid host id %q", o.HostID)
	case !ValidBootID(o.BootID):
		return fmt.Errorf("invalid boot id %q", o.BootID)
	case len(o.Key) != ed25519.PrivateKeySize:
		return errors.New("no Ed25519 signing key")
	case o.MaxSegmentBytes > maxSegmentBytesLimit:
		return fmt.Errorf("MaxSegmentBytes %d exceeds %d", o.MaxSegmentBytes, maxSegmentBytesLimit)
	}
	defaults.Positive(&o.MaxSegmentBytes, DefaultMaxSegmentBytes)
	defaults.Positive(&o.MaxSegmentAge, DefaultMaxSegmentAge)
	defaults.Positive(&o.Quota, DefaultQuota)
	defaults.Positive(&o.MaxPendingBytes, 4*o.MaxSegmentBytes)
	if o.Now == nil {
		o.Now = time.Now
	}
	defaults.Zero(&o.Log, slog.New(slog.DiscardHandler))
	if o.Hostname == "" {
		o.Hostname, _ = os.Hostname()
	}
	if o.Version == "" {
		o.Version = "unknown"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
			o.Version = bi.Main.Version
		}
	}
	return nil
}

// reconcile brings the state in line with the directory after whatever
// happened since the last run, and marks the spool as running (unclean until
// Close).
func (w *Writer) reconcile() error {
	now := w.opts.Now()
	if n, err := removeTemps(w.dir); err != nil {
		return err
	} else if n > 0 {
		w.log.Warn("removed unfinished temporary files", "dir", w.dir, "count", n)
	}
	prev, err := readState(w.dir)
	if err != nil {
		return err
	}
	st := state{Version: 1, HostID: w.opts.HostID, NextSeq: 1}
	if prev != nil {
		if prev.HostID != w.opts.HostID {
			return fmt.Errorf("spool belongs to host %q, not %q (remove it after deregistration)", prev.HostID, w.opts.HostID)
		}
		st = *prev
	}
	infos, err := List(w.dir)
	if err != nil {
		return err
	}
	for _, in := range infos {
		if in.HostID != w.opts.HostID {
			return fmt.Errorf("spool holds segment %s of host %q, not %q", in.Name, in.HostID, w.opts.HostID)
		}
		if in.Seq <= st.EvictedThrough {
			// Recorded as evicted, deletion interrupted.
			if err := os.Remove(in.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			continue
		}
		if in.Seq < st.NextSeq {
			continue
		}
		// Sealed after the state was last written (the writer stopped between
		// the rename and the state update): adopt it, so the chain continues
		// through it. One that does not verify was never reported as sealed
		// and could not be loaded: remove it.
		seg, err := w.verifyFile(in.Path, st.LastDigest)
		bad := err != nil && !errors.Is(err, ErrChainBroken)
		if !bad && seg.Name() != in.Name {
			bad, err = true, fmt.Errorf("its content names %s", seg.Name())
		}
		if bad {
			if seg != nil {
				seg.Release()
			}
			w.log.Warn("removing a segment sealed before a stop that does not verify", "segment", in.Name, "err", err)
			if err := os.Remove(in.Path); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			w.log.Warn("adopting a segment that does not continue the chain of the state file", "segment", in.Name, "err", err)
		}
		st.NextSeq = seg.Manifest.Seq + 1
		st.LastDigest = seg.Digest
		st.LastSeal = seg.Manifest.Created
		seg.Release()
	}
	if err := durable.SyncDir(w.dir); err != nil {
		return err
	}
	w.pending = fromStateGaps(st.Pending)
	w.carried = fromStateGaps(st.Carried)
	if prev != nil {
		g := event.Gap{ToTS: now.UnixNano(), Source: event.SourceCollector}
		if prev.Clean {
			g.FromTS = prev.StoppedAt.UnixNano()
			g.Reason = fmt.Sprintf("clean stop at %s: not recording until restart", fmtTime(prev.StoppedAt))
		} else {
			from := st.LastSeal
			if prev.OpenedAt.After(from) {
				from = prev.OpenedAt
			}
			g.FromTS = from.UnixNano()
			g.Reason = fmt.Sprintf("unclean stop: rows after %s were not sealed", fmtTime(from))
			w.log.Warn("spool was not closed cleanly; recording a gap", "since", from)
		}
		g.FromTS = min(g.FromTS, g.ToTS)
		w.pending = append(w.pending, spoolGap{Gap: g})
	}
	w.pendingSince = now
	st.Clean = false
	st.OpenedAt = now
	st.StoppedAt = time.Time{}
	st.Pending = toStateGaps(w.pending)
	st.Carried = toStateGaps(w.carried)
	w.st = st
	return writeState(w.dir, &w.st)
}

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// AppendProc implements event.Sink.
func (w *Writer) AppendProc(r *event.Proc) {
	est := procRowBytes + int64(len(r.TTY)+len(r.Comm)+len(r.Exe)+len(r.Argv)+len(r.Cwd)+len(r.Cgroup)+len(r.ContainerID))
	appendRow(w, event.ProcTable, func(b *batch) **event.Builder[event.Proc] { return &b.proc }, 0, r, r.TS, r.TS, est)
}

// AppendFile implements event.Sink.
func (w *Writer) AppendFile(r *event.File) {
	est := fileRowBytes + int64(len(r.Path)+len(r.NewPath))
	appendRow(w, event.FileTable, func(b *batch) **event.Builder[event.File] { return &b.file }, 1, r, min(r.TS, r.LastTS), max(r.TS, r.LastTS), est)
}

// AppendSock implements event.Sink.
func (w *Writer) AppendSock(r *event.Sock) {
	est := sockRowBytes + int64(len(r.LocalAddr)+len(r.RemoteAddr))
	lo, hi := r.TS, r.TS
	if r.FirstTS.Valid {
		lo, hi = min(lo, r.FirstTS.V), max(hi, r.FirstTS.V)
	}
	appendRow(w, event.SockTable, func(b *batch) **event.Builder[event.Sock] { return &b.sock }, 2, r, lo, hi, est)
}

// AppendAccount implements event.Sink.
func (w *Writer) AppendAccount(r *event.Account) {
	est := acctRowBytes + int64(len(r.Name))
	appendRow(w, event.AcctTable, func(b *batch) **event.Builder[event.Account] { return &b.acct }, 3, r, r.TS, r.TS, est)
}

var _ event.ExeSink = (*Writer)(nil)

// AppendExecutable implements event.ExeSink.
func (w *Writer) AppendExecutable(r *event.Executable) {
	est := exeRowBytes + int64(len(r.SHA256)+len(r.Path))
	appendRow(w, event.ExeTable, func(b *batch) **event.Builder[event.Executable] { return &b.exe }, 4, r, min(r.TS, r.LastTS), max(r.TS, r.LastTS), est)
}

var _ event.LoginSink = (*Writer)(nil)

// AppendLogin implements event.LoginSink.
func (w *Writer) AppendLogin(r *event.Login) {
	est := loginRowBytes + int64(len(r.TTY)+len(r.UTID)+len(r.User)+len(r.RemoteHost)+len(r.RemoteAddr))
	appendRow(w, event.LoginTable, func(b *batch) **event.Builder[event.Login] { return &b.login }, 6, r, r.TS, r.TS, est)
}

var _ event.ContainerSink = (*Writer)(nil)

// AppendContainer implements event.ContainerSink.
func (w *Writer) AppendContainer(r *event.Container) {
	est := ctrRowBytes + int64(len(r.ID)+len(r.Name)+len(r.Image)+len(r.Pod)+len(r.Namespace)+len(r.Source))
	appendRow(w, event.CtrTable, func(b *batch) **event.Builder[event.Container] { return &b.ctr }, 7, r, r.TS, r.TS, est)
}

// AppendDNS implements event.DNSSink.
func (w *Writer) AppendDNS(r *event.DNS) {
	est := dnsRowBytes + int64(len(r.ClientAddr)+len(r.ServerAddr)+len(r.QName)+len(r.Answers)+len(r.AnswerAddrs))
	appendRow(w, event.DNSTable, func(b *batch) **event.Builder[event.DNS] { return &b.dns }, 5, r, r.TS, r.TS, est)
}

// AppendGap implements event.Sink.
func (w *Writer) AppendGap(r *event.Gap) {
	w.mu.Lock()
	if b := w.cur; b != nil {
		b.gaps = append(b.gaps, *r)
		w.added(b, min(r.FromTS, r.ToTS), max(r.FromTS, r.ToTS), gapRowBytes+int64(len(r.Reason)), int64(len(b.gaps)))
	} else {
		w.lost++
	}
	w.mu.Unlock()
}

// added accounts for a row appended to b (w.mu held) and hands b to the
// sealer once it is full.
func (w *Writer) added(b *batch, lo, hi, est, tableRows int64) {
	if b.rows == 0 {
		b.started = w.opts.Now()
		if w.waking {
			w.waking = false
			select {
			case w.kick <- struct{}{}:
			default:
			}
		}
	}
	b.rows++
	b.est += est
	b.lo = min(b.lo, lo)
	b.hi = max(b.hi, hi)
	w.appended++
	if b.est >= w.maxBytes || tableRows >= DefaultMaxRows {
		w.rotateLocked()
	}
}

// rotateLocked queues the current batch for sealing (w.mu held). If the
// queue then holds more than MaxPendingBytes because sealing keeps failing,
// the oldest queued batches are dropped and the loss recorded as a gap row.
func (w *Writer) rotateLocked() {
	b := w.cur
	if b == nil || b.rows == 0 {
		return
	}
	w.queue = append(w.queue, b)
	w.queued += b.est
	w.sized = b.n
	w.cur = newBatch()
	for w.queued > w.maxPending && len(w.queue) > 1 {
		d := w.queue[0]
		w.queue = w.queue[1:]
		w.queued -= d.est
		n := d.rows - int64(len(d.gaps))
		w.lost += uint64(n)
		cur := w.cur
		// Keep the dropped batch's own gap rows, then say what was lost.
		for _, g := range append(d.gaps, event.Gap{FromTS: d.lo, ToTS: d.hi, Source: event.SourceSpool, Lost: event.Some(n),
			Reason: fmt.Sprintf("sealing failed: %d rows dropped from memory", n)}) {
			cur.gaps = append(cur.gaps, g)
			if cur.rows == 0 {
				cur.started = w.opts.Now()
			}
			cur.rows++
			cur.est += gapRowBytes + int64(len(g.Reason))
			cur.lo, cur.hi = min(cur.lo, g.FromTS), max(cur.hi, g.ToTS)
		}
		d.release()
		w.log.Error("spool memory bound reached while sealing fails; rows dropped", "rows", n, "bound", w.maxPending)
	}
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// loop seals full batches as they come and batches that reach their age.
// It looks again every tick while batches wait for a seal that failed,
// else when the open batch or the pending gap rows reach their age, and
// not at all while there is neither: an idle collector's spool has no
// timer (docs/design.md, "Idle wakeups").
func (w *Writer) loop(tick time.Duration) {
	defer w.wg.Done()
	t := time.NewTimer(tick)
	defer t.Stop()
	tc := t.C
	for {
		select {
		case <-w.done:
			return
		case <-w.kick:
		case <-tc:
			tc = nil
			w.mu.Lock()
			if b := w.cur; b != nil && b.rows > 0 && !w.opts.Now().Before(b.started.Add(w.opts.MaxSegmentAge)) {
				w.rotateLocked()
			}
			w.mu.Unlock()
		}
		w.sealQueued(false) // errors are logged and retried
		if d, ok := w.nextLook(tick); ok {
			t.Reset(d) // Go ≥ 1.23 timers: no stale value after Reset
			tc = t.C
		} else if tc != nil {
			t.Stop()
			tc = nil
		}
	}
}

// nextLook says when the loop must look again without a kick: tick while
// batches are queued (a failed seal is retried), else when the open batch
// or the pending gap rows reach MaxSegmentAge; false when there is neither
// (then the next row kicks the loop).
func (w *Writer) nextLook(tick time.Duration) (time.Duration, bool) {
	w.sealMu.Lock()
	defer w.sealMu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.opts.Now()
	if len(w.queue) > 0 {
		return tick, true
	}
	var at time.Time
	if b := w.cur; b != nil && b.rows > 0 {
		at = b.started.Add(w.opts.MaxSegmentAge)
	}
	if len(w.pending) > 0 {
		if p := w.pendingSince.Add(w.opts.MaxSegmentAge); at.IsZero() || p.Before(at) {
			at = p
		}
	}
	if at.IsZero() {
		w.waking = w.cur != nil
		return 0, false
	}
	if at.Before(w.retryAt) {
		at = w.retryAt // sealing backs off after a failure
	}
	return max(at.Sub(now), time.Millisecond), true
}

// WriterStats are a Writer's counters since Open, for the collector's
// status.
type WriterStats struct {
	Appended    uint64 // rows accepted
	Lost        uint64 // rows dropped (memory bound, no space, after Close)
	NoSpaceLost uint64 // of them, dropped because the file system was full
	Sealed      uint64 // segments sealed
	Evicted     uint64 // segments evicted by the quota before upload
}

// Stats returns the writer's counters.
func (w *Writer) Stats() WriterStats {
	w.mu.Lock()
	st := WriterStats{Appended: w.appended, Lost: w.lost, NoSpaceLost: w.noSpace, Sealed: w.sealedN, Evicted: w.evictedN}
	w.mu.Unlock()
	return st
}

// stats merges the caller's stats with the spool's own counter.
func (w *Writer) stats() (map[string]string, map[string]Counter) {
	modes := map[string]string{}
	counters := map[string]Counter{}
	if w.opts.Stats != nil {
		s := w.opts.Stats()
		for k, v := range s.Modes {
			modes[k] = v
		}
		for k, v := range s.Counters {
			counters[k] = v
		}
	}
	w.mu.Lock()
	counters[event.SourceSpool] = Counter{Seen: w.appended, Lost: w.lost}
	w.mu.Unlock()
	return modes, counters
}

// ReadManifestFile reads the manifest of the segment file at path and its
// digest, as ReadManifest does.
func ReadManifestFile(path string) (*Manifest, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, "", err
	}
	return ReadManifest(f, fi.Size())
}

// Close seals what is left, marks the spool as cleanly stopped and releases
// it. Appends after Close are counted as lost. If the final seal fails the
// spool stays marked unclean, so the next Open records the loss.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.cur == nil {
		w.mu.Unlock()
		return nil
	}
	w.rotateLocked()
	if b := w.cur; b.rows > 0 {
		// The gap rows of batches this rotation dropped: queued without
		// another bound check, which would drop again and leave new gap
		// rows behind in a batch nobody seals.
		w.queue = append(w.queue, b)
		w.queued += b.est
	}
	w.cur = nil
	w.mu.Unlock()
	close(w.done)
	w.wg.Wait()

	w.sealMu.Lock()
	defer w.sealMu.Unlock()
	err := w.sealQueuedLocked(true)
	if err == nil {
		w.st.Clean = true
		w.st.StoppedAt = w.opts.Now()
		w.st.Pending = toStateGaps(w.pending)
		w.st.Carried = toStateGaps(w.carried)
		err = writeState(w.dir, &w.st)
	} else {
		w.mu.Lock()
		for _, b := range w.queue {
			w.lost += uint64(b.rows)
			b.release()
		}
		w.queue = nil
		w.mu.Unlock()
		err = fmt.Errorf("close spool %s: %w", w.dir, err)
	}
	w.lock.Close()
	return err
}

// maxGrowRows bounds the rows a new builder makes room for at once.
const maxGrowRows = 1 << 16

// appendRow adds r to the current batch's builder for table t (created on
// first use via slot), bumping the batch's row count for table i; with no
// current batch the row is counted as lost.
func appendRow[R any](w *Writer, t *event.Table[R], slot func(*batch) **event.Builder[R], i int, r *R, lo, hi, est int64) {
	w.mu.Lock()
	if b := w.cur; b != nil {
		bp := slot(b)
		if *bp == nil {
			*bp = t.NewBuilder(nil)
			(*bp).Grow(int(min(w.sized[i], maxGrowRows)))
		}
		(*bp).Append(r)
		b.n[i]++
		w.added(b, lo, hi, est, b.n[i])
	} else {
		w.lost++
	}
	w.mu.Unlock()
}
