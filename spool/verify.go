package spool

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pofr/pofr/internal/defaults"
	"github.com/pofr/pofr/internal/event"
)

// VerifyOptions says what Verify checks beyond the format itself, and bounds
// what it may read. The zero value checks the format with default limits and
// no signature.
type VerifyOptions struct {
	// PublicKey checks manifest.sig. Nil skips the check (Segment.Signed is
	// then false); anything that trusts a segment must set it.
	PublicKey ed25519.PublicKey
	// HostID, if set, must equal the manifest's host_id (else ErrWrongHost).
	HostID string
	// PrevDigest, if set, must equal the manifest's prev_digest ("" for the
	// first segment of a host). On mismatch Verify returns the Segment with an
	// error wrapping ErrChainBroken, so the caller can record it.
	PrevDigest *string
	// MaxSize bounds the whole file (default DefaultMaxSize).
	MaxSize int64
	// MaxMemberSize bounds one Arrow member (default MaxSize).
	MaxMemberSize int64
	// MaxRows bounds the rows of one member (default DefaultMaxRows).
	MaxRows int64
	// MaxDecoded bounds the decompressed size of all Arrow buffers of the
	// segment (default DefaultMaxDecoded).
	MaxDecoded int64
	// MaxValueBytes, if set, returns the longest value (in bytes) that the
	// caller accepts in a binary or string column of a table, or 0 for no
	// limit. Verify refuses with ErrTooLong, before decompressing it, any
	// buffer of values that is longer than its rows times that limit: so a
	// value the caller could not store is never expanded in memory. (The
	// exact per-value check is the caller's, on the decoded offsets.)
	MaxValueBytes func(table, column string) int64
	// Admit, if set, is called once every member's framing has been checked
	// and before anything is decompressed, with the decompressed size of all
	// Arrow buffers of the segment. An error stops Verify and is returned as
	// is: a caller bounding its memory waits here for room, or refuses.
	Admit func(decoded int64) error
}

type limits struct {
	size, member, rows, decoded int64
	value                       func(table, column string) int64
}

func (o *VerifyOptions) limits() *limits {
	l := &limits{size: o.MaxSize, member: o.MaxMemberSize, rows: o.MaxRows, decoded: o.MaxDecoded, value: o.MaxValueBytes}
	defaults.Positive(&l.size, DefaultMaxSize)
	if l.member <= 0 || l.member > l.size {
		l.member = l.size
	}
	defaults.Positive(&l.rows, DefaultMaxRows)
	defaults.Positive(&l.decoded, DefaultMaxDecoded)
	return l
}

// Segment is a verified segment held in memory. Its record batches belong to
// it: use them until Release, and Retain one to keep it longer.
type Segment struct {
	// Manifest is the parsed manifest.
	Manifest Manifest
	// Digest is the hex SHA-256 of the manifest bytes: the segment's identity
	// and the next segment's prev_digest.
	Digest string
	// Signed reports whether the signature was checked against a key.
	Signed bool
	// Size is the length of the segment in bytes.
	Size int64

	manifest []byte
	recs     map[string]arrow.RecordBatch
	empty    sync.Map // table → empty arrow.RecordBatch, for tables without a member
}

// Name returns the segment's canonical file name.
func (s *Segment) Name() string { return s.Manifest.Name(s.Digest) }

// ManifestBytes returns the exact manifest bytes that were hashed and signed.
func (s *Segment) ManifestBytes() []byte { return s.manifest }

// Record returns the table's rows as one Arrow record batch with the table's
// schema (a batch of zero rows if the segment has no member for it). The batch
// is valid until Release. It returns an error only for an unknown table.
func (s *Segment) Record(table string) (arrow.RecordBatch, error) {
	if rec, ok := s.recs[table]; ok {
		return rec, nil
	}
	schema := event.SchemaOf(table)
	if schema == nil {
		return nil, fmt.Errorf("segment %s: no table %q", s.Name(), table)
	}
	if rec, ok := s.empty.Load(table); ok {
		return rec.(arrow.RecordBatch), nil
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	rec := b.NewRecordBatch()
	if prev, loaded := s.empty.LoadOrStore(table, rec); loaded {
		rec.Release()
		return prev.(arrow.RecordBatch), nil
	}
	return rec, nil
}

// Procs decodes the proc table.
func (s *Segment) Procs() ([]event.Proc, error) { return decodeRows(s, event.ProcTable) }

// Files decodes the file table.
func (s *Segment) Files() ([]event.File, error) { return decodeRows(s, event.FileTable) }

// Socks decodes the sock table.
func (s *Segment) Socks() ([]event.Sock, error) { return decodeRows(s, event.SockTable) }

// Gaps decodes the gap table.
func (s *Segment) Gaps() ([]event.Gap, error) { return decodeRows(s, event.GapTable) }

// Accounts decodes the acct table.
func (s *Segment) Accounts() ([]event.Account, error) { return decodeRows(s, event.AcctTable) }

// Logins decodes the login table.
func (s *Segment) Logins() ([]event.Login, error) { return decodeRows(s, event.LoginTable) }

// Containers decodes the ctr table.
func (s *Segment) Containers() ([]event.Container, error) { return decodeRows(s, event.CtrTable) }

// Executables decodes the exe table.
func (s *Segment) Executables() ([]event.Executable, error) { return decodeRows(s, event.ExeTable) }

// DNS decodes the dns table.
func (s *Segment) DNS() ([]event.DNS, error) { return decodeRows(s, event.DNSTable) }

func decodeRows[R any](s *Segment, t *event.Table[R]) (rows []R, err error) {
	rec, err := s.Record(t.Name)
	if err != nil {
		return nil, err
	}
	defer func() {
		if p := recover(); p != nil {
			rows, err = nil, fmt.Errorf("%w: decode %s of segment %s: %v", ErrCorrupt, t.Name, s.Name(), p)
		}
	}()
	return t.Decode(rec)
}

// Release frees the segment's record batches.
func (s *Segment) Release() {
	for k, rec := range s.recs {
		rec.Release()
		delete(s.recs, k)
	}
	s.empty.Range(func(k, v any) bool {
		v.(arrow.RecordBatch).Release()
		s.empty.Delete(k)
		return true
	})
}

// Verify reads a whole segment of size bytes from r, treating every byte as
// hostile, and returns it decoded. It checks, in order: the size limit; the
// tar container (canonical headers, member names and order, zero padding,
// end-of-archive marker, nothing after it); the manifest (strict, canonical,
// supported version); the host; the signature; each member's size and SHA-256;
// each Arrow stream's framing, schema, row count and validity; the time range;
// and last the chain. Every refusal wraps one of the package's sentinel
// errors; a read error of r is returned as is. Member names never reach the
// file system.
func Verify(r io.ReaderAt, size int64, opts VerifyOptions) (*Segment, error) {
	lim := opts.limits()
	if size < 0 {
		return nil, fmt.Errorf("%w: negative size %d", ErrCorrupt, size)
	}
	if size > lim.size {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, size, lim.size)
	}
	buf := make([]byte, size)
	if n, err := r.ReadAt(buf, 0); n < len(buf) {
		if err == nil || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: truncated: %d of %d bytes", ErrCorrupt, n, size)
		}
		return nil, fmt.Errorf("read segment: %w", err)
	}
	return verifyBytes(buf, &opts, lim)
}

// VerifyBytes is Verify over a segment held in memory.
func VerifyBytes(b []byte, opts VerifyOptions) (*Segment, error) {
	return Verify(bytes.NewReader(b), int64(len(b)), opts)
}

// VerifyFile is Verify over the segment file at path, with the size of the
// file as opened (not as a separate stat saw it). Errors opening the file
// are returned as os reports them.
func VerifyFile(path string, opts VerifyOptions) (*Segment, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return Verify(f, fi.Size(), opts)
}

func verifyBytes(buf []byte, opts *VerifyOptions, lim *limits) (*Segment, error) {
	members, err := tarScan(buf, lim)
	if err != nil {
		return nil, err
	}
	if len(members) < 3 || members[0].name != ManifestName || members[1].name != SigName {
		return nil, fmt.Errorf("%w: members must start %s, %s and hold at least one table", ErrCorrupt, ManifestName, SigName)
	}
	mbytes := members[0].data
	m, err := parseManifest(mbytes)
	if err != nil {
		return nil, err
	}
	mtime := m.Created.Unix()
	for _, rm := range members {
		h := tarHeader(rm.name, int64(len(rm.data)), mtime)
		if !bytes.Equal(h[:], buf[rm.off:rm.off+blockSize]) {
			return nil, fmt.Errorf("%w: tar header of %q is not canonical", ErrCorrupt, rm.name)
		}
	}
	if opts.HostID != "" && m.HostID != opts.HostID {
		return nil, fmt.Errorf("%w: manifest names host %q, want %q", ErrWrongHost, m.HostID, opts.HostID)
	}
	sig := members[1].data
	if len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: %s is %d bytes, want %d", ErrCorrupt, SigName, len(sig), ed25519.SignatureSize)
	}
	if opts.PublicKey != nil {
		if len(opts.PublicKey) != ed25519.PublicKeySize || !ed25519.Verify(opts.PublicKey, mbytes, sig) {
			return nil, fmt.Errorf("%w: segment %s seq %d", ErrBadSignature, m.HostID, m.Seq)
		}
	}
	arrowMembers := members[2:]
	if len(arrowMembers) != len(m.Members) {
		return nil, fmt.Errorf("%w: %d table members, manifest lists %d", ErrCorrupt, len(arrowMembers), len(m.Members))
	}
	for i, rm := range arrowMembers {
		want := m.Members[i]
		if rm.name != want.Name || int64(len(rm.data)) != want.Bytes {
			return nil, fmt.Errorf("%w: member %d is %q of %d bytes, manifest lists %q of %d", ErrCorrupt, i+2, rm.name, len(rm.data), want.Name, want.Bytes)
		}
		sum := sha256.Sum256(rm.data)
		wantSum, _ := hex.DecodeString(want.SHA256) // format checked by parseManifest
		if subtle.ConstantTimeCompare(sum[:], wantSum) != 1 {
			return nil, fmt.Errorf("%w: member %s: SHA-256 mismatch", ErrCorrupt, want.Name)
		}
	}

	// Every member's framing first, so that the decompressed size of the
	// whole segment is known (and admitted) before any of it is allocated.
	budget := lim.decoded
	for i, rm := range arrowMembers {
		if err := scanMember(rm.data, m.Members[i], lim, &budget); err != nil {
			return nil, err
		}
	}
	if opts.Admit != nil {
		if err := opts.Admit(lim.decoded - budget); err != nil {
			return nil, err
		}
	}
	// The manifest is copied so that the file's buffer is not kept alive
	// by the segment.
	seg := &Segment{Manifest: *m, Digest: Digest(mbytes), Signed: opts.PublicKey != nil, Size: int64(len(buf)),
		manifest: bytes.Clone(mbytes), recs: make(map[string]arrow.RecordBatch, len(arrowMembers))}
	lo, hi := int64(1<<63-1), int64(-1<<63)
	for i, rm := range arrowMembers {
		want := m.Members[i]
		rec, err := decodeArrow(rm.data, want, lim)
		if err != nil {
			seg.Release()
			return nil, err
		}
		seg.recs[want.Table] = rec
		tsRange(rec, &lo, &hi)
	}
	if lo != m.MinTS || hi != m.MaxTS {
		seg.Release()
		return nil, fmt.Errorf("%w: rows span [%d, %d], manifest says [%d, %d]", ErrCorrupt, lo, hi, m.MinTS, m.MaxTS)
	}
	if opts.PrevDigest != nil && *opts.PrevDigest != m.PrevDigest {
		return seg, fmt.Errorf("%w: segment %s seq %d has prev_digest %q, want %q", ErrChainBroken, m.HostID, m.Seq, m.PrevDigest, *opts.PrevDigest)
	}
	return seg, nil
}

// decodeMember checks one Arrow member's framing, then decodes and fully
// validates it. Any panic inside Arrow is turned into ErrCorrupt.
func decodeMember(data []byte, want Member, lim *limits, budget *int64) (rec arrow.RecordBatch, err error) {
	if err := scanMember(data, want, lim, budget); err != nil {
		return nil, err
	}
	return decodeArrow(data, want, lim)
}

// scanMember checks one Arrow member's framing and row count (scanStream),
// charging its decompressed size to budget.
func scanMember(data []byte, want Member, lim *limits, budget *int64) error {
	rows, err := scanStream(data, want.Table, lim, budget)
	if err != nil {
		if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrTooLong) {
			return fmt.Errorf("member %s: %w", want.Name, err)
		}
		return fmt.Errorf("%w: member %s: %v", ErrCorrupt, want.Name, err)
	}
	if rows != want.Rows {
		return fmt.Errorf("%w: member %s has %d rows, manifest says %d", ErrCorrupt, want.Name, rows, want.Rows)
	}
	return nil
}

// decodeArrow decodes and fully validates a member that scanMember passed:
// unpackMember decompresses it, Arrow's reader reads the result. Any panic
// inside Arrow is turned into ErrCorrupt.
func decodeArrow(data []byte, want Member, lim *limits) (rec arrow.RecordBatch, err error) {
	var r *ipc.Reader
	defer func() {
		if p := recover(); p != nil {
			if rec != nil {
				rec.Release()
			}
			rec, err = nil, fmt.Errorf("%w: member %s: arrow: %v", ErrCorrupt, want.Name, p)
		}
		if r != nil {
			r.Release()
		}
	}()
	u, err := unpackMember(data, lim)
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			return nil, fmt.Errorf("member %s: %w", want.Name, err)
		}
		return nil, fmt.Errorf("%w: member %s: %v", ErrCorrupt, want.Name, err)
	}
	r, err = ipc.NewReaderFromMessageReader(u)
	if err != nil {
		u.Release()
		return nil, fmt.Errorf("%w: member %s: %v", ErrCorrupt, want.Name, err)
	}
	if err := checkSchema(want.Table, r.Schema()); err != nil {
		return nil, fmt.Errorf("%w: member %s: %v", ErrCorrupt, want.Name, err)
	}
	if !r.Next() {
		return nil, fmt.Errorf("%w: member %s: no record batch: %v", ErrCorrupt, want.Name, r.Err())
	}
	rec = r.RecordBatch()
	rec.Retain()
	if r.Next() || r.Err() != nil {
		rec.Release()
		return nil, fmt.Errorf("%w: member %s: data after the record batch: %v", ErrCorrupt, want.Name, r.Err())
	}
	if err := checkRecord(rec, want.Rows); err != nil {
		rec.Release()
		return nil, fmt.Errorf("%w: member %s: %v", ErrCorrupt, want.Name, err)
	}
	// A member of an older writer lacks the columns added since: readers
	// get the table's schema, those columns null.
	if p := event.Pad(want.Table, rec); p != rec {
		rec.Release()
		rec = p
	}
	return rec, nil
}

func checkRecord(rec arrow.RecordBatch, rows int64) error {
	if rec.NumRows() != rows {
		return fmt.Errorf("%d rows, want %d", rec.NumRows(), rows)
	}
	for i, col := range rec.Columns() {
		if int64(col.Len()) != rows {
			return fmt.Errorf("column %d has %d rows, want %d", i, col.Len(), rows)
		}
	}
	return array.ValidateRecordFull(rec)
}

func checkSchema(table string, s *arrow.Schema) error { return event.CheckSchema(table, s) }

// tsRange widens [lo, hi] by every non-null value of rec's timestamp columns.
func tsRange(rec arrow.RecordBatch, lo, hi *int64) {
	for _, col := range rec.Columns() {
		ts, ok := col.(*array.Timestamp)
		if !ok {
			continue
		}
		vals := ts.TimestampValues()
		for i, v := range vals {
			if ts.IsNull(i) {
				continue
			}
			*lo = min(*lo, int64(v))
			*hi = max(*hi, int64(v))
		}
	}
}

// ReadManifest reads only the container's first member and parses the
// manifest. Nothing is authenticated and the members are not checked: use it
// to list or route segments, and Verify for anything that trusts them.
func ReadManifest(r io.ReaderAt, size int64) (*Manifest, string, error) {
	var h [blockSize]byte
	if size < tarSize(0, ed25519.SignatureSize, 1) {
		return nil, "", fmt.Errorf("%w: %d bytes is too short for a segment", ErrCorrupt, size)
	}
	if n, err := r.ReadAt(h[:], 0); n < len(h) {
		return nil, "", readErr(err)
	}
	name, ok := cString(h[:100])
	n, okSize := octal(h[124:136])
	if !ok || !okSize || name != ManifestName {
		return nil, "", fmt.Errorf("%w: first member is not %s", ErrCorrupt, ManifestName)
	}
	if n > MaxManifestSize || blockSize+n > size {
		return nil, "", fmt.Errorf("%w: manifest of %d bytes", ErrCorrupt, n)
	}
	b := make([]byte, n)
	if k, err := r.ReadAt(b, blockSize); k < len(b) {
		return nil, "", readErr(err)
	}
	m, err := parseManifest(b)
	if err != nil {
		return nil, "", err
	}
	if want := tarHeader(ManifestName, n, m.Created.Unix()); want != h {
		return nil, "", fmt.Errorf("%w: tar header of %s is not canonical", ErrCorrupt, ManifestName)
	}
	return m, Digest(b), nil
}

func readErr(err error) error {
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated", ErrCorrupt)
	}
	return fmt.Errorf("read segment: %w", err)
}
