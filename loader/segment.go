package loader

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/pofr/pofr/spool"
)

// segment is a verified segment as the loader uses it.
type segment struct {
	manifest *spool.Manifest
	digest   string                                        // hex SHA-256 of the manifest
	record   func(table string) (arrow.RecordBatch, error) // the table's rows
	release  func()
}

// openBudgeted reads and verifies the segment file at path: the format, the
// signature by pub, the host id, the size limits and the column limits
// (spool.Verify), within the loader's memory budget: it waits for room for
// the file, then for its decoded size, and the segment's release gives it
// back. The chain is checked by the loader against the ledger, not here.
func (l *Loader) openBudgeted(ctx context.Context, path string, size int64, pub ed25519.PublicKey, hostID string) (*segment, error) {
	lease, err := l.mem.takeFile(ctx, size)
	if err != nil {
		return nil, err
	}
	defer lease.releaseFile()
	f, err := os.Open(path)
	if err != nil {
		lease.release()
		return nil, fmt.Errorf("open segment: %w", err)
	}
	defer f.Close()
	s, err := spool.Verify(f, size, spool.VerifyOptions{PublicKey: pub, HostID: hostID, MaxSize: l.opt.MaxSegmentBytes,
		MaxDecoded: min(spool.DefaultMaxDecoded, l.mem.maxDecoded), MaxValueBytes: maxValueBytes,
		Admit: func(decoded int64) error { return lease.takeDecoded(ctx, decoded) }})
	if err != nil {
		lease.release()
		return nil, fmt.Errorf("verify %s: %w", path, err)
	}
	return &segment{manifest: &s.Manifest, digest: s.Digest, record: s.Record, release: func() {
		s.Release()
		lease.release()
	}}, nil
}

// openSegment reads and verifies the segment file at path: the format, the
// signature by pub, the host id and the size limits (spool.VerifyFile). The
// chain is checked by the loader against the ledger, not here.
func openSegment(path string, pub ed25519.PublicKey, hostID string, maxSize int64) (*segment, error) {
	s, err := spool.VerifyFile(path, spool.VerifyOptions{PublicKey: pub, HostID: hostID, MaxSize: maxSize})
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", path, err)
	}
	return &segment{manifest: &s.Manifest, digest: s.Digest, record: s.Record, release: s.Release}, nil
}
