package spool

import (
	"cmp"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

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

	sealMu       sync.Mutex // serialises sealing; guards the fields below
	st           state
	pending      []spoolGap // gap rows for the next segment (evictions, stops)
	pendingSince time.Time
	carried      []spoolGap // pending rows sealed but not yet uploaded (state.Carried)
	failures     int
	retryAt      time.Time

	kick chan struct{}
	done chan struct{}
	wg   sync.WaitGroup
}

var (
	_ event.Sink    = (*Writer)(nil)
	_ event.DNSSink = (*Writer)(nil)
)

// Estimated in-memory bytes of a row without its variable-length fields.
const (
	procRowBytes = 144
	fileRowBytes = 72
	sockRowBytes = 112
	gapRowBytes  = 48
	acctRowBytes = 24
	exeRowBytes  = 120
	dnsRowBytes  = 96
)

// batch is the rows of one future segment.
type batch struct {
	proc    *event.Builder[event.Proc]
	file    *event.Builder[event.File]
	sock    *event.Builder[event.Sock]
	acct    *event.Builder[event.Account]
	exe     *event.Builder[event.Executable]
	dns     *event.Builder[event.DNS]
	gaps    []event.Gap
	n       [6]int64 // rows of proc, file, sock, acct, exe, dns
	rows    int64    // all rows, gaps included
	est     int64    // estimated bytes
	lo, hi  int64    // time range of the rows
	started time.Time
	recs    map[string]arrow.RecordBatch // built by finish
}

func newBatch() *batch { return &batch{lo: math.MaxInt64, hi: math.MinInt64} }

// finish turns the builders into record batches (once).
func (b *batch) finish() {
	if b.recs != nil {
		return
	}
	b.recs = map[string]arrow.RecordBatch{}
	if b.proc != nil {
		b.recs[event.TableProc] = b.proc.NewRecord()
		b.proc.Release()
		b.proc = nil
	}
	if b.file != nil {
		b.recs[event.TableFile] = b.file.NewRecord()
		b.file.Release()
		b.file = nil
	}
	if b.sock != nil {
		b.recs[event.TableSock] = b.sock.NewRecord()
		b.sock.Release()
		b.sock = nil
	}
	if b.acct != nil {
		b.recs[event.TableAcct] = b.acct.NewRecord()
		b.acct.Release()
		b.acct = nil
	}
	if b.exe != nil {
		b.recs[event.TableExe] = b.exe.NewRecord()
		b.exe.Release()
		b.exe = nil
	}
	if b.dns != nil {
		b.recs[event.TableDNS] = b.dns.NewRecord()
		b.dns.Release()
		b.dns = nil
	}
}

func (b *batch) release() {
	b.finish()
	for k, r := range b.recs {
		r.Release()
		delete(b.recs, k)
	}
}

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
	if o.MaxSegmentBytes <= 0 {
		o.MaxSegmentBytes = DefaultMaxSegmentBytes
	}
	if o.MaxSegmentAge <= 0 {
		o.MaxSegmentAge = DefaultMaxSegmentAge
	}
	if o.Quota <= 0 {
		o.Quota = DefaultQuota
	}
	if o.MaxPendingBytes <= 0 {
		o.MaxPendingBytes = 4 * o.MaxSegmentBytes
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
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
	w.mu.Lock()
	if b := w.cur; b != nil {
		if b.proc == nil {
			b.proc = event.ProcTable.NewBuilder(nil)
		}
		b.proc.Append(r)
		b.n[0]++
		w.added(b, r.TS, r.TS, est, b.n[0])
	} else {
		w.lost++
	}
	w.mu.Unlock()
}

// AppendFile implements event.Sink.
func (w *Writer) AppendFile(r *event.File) {
	est := fileRowBytes + int64(len(r.Path)+len(r.NewPath))
	w.mu.Lock()
	if b := w.cur; b != nil {
		if b.file == nil {
			b.file = event.FileTable.NewBuilder(nil)
		}
		b.file.Append(r)
		b.n[1]++
		w.added(b, min(r.TS, r.LastTS), max(r.TS, r.LastTS), est, b.n[1])
	} else {
		w.lost++
	}
	w.mu.Unlock()
}

// AppendSock implements event.Sink.
func (w *Writer) AppendSock(r *event.Sock) {
	est := sockRowBytes + int64(len(r.LocalAddr)+len(r.RemoteAddr))
	lo, hi := r.TS, r.TS
	if r.FirstTS.Valid {
		lo, hi = min(lo, r.FirstTS.V), max(hi, r.FirstTS.V)
	}
	w.mu.Lock()
	if b := w.cur; b != nil {
		if b.sock == nil {
			b.sock = event.SockTable.NewBuilder(nil)
		}
		b.sock.Append(r)
		b.n[2]++
		w.added(b, lo, hi, est, b.n[2])
	} else {
		w.lost++
	}
	w.mu.Unlock()
}

// AppendAccount implements event.Sink.
func (w *Writer) AppendAccount(r *event.Account) {
	est := acctRowBytes + int64(len(r.Name))
	w.mu.Lock()
	if b := w.cur; b != nil {
		if b.acct == nil {
			b.acct = event.AcctTable.NewBuilder(nil)
		}
		b.acct.Append(r)
		b.n[3]++
		w.added(b, r.TS, r.TS, est, b.n[3])
	} else {
		w.lost++
	}
	w.mu.Unlock()
}

var _ event.ExeSink = (*Writer)(nil)

// AppendExecutable implements event.ExeSink.
func (w *Writer) AppendExecutable(r *event.Executable) {
	est := exeRowBytes + int64(len(r.SHA256)+len(r.Path))
	w.mu.Lock()
	if b := w.cur; b != nil {
		if b.exe == nil {
			b.exe = event.ExeTable.NewBuilder(nil)
		}
		b.exe.Append(r)
		b.n[4]++
		w.added(b, min(r.TS, r.LastTS), max(r.TS, r.LastTS), est, b.n[4])
	} else {
		w.lost++
	}
	w.mu.Unlock()
}

// AppendDNS implements event.DNSSink.
func (w *Writer) AppendDNS(r *event.DNS) {
	est := dnsRowBytes + int64(len(r.ClientAddr)+len(r.ServerAddr)+len(r.QName)+len(r.Answers)+len(r.AnswerAddrs))
	w.mu.Lock()
	if b := w.cur; b != nil {
		if b.dns == nil {
			b.dns = event.DNSTable.NewBuilder(nil)
		}
		b.dns.Append(r)
		b.n[5]++
		w.added(b, r.TS, r.TS, est, b.n[5])
	} else {
		w.lost++
	}
	w.mu.Unlock()
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
func (w *Writer) loop(tick time.Duration) {
	defer w.wg.Done()
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-w.done:
			return
		case <-w.kick:
		case <-t.C:
			w.mu.Lock()
			if b := w.cur; b != nil && b.rows > 0 && w.opts.Now().Sub(b.started) >= w.opts.MaxSegmentAge {
				w.rotateLocked()
			}
			w.mu.Unlock()
		}
		w.sealQueued(false) // errors are logged and retried
	}
}

// Seal seals the rows appended so far now, together with any gap rows still
// to be recorded; with nothing to seal it does nothing. After an error the
// rows stay queued and the next seal retries them.
func (w *Writer) Seal() error {
	w.sealMu.Lock()
	defer w.sealMu.Unlock()
	w.mu.Lock()
	if w.cur == nil {
		w.mu.Unlock()
		return fmt.Errorf("seal spool %s: writer is closed", w.dir)
	}
	w.rotateLocked()
	w.mu.Unlock()
	return w.sealQueuedLocked(true)
}

func (w *Writer) sealQueued(force bool) error {
	w.sealMu.Lock()
	defer w.sealMu.Unlock()
	return w.sealQueuedLocked(force)
}

// sealQueuedLocked seals the queued batches, oldest first (w.sealMu held).
// Pending gap rows go into the first of them; if there is none, they are
// sealed on their own when forced or once they are MaxSegmentAge old. Gap
// rows that this call's own seals produce (evictions) wait for the next
// segment. Unless forced it does nothing while a retry back-off runs.
func (w *Writer) sealQueuedLocked(force bool) error {
	now := w.opts.Now()
	if !force && now.Before(w.retryAt) {
		return nil
	}
	sealed := false
	for {
		w.mu.Lock()
		var b *batch
		if len(w.queue) > 0 {
			b = w.queue[0]
			w.queue = w.queue[1:]
			w.queued -= b.est
		}
		w.mu.Unlock()
		if b == nil {
			if sealed || len(w.pending) == 0 || (!force && now.Sub(w.pendingSince) < w.opts.MaxSegmentAge) {
				return nil
			}
			b = newBatch()
		}
		fit, retry, err := w.sealFitting(b, 0)
		if err != nil {
			w.mu.Lock()
			for i := len(retry) - 1; i >= 0; i-- {
				if r := retry[i]; r.rows > 0 {
					w.queue = append([]*batch{r}, w.queue...)
					w.queued += r.est
				}
			}
			w.mu.Unlock()
			w.failures++
			backoff := min(time.Second<<min(w.failures-1, 16), w.opts.MaxSegmentAge)
			w.retryAt = now.Add(backoff)
			w.log.Error("seal failed; rows kept in memory", "err", err, "retry_in", backoff, "failures", w.failures)
			return err
		}
		sealed = sealed || fit
		w.failures = 0
		w.retryAt = time.Time{}
	}
}

// maxSplitDepth bounds how often sealFitting halves a batch: pieces of
// 1/256 of it that still do not fit are dropped.
const maxSplitDepth = 8

// noSpace reports a seal error that retrying cannot cure soon: the file
// system (or the user's disk quota) has no room for the segment.
func noSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EFBIG)
}

// sealFitting seals b (and releases it). When the file system has no room
// for it, it seals what fits, halving the batch, and drops what does not
// fit with a gap row, so that one batch larger than the free space cannot
// block every newer one. It reports whether anything was sealed; after any
// other error it returns the batches (b or what is left of it) to retry.
func (w *Writer) sealFitting(b *batch, depth int) (fit bool, retry []*batch, err error) {
	err = w.sealBatch(b)
	switch {
	case err == nil:
		b.release()
		return true, nil, nil
	case !noSpace(err) || b.rows == 0:
		return false, []*batch{b}, err
	case depth >= maxSplitDepth || b.rows < 2:
		w.dropNoSpace(b, err)
		return false, nil, nil
	}
	x, y := b.split()
	b.release()
	fit, retry, err = w.sealFitting(x, depth+1)
	if err != nil {
		return fit, append(retry, y), err
	}
	if !fit {
		// Not even half fitted: the other half will not either.
		w.dropNoSpace(y, syscall.ENOSPC)
		return false, nil, nil
	}
	_, retry, err = w.sealFitting(y, depth+1)
	return true, retry, err
}

// dropNoSpace gives up b's rows for lack of space: they are counted as lost
// and described by a gap row for the next segment; b's own gap rows go
// there too.
func (w *Writer) dropNoSpace(b *batch, cause error) {
	n := b.rows - int64(len(b.gaps))
	for _, g := range b.gaps {
		w.pending = append(w.pending, spoolGap{Gap: g})
	}
	if n > 0 {
		w.pending = append(w.pending, spoolGap{Gap: event.Gap{FromTS: b.lo, ToTS: b.hi, Source: event.SourceSpool, Lost: event.Some(n),
			Reason: fmt.Sprintf("no space left for the spool: %d rows dropped", n)}})
	}
	w.pendingSince = w.opts.Now()
	w.mu.Lock()
	w.lost += uint64(n)
	w.noSpace += uint64(n)
	w.mu.Unlock()
	b.release()
	w.log.Error("no space for a segment; rows dropped", "rows", n, "err", cause)
}

// splitRecord rebuilds rec's rows before h and from h as two records. A
// slice would not do: it keeps the whole dictionaries, so neither half
// would be smaller on disk.
func splitRecord[R any](t *event.Table[R], rec arrow.RecordBatch, h int64) (arrow.RecordBatch, arrow.RecordBatch) {
	bx, by := t.NewBuilder(nil), t.NewBuilder(nil)
	defer bx.Release()
	defer by.Release()
	for i := range rec.NumRows() {
		var r R
		t.Row(rec, int(i), &r)
		if i < h {
			bx.Append(&r)
		} else {
			by.Append(&r)
		}
	}
	return bx.NewRecord(), by.NewRecord()
}

// split divides a finished batch into two of about half its rows each,
// every table and the gap rows halved, with exact time ranges.
func (b *batch) split() (*batch, *batch) {
	b.finish()
	x, y := newBatch(), newBatch()
	x.recs, y.recs = map[string]arrow.RecordBatch{}, map[string]arrow.RecordBatch{}
	for table, rec := range b.recs {
		n := rec.NumRows()
		h := (n + 1) / 2
		var rx, ry arrow.RecordBatch
		switch table {
		case event.TableProc:
			rx, ry = splitRecord(event.ProcTable, rec, h)
		case event.TableFile:
			rx, ry = splitRecord(event.FileTable, rec, h)
		case event.TableSock:
			rx, ry = splitRecord(event.SockTable, rec, h)
		case event.TableAcct:
			rx, ry = splitRecord(event.AcctTable, rec, h)
		case event.TableExe:
			rx, ry = splitRecord(event.ExeTable, rec, h)
		case event.TableDNS:
			rx, ry = splitRecord(event.DNSTable, rec, h)
		default:
			panic("spool: split of unknown table " + table)
		}
		x.recs[table], x.rows = rx, x.rows+rx.NumRows()
		if ry.NumRows() > 0 {
			y.recs[table], y.rows = ry, y.rows+ry.NumRows()
		} else {
			ry.Release()
		}
	}
	h := (len(b.gaps) + 1) / 2
	x.gaps, y.gaps = slices.Clone(b.gaps[:h]), slices.Clone(b.gaps[h:])
	for _, p := range []*batch{x, y} {
		p.rows += int64(len(p.gaps))
		p.started = b.started
		if b.rows > 0 {
			p.est = b.est * p.rows / b.rows
		}
		for _, rec := range p.recs {
			tsRange(rec, &p.lo, &p.hi)
		}
		for _, g := range p.gaps {
			p.lo, p.hi = min(p.lo, g.FromTS, g.ToTS), max(p.hi, g.FromTS, g.ToTS)
		}
	}
	return x, y
}

// sealBatch writes b and the pending gap rows as the next segment (w.sealMu
// held), verifies it from disk, advances the chain, and enforces the quota.
func (w *Writer) sealBatch(b *batch) error {
	b.finish()
	gaps := slices.Clip(b.gaps)
	for _, g := range w.pending {
		gaps = append(gaps, g.Gap)
	}
	recs := make(map[string]arrow.RecordBatch, len(b.recs)+1)
	for k, v := range b.recs {
		recs[k] = v
	}
	lo, hi := b.lo, b.hi
	if len(gaps) > 0 {
		gb := event.GapTable.NewBuilder(nil)
		for i := range gaps {
			gb.Append(&gaps[i])
			lo, hi = min(lo, gaps[i].FromTS, gaps[i].ToTS), max(hi, gaps[i].FromTS, gaps[i].ToTS)
		}
		rec := gb.NewRecord()
		gb.Release()
		defer rec.Release()
		recs[event.TableGap] = rec
	}
	now := w.opts.Now()
	_, tz := now.Zone()
	m := &Manifest{
		Format: FormatName, Version: Version, HostID: w.opts.HostID, BootID: w.opts.BootID,
		Seq: w.st.NextSeq, PrevDigest: w.st.LastDigest, Created: now.UTC(), MinTS: lo, MaxTS: hi,
		TZOffset: tz, Hostname: w.opts.Hostname, CollectorVersion: w.opts.Version,
	}
	m.Modes, m.Counters = w.stats()
	enc, err := encodeSegment(m, recs, w.opts.Key)
	if err != nil {
		return fmt.Errorf("seal segment %d: %w", m.Seq, err)
	}
	name := m.Name(enc.digest)
	if err := writeDurable(w.dir, name, enc.writeTo); err != nil {
		return fmt.Errorf("seal segment %s: %w", name, err)
	}
	seg, err := w.verifyFile(filepath.Join(w.dir, name), m.PrevDigest)
	if err == nil && seg.Digest != enc.digest {
		err = fmt.Errorf("digest %s on disk, %s written", seg.Digest, enc.digest)
	}
	if err != nil {
		os.Remove(filepath.Join(w.dir, name))
		durable.SyncDir(w.dir)
		return fmt.Errorf("seal segment %s: verify: %w", name, err)
	}
	seg.Release()

	w.mu.Lock()
	w.sealedN++
	w.mu.Unlock()
	w.st.NextSeq++
	w.st.LastDigest = enc.digest
	w.st.LastSeal = now
	for _, g := range w.pending {
		g.in = m.Seq
		w.carried = append(w.carried, g)
	}
	w.pending = nil
	w.log.Debug("segment sealed", "segment", name, "rows", m.Rows(), "bytes", enc.size())
	w.enforceQuota(name, now)
	if w.opts.Sealed != nil {
		w.opts.Sealed(name)
	}
	return nil
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

// verifyFile re-reads a segment from disk as a stranger would.
func (w *Writer) verifyFile(path, prev string) (*Segment, error) {
	return VerifyFile(path, VerifyOptions{PublicKey: w.pub, HostID: w.opts.HostID, PrevDigest: &prev})
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

// enforceQuota evicts the oldest sealed segments while the spool exceeds the
// quota, never the one just sealed. The eviction is recorded in the state
// (as a gap row for the next segment) before any file is deleted, so a crash
// cannot lose it; the state is written in any case, as the seal advanced it.
//
// It also settles the carried gap rows: a row whose segment left the spool
// otherwise (uploaded) is done; a row whose segment is evicted now goes back
// to the pending rows, merged with adjacent evictions, so that the next
// segment records it again.
func (w *Writer) enforceQuota(sealed string, now time.Time) {
	infos, err := List(w.dir)
	listed := err == nil
	if err != nil {
		w.log.Error("quota: list spool", "err", err)
		infos = nil
	}
	var total int64
	for _, in := range infos {
		total += in.Size
	}
	var evict []Info
	for len(infos) > 1 && total > w.opts.Quota && infos[0].Name != sealed {
		evict = append(evict, infos[0])
		total -= infos[0].Size
		infos = infos[1:]
	}
	prevEvicted, prevPending, prevCarried := w.st.EvictedThrough, w.pending, w.carried
	present := make(map[uint64]bool, len(infos)+len(evict))
	for _, in := range infos {
		present[in.Seq] = true
	}
	evicted := make(map[uint64]bool, len(evict))
	for _, in := range evict {
		present[in.Seq], evicted[in.Seq] = true, true
	}
	var carried, again []spoolGap
	for _, g := range w.carried {
		switch {
		case evicted[g.in]:
			g.in = 0
			again = append(again, g)
		case present[g.in] || !listed:
			carried = append(carried, g)
		}
		// Neither: uploaded, and the row with it.
	}
	if len(w.pending)+len(again)+len(carried) > maxCarriedGaps {
		// A long outage: rather than carry ever more rows, take every
		// carried eviction into one row per contiguous range. A segment
		// still in the spool may then hold an older row naming part of it;
		// if that one is uploaded too, the rows overlap.
		kept := carried[:0]
		for _, g := range carried {
			if g.first != 0 {
				g.in = 0
				again = append(again, g)
			} else {
				kept = append(kept, g)
			}
		}
		carried = kept
	}
	if len(evict) > 0 || len(again) > 0 {
		pending := slices.Concat(w.pending, again)
		if len(evict) > 0 {
			pending = append(pending, w.evictionGap(evict, now))
		}
		w.pending = mergeEvictions(pending)
		w.pendingSince = now
	}
	w.carried = carried
	if len(evict) > 0 {
		w.st.EvictedThrough = evict[len(evict)-1].Seq
	}
	w.st.Pending = toStateGaps(w.pending)
	w.st.Carried = toStateGaps(w.carried)
	if err := writeState(w.dir, &w.st); err != nil {
		w.log.Error("spool state not saved; eviction postponed", "err", err)
		w.pending, w.carried, w.st.EvictedThrough = prevPending, prevCarried, prevEvicted
		return
	}
	if len(again) > 0 {
		w.log.Warn("gap rows evicted before upload; recording them again", "rows", len(again))
	}
	for _, in := range evict {
		if err := os.Remove(in.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			w.log.Error("quota: remove segment", "segment", in.Name, "err", err)
		}
	}
	if len(evict) > 0 {
		w.mu.Lock()
		w.evictedN += uint64(len(evict))
		w.mu.Unlock()
		durable.SyncDir(w.dir)
		w.log.Warn("spool quota exceeded: oldest unsent segments evicted",
			"first_seq", evict[0].Seq, "last_seq", evict[len(evict)-1].Seq, "quota", w.opts.Quota)
	}
}

// evictionGap describes evicted segments as one gap row: their time range
// and row count as their manifests state (lost is null if one is unreadable).
func (w *Writer) evictionGap(evict []Info, now time.Time) spoolGap {
	var bytes, rows int64
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	known := true
	for _, in := range evict {
		bytes += in.Size
		m, _, err := ReadManifestFile(in.Path)
		if err != nil {
			known = false
			continue
		}
		rows += m.Rows()
		lo, hi = min(lo, m.MinTS), max(hi, m.MaxTS)
	}
	if lo > hi {
		lo, hi = now.UnixNano(), now.UnixNano()
	}
	g := event.Gap{FromTS: lo, ToTS: hi, Source: event.SourceSpool}
	if known {
		g.Lost = event.Some(rows)
	}
	first, last := evict[0].Seq, evict[len(evict)-1].Seq
	g.Reason = evictionReason(first, last, bytes)
	return spoolGap{Gap: g, first: first, last: last, bytes: bytes}
}

// maxCarriedGaps bounds the gap rows pending and carried before carried
// evictions are merged (enforceQuota).
const maxCarriedGaps = 32

func evictionReason(first, last uint64, bytes int64) string {
	if first == last {
		return fmt.Sprintf("quota eviction of segment %d (%d bytes)", first, bytes)
	}
	return fmt.Sprintf("quota eviction of segments %d-%d (%d bytes)", first, last, bytes)
}

// mergeEvictions merges eviction rows of adjacent seq ranges into one, so
// that rows recorded again and again during a long outage stay few. Other
// rows keep their order, before the evictions (ordered by seq).
func mergeEvictions(gs []spoolGap) []spoolGap {
	var out, ev []spoolGap
	for _, g := range gs {
		if g.first == 0 {
			out = append(out, g)
		} else {
			ev = append(ev, g)
		}
	}
	slices.SortStableFunc(ev, func(a, b spoolGap) int { return cmp.Compare(a.first, b.first) })
	for _, g := range ev {
		if n := len(out); n > 0 && out[n-1].first != 0 && out[n-1].last+1 == g.first {
			p := &out[n-1]
			p.last = g.last
			p.bytes += g.bytes
			p.FromTS, p.ToTS = min(p.FromTS, g.FromTS), max(p.ToTS, g.ToTS)
			if p.Lost.Valid && g.Lost.Valid {
				p.Lost = event.Some(p.Lost.V + g.Lost.V)
			} else {
				p.Lost = event.Opt[int64]{}
			}
			p.Reason = evictionReason(p.first, p.last, p.bytes)
			continue
		}
		out = append(out, g)
	}
	return out
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
