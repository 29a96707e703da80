package loader

import (
	"crypto/ed25519"
	"fmt"

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
