package spool

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/pofr/pofr/internal/event"
)

// encoded is a segment ready to be written: the manifest bytes, their
// signature and the Arrow members, in member order.
type encoded struct {
	m        *Manifest
	manifest []byte
	sig      []byte
	members  [][]byte
	digest   string
}

// encodeSegment encodes the tables of recs that have rows (in event.Tables
// order) with enc, completes m's member list, and signs the manifest with
// key. The members' bytes are enc's: valid until its next segment.
func encodeSegment(m *Manifest, recs map[string]arrow.RecordBatch, key ed25519.PrivateKey, enc *memberEncoder) (*encoded, error) {
	e := &encoded{m: m}
	enc.reset()
	m.Members = m.Members[:0]
	for _, table := range event.Tables {
		rec := recs[table]
		if rec == nil || rec.NumRows() == 0 {
			continue
		}
		data, err := enc.encode(event.SchemaOf(table), rec)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", table, err)
		}
		sum := sha256.Sum256(data)
		m.Members = append(m.Members, Member{Name: MemberName(table), Table: table, Rows: rec.NumRows(),
			Bytes: int64(len(data)), SHA256: hex.EncodeToString(sum[:])})
		e.members = append(e.members, data)
	}
	if len(e.members) == 0 {
		return nil, fmt.Errorf("encode segment %d: no rows", m.Seq)
	}
	var err error
	if e.manifest, err = encodeManifest(m); err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	if len(e.manifest) > MaxManifestSize {
		return nil, fmt.Errorf("encode manifest: %d bytes, limit %d", len(e.manifest), MaxManifestSize)
	}
	e.sig = ed25519.Sign(key, e.manifest)
	e.digest = Digest(e.manifest)
	return e, nil
}

// size returns the size of the segment file.
func (e *encoded) size() int64 {
	sizes := []int64{int64(len(e.manifest)), int64(len(e.sig))}
	for _, d := range e.members {
		sizes = append(sizes, int64(len(d)))
	}
	return tarSize(sizes...)
}

// writeTo writes the segment file.
func (e *encoded) writeTo(w io.Writer) error {
	t := &tarWriter{w: w, mtime: e.m.Created.Unix()}
	if err := t.member(ManifestName, e.manifest); err != nil {
		return err
	}
	if err := t.member(SigName, e.sig); err != nil {
		return err
	}
	for i, d := range e.members {
		if err := t.member(e.m.Members[i].Name, d); err != nil {
			return err
		}
	}
	return t.close()
}
