package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/pofr/pofr/internal/durable"
	"github.com/pofr/pofr/internal/event"
)

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
	var err error
	if w.enc == nil {
		if w.enc, err = newMemberEncoder(); err != nil {
			return fmt.Errorf("seal segment %d: %w", m.Seq, err)
		}
	}
	enc, err := encodeSegment(m, recs, w.opts.Key, w.enc)
	if err != nil {
		return fmt.Errorf("seal segment %d: %w", m.Seq, err)
	}
	name := m.Name(enc.digest)
	if err := writeDurable(w.dir, name, enc.size(), enc.writeTo); err != nil {
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

// verifyFile re-reads a segment from disk as a stranger would.
func (w *Writer) verifyFile(path, prev string) (*Segment, error) {
	return VerifyFile(path, VerifyOptions{PublicKey: w.pub, HostID: w.opts.HostID, PrevDigest: &prev})
}
