package loader

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/sync/semaphore"
)

// DefaultMaxMemory is the default of Options.MaxMemory.
const DefaultMaxMemory = 256 << 20

// budget bounds the memory of the segments a loader holds at once, whatever
// they say. Options.MaxMemory is split in three:
//
//   - a quarter for segment files being read and verified (a file is read
//     whole): also the largest segment file accepted;
//   - a half for the decompressed Arrow buffers of the segments verified
//     and not yet loaded: also the largest decoded size of one segment;
//   - a quarter for everything else: the runtime, and per worker its LOAD
//     DATA buffer (about 256 KiB, long values are escaped in pieces), its
//     rendered dictionaries (at most 256 KiB each) and the driver's buffers.
//
// A verifier takes file bytes before it reads a file and decoded bytes
// once the framing says how much the file decompresses to, before anything
// is decompressed (spool.VerifyOptions.Admit). Loaded segments give their
// decoded bytes back. The two pools are separate so that a verifier
// waiting for decoded bytes while it holds file bytes only ever waits for
// segments that load without taking anything: no deadlock.
type budget struct {
	files, decoded      *semaphore.Weighted
	maxFile, maxDecoded int64
}

func newBudget(maxMemory int64) *budget {
	b := &budget{maxFile: maxMemory / 4, maxDecoded: maxMemory / 2}
	b.files = semaphore.NewWeighted(b.maxFile)
	b.decoded = semaphore.NewWeighted(b.maxDecoded)
	return b
}

// lease is what one segment holds of a budget.
type lease struct {
	b             *budget
	mu            sync.Mutex
	file, decoded int64
}

// takeFile waits for n file bytes.
func (b *budget) takeFile(ctx context.Context, n int64) (*lease, error) {
	if n > b.maxFile {
		return nil, fmt.Errorf("file of %d bytes exceeds the memory budget for files (%d)", n, b.maxFile)
	}
	if err := b.files.Acquire(ctx, n); err != nil {
		return nil, fmt.Errorf("wait for memory: %w", err)
	}
	return &lease{b: b, file: n}, nil
}

// takeDecoded waits for n decoded bytes (once per lease).
func (l *lease) takeDecoded(ctx context.Context, n int64) error {
	if err := l.b.decoded.Acquire(ctx, n); err != nil {
		return fmt.Errorf("wait for memory: %w", err)
	}
	l.mu.Lock()
	l.decoded += n
	l.mu.Unlock()
	return nil
}

// releaseFile gives the file bytes back (the file's buffer is garbage once
// the segment is verified).
func (l *lease) releaseFile() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file > 0 {
		l.b.files.Release(l.file)
		l.file = 0
	}
}

// release gives everything back; it may be called more than once.
func (l *lease) release() {
	l.releaseFile()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.decoded > 0 {
		l.b.decoded.Release(l.decoded)
		l.decoded = 0
	}
}
