package spool

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pofr/pofr/internal/event"
)

// Sentinel errors. Verify and the Writer wrap them with details; callers
// branch with errors.Is. Every refusal of a segment's bytes wraps exactly one
// of them.
var (
	// ErrCorrupt: the bytes are not a well-formed segment (bad container,
	// manifest, member digest, Arrow data, truncation, trailing garbage). The
	// segment can never become valid; quarantine it.
	ErrCorrupt = errors.New("spool: corrupt segment")
	// ErrBadSignature: manifest.sig is not a valid signature of the manifest
	// by the given public key (forged, or signed by another key).
	ErrBadSignature = errors.New("spool: bad signature")
	// ErrChainBroken: the segment's prev_digest is not the digest expected by
	// the caller. The segment itself is intact and is returned with this error.
	ErrChainBroken = errors.New("spool: hash chain broken")
	// ErrWrongHost: the manifest names another host than the caller expected.
	ErrWrongHost = errors.New("spool: segment of another host")
	// ErrTooLarge: the segment, one of its members, its row count or its
	// decoded size exceeds a limit; nothing beyond the limit was read.
	ErrTooLarge = errors.New("spool: segment too large")
	// ErrTooLong: a column holds values longer than the reader accepts for
	// it (VerifyOptions.MaxValueBytes); they were not decompressed.
	ErrTooLong = errors.New("spool: value longer than its column allows")
	// ErrUnsupportedVersion: the manifest declares a format version this
	// reader does not know.
	ErrUnsupportedVersion = errors.New("spool: unsupported segment version")
)

// Format constants. See docs/segment-format.md.
const (
	// FormatName is the manifest's "format" value.
	FormatName = "pofr-segment"
	// Version is the format version this package writes and reads.
	Version = 1
	// Ext is the file name extension of a sealed segment.
	Ext = ".pofr"

	// ManifestName and SigName are the first two member names.
	ManifestName = "manifest.json"
	SigName      = "manifest.sig"

	// MaxManifestSize bounds the manifest member.
	MaxManifestSize = 64 << 10
	// MaxZstdWindow bounds the window a zstd frame in an Arrow member may
	// declare, so that a decoder never allocates more for history.
	MaxZstdWindow = 8 << 20

	// DefaultMaxSize is the default bound of a whole segment file.
	DefaultMaxSize = 64 << 20
	// DefaultMaxRows is the default bound of the rows of one member; the
	// Writer never puts more rows than this into one member.
	DefaultMaxRows = 1 << 20
	// DefaultMaxDecoded is the default bound of the decompressed Arrow
	// buffers of a whole segment.
	DefaultMaxDecoded = 256 << 20
)

// MemberName returns the member name of a table (proc → proc.arrow).
func MemberName(table string) string { return table + ".arrow" }

// Counter counts one source's events: seen (delivered to the record) and
// lost (known to be missing, for example dropped by the kernel).
type Counter struct {
	Seen uint64 `json:"seen"`
	Lost uint64 `json:"lost"`
}

// Member describes one Arrow member of a segment.
type Member struct {
	// Name is the member's name in the tar (proc.arrow …).
	Name string `json:"name"`
	// Table is the event table it holds (proc …).
	Table string `json:"table"`
	// Rows is the number of rows of its one record batch.
	Rows int64 `json:"rows"`
	// Bytes is the member's size.
	Bytes int64 `json:"bytes"`
	// SHA256 is the lowercase hex SHA-256 of the member's bytes.
	SHA256 string `json:"sha256"`
}

// Manifest is the parsed manifest.json of a segment. Field order is the JSON
// order; see docs/segment-format.md for every field.
type Manifest struct {
	// Format is always FormatName; Version the format version (Version).
	Format  string `json:"format"`
	Version int    `json:"version"`
	// HostID is the host that recorded and signed the segment; BootID the
	// kernel boot id while the rows were recorded.
	HostID string `json:"host_id"`
	BootID string `json:"boot_id"`
	// Seq counts the host's segments from 1, across restarts.
	Seq uint64 `json:"seq"`
	// PrevDigest is the digest of the segment sealed before this one, ""
	// for seq 1.
	PrevDigest string `json:"prev_digest"`
	// Created is when the segment was sealed, UTC.
	Created time.Time `json:"created"`
	// MinTS and MaxTS are the exact range of every timestamp column of
	// every row, ns since the Unix epoch, UTC.
	MinTS int64 `json:"min_ts"`
	MaxTS int64 `json:"max_ts"`
	// TZOffset is the client's UTC offset at sealing, in seconds east of UTC.
	TZOffset int `json:"tz_offset_seconds"`
	// Hostname and CollectorVersion are informative.
	Hostname         string `json:"hostname"`
	CollectorVersion string `json:"collector_version"`
	// Modes says how each source captured ("proc": "netlink" or "poll").
	Modes map[string]string `json:"modes"`
	// Counters are each source's cumulative seen and lost counts.
	Counters map[string]Counter `json:"counters"`
	// Members lists the table members in member order.
	Members []Member `json:"members"`
}

// Rows returns the total number of rows in the segment.
func (m *Manifest) Rows() int64 {
	var n int64
	for _, mb := range m.Members {
		n += mb.Rows
	}
	return n
}

// TableRows returns the rows of table, 0 if the segment has no such member.
func (m *Manifest) TableRows(table string) int64 {
	for _, mb := range m.Members {
		if mb.Table == table {
			return mb.Rows
		}
	}
	return 0
}

// Name returns the segment's canonical file name for this manifest and its
// digest (hex SHA-256 of the manifest bytes).
func (m *Manifest) Name(digest string) string { return SegmentName(m.HostID, m.Seq, digest) }

// SegmentName returns <host_id>_<seq, 20 digits>_<first 16 hex digits of digest>.pofr.
func SegmentName(hostID string, seq uint64, digest string) string {
	if len(digest) > 16 {
		digest = digest[:16]
	}
	return fmt.Sprintf("%s_%020d_%s%s", hostID, seq, digest, Ext)
}

// hostIDPattern is the host-id grammar, the one definition of it: 1–63 of
// [a-z0-9-], not starting with '-'. The server's registry assigns ids that
// match it, the protocol (package wire) and the segment names carry them.
const hostIDPattern = `[a-z0-9][a-z0-9-]{0,62}`

// nameRE is the segment file name grammar (docs/segment-format.md).
var nameRE = regexp.MustCompile(`^(` + hostIDPattern + `)_([0-9]{20})_([0-9a-f]{16})\.pofr$`)

// ParseName splits a segment file name into host id, seq and digest prefix.
// ok is false for any other name (temporary files, state, foreign files).
func ParseName(name string) (hostID string, seq uint64, digestPrefix string, ok bool) {
	m := nameRE.FindStringSubmatch(name)
	if m == nil {
		return "", 0, "", false
	}
	seq, err := strconv.ParseUint(m[2], 10, 64)
	if err != nil {
		return "", 0, "", false
	}
	return m[1], seq, m[3], true
}

var hostIDRE = regexp.MustCompile(`^` + hostIDPattern + `$`)

// ValidHostID reports whether id can be a host id (and so a path element):
// 1–63 of [a-z0-9-], not starting with '-'.
func ValidHostID(id string) bool { return hostIDRE.MatchString(id) }

var hexDigestRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Digest returns the lowercase hex SHA-256 of b.
func Digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// encodeManifest returns the canonical bytes of m: compact JSON in field
// order, map keys sorted, HTML characters not escaped, one trailing newline.
func encodeManifest(m *Manifest) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// parseManifest decodes manifest bytes strictly: the format and version are
// checked first (so a newer version is reported as such), then unknown
// fields are refused, the bytes must be exactly the canonical encoding of the
// decoded value, and every field must be in range.
func parseManifest(b []byte) (*Manifest, error) {
	var head struct {
		Format  string `json:"format"`
		Version int    `json:"version"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
	}
	if head.Format != FormatName {
		return nil, fmt.Errorf("%w: manifest format %q, want %q", ErrCorrupt, head.Format, FormatName)
	}
	if head.Version != Version {
		return nil, fmt.Errorf("%w: version %d (this reader knows %d)", ErrUnsupportedVersion, head.Version, Version)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	m := new(Manifest)
	if err := dec.Decode(m); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
	}
	canon, err := encodeManifest(m)
	if err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
	}
	if !bytes.Equal(canon, b) {
		return nil, fmt.Errorf("%w: manifest is not in canonical form", ErrCorrupt)
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
	}
	return m, nil
}

// check validates the fields of a decoded manifest.
func (m *Manifest) check() error {
	switch {
	case !ValidHostID(m.HostID):
		return fmt.Errorf("host_id %q is not a valid host id", m.HostID)
	case !ValidBootID(m.BootID):
		return fmt.Errorf("boot_id %q: want 1 to 64 printable ASCII characters", m.BootID)
	case m.Seq == 0:
		return errors.New("seq 0: sequence numbers start at 1")
	case m.PrevDigest != "" && !hexDigestRE.MatchString(m.PrevDigest):
		return fmt.Errorf("prev_digest %q is not a hex SHA-256", m.PrevDigest)
	case m.Seq == 1 && m.PrevDigest != "":
		return errors.New("seq 1 with a prev_digest")
	case m.Seq > 1 && m.PrevDigest == "":
		return fmt.Errorf("seq %d without prev_digest", m.Seq)
	case m.Created.Location() != time.UTC || m.Created.IsZero():
		return errors.New("created is not a UTC time")
	case m.MinTS > m.MaxTS:
		return fmt.Errorf("min_ts %d after max_ts %d", m.MinTS, m.MaxTS)
	case m.TZOffset < -18*3600 || m.TZOffset > 18*3600:
		return fmt.Errorf("tz_offset_seconds %d out of range", m.TZOffset)
	case len(m.Members) == 0:
		return errors.New("no members")
	}
	next := 0 // index in event.Tables of the earliest table the next member may hold
	for _, mb := range m.Members {
		i := indexOf(event.Tables, mb.Table)
		switch {
		case i < next:
			return fmt.Errorf("member %q: unknown table, duplicate or out of order", mb.Name)
		case mb.Name != MemberName(mb.Table):
			return fmt.Errorf("member %q holds table %q, want name %q", mb.Name, mb.Table, MemberName(mb.Table))
		case mb.Rows <= 0:
			return fmt.Errorf("member %s: %d rows (members without rows are omitted)", mb.Name, mb.Rows)
		case mb.Bytes <= 0:
			return fmt.Errorf("member %s: %d bytes", mb.Name, mb.Bytes)
		case !hexDigestRE.MatchString(mb.SHA256):
			return fmt.Errorf("member %s: sha256 %q is not a hex SHA-256", mb.Name, mb.SHA256)
		}
		next = i + 1
	}
	for k := range m.Modes {
		if k == "" || strings.ContainsAny(k, "\x00") {
			return fmt.Errorf("modes: bad key %q", k)
		}
	}
	return nil
}

// ValidBootID reports whether s is a boot id the format accepts: 1 to 64
// bytes of printable ASCII (0x20–0x7e). The kernel's is a UUID; the server
// stores it in an ASCII column, so anything else could be signed and still
// not be loadable.
func ValidBootID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}
