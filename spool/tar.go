package spool

import (
	"fmt"
	"io"

	"github.com/pofr/pofr/internal/event"
)

// A segment is a POSIX ustar archive whose every header is canonical: given a
// member's name, size and the segment's creation time there is exactly one
// valid header, so any change to any header byte is detected by comparison.

const blockSize = 512

// tarHeader returns the canonical ustar header of a regular file.
func tarHeader(name string, size, mtime int64) [blockSize]byte {
	var h [blockSize]byte
	copy(h[0:100], name)
	copy(h[100:108], "0000644\x00")
	copy(h[108:116], "0000000\x00")
	copy(h[116:124], "0000000\x00")
	copy(h[124:136], fmt.Sprintf("%011o\x00", size))
	copy(h[136:148], fmt.Sprintf("%011o\x00", mtime))
	h[156] = '0'
	copy(h[257:263], "ustar\x00")
	copy(h[263:265], "00")
	// The checksum is the sum of all header bytes with the checksum field
	// taken as eight spaces, written as six octal digits, NUL, space.
	copy(h[148:156], "        ")
	var sum int64
	for _, c := range h {
		sum += int64(c)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return h
}

// padding returns the number of zero bytes that follow n bytes of member data.
func padding(n int64) int64 { return (blockSize - n%blockSize) % blockSize }

// tarSize returns the size of a segment whose members have the given sizes.
func tarSize(sizes ...int64) int64 {
	t := int64(2 * blockSize) // end-of-archive marker
	for _, n := range sizes {
		t += blockSize + n + padding(n)
	}
	return t
}

// tarWriter writes canonical members and the end-of-archive marker.
type tarWriter struct {
	w     io.Writer
	mtime int64
	zero  [blockSize]byte
}

func (t *tarWriter) member(name string, data ...[]byte) error {
	var n int64
	for _, d := range data {
		n += int64(len(d))
	}
	h := tarHeader(name, n, t.mtime)
	if _, err := t.w.Write(h[:]); err != nil {
		return err
	}
	for _, d := range data {
		if _, err := t.w.Write(d); err != nil {
			return err
		}
	}
	_, err := t.w.Write(t.zero[:padding(n)])
	return err
}

func (t *tarWriter) close() error {
	if _, err := t.w.Write(t.zero[:]); err != nil {
		return err
	}
	_, err := t.w.Write(t.zero[:])
	return err
}

// rawMember is a member found by tarScan: its header position, name, and
// data (a sub-slice of the segment).
type rawMember struct {
	off  int64 // offset of its header
	name string
	data []byte
}

// tarScan splits a whole segment into members without trusting anything: each
// header must carry a NUL-terminated name, a strictly formatted octal size and
// the ustar magic; each size must fit the remaining bytes and the limits;
// padding must be zero; the archive must end with exactly two zero blocks and
// nothing after them. Headers are compared byte for byte with the canonical
// header later, once the manifest gives the modification time.
func tarScan(b []byte, lim *limits) ([]rawMember, error) {
	var out []rawMember
	off := int64(0)
	size := int64(len(b))
	for {
		if size-off < blockSize {
			return nil, fmt.Errorf("%w: truncated at byte %d (no end-of-archive marker)", ErrCorrupt, off)
		}
		h := b[off : off+blockSize]
		if allZero(h) {
			break
		}
		if len(out) == 2+len(event.Tables) {
			return nil, fmt.Errorf("%w: more than %d members", ErrCorrupt, 2+len(event.Tables))
		}
		name, ok := cString(h[0:100])
		if !ok || name == "" {
			return nil, fmt.Errorf("%w: member %d at byte %d: bad name", ErrCorrupt, len(out), off)
		}
		if string(h[257:265]) != "ustar\x0000" || h[156] != '0' {
			return nil, fmt.Errorf("%w: member %d at byte %d: not a ustar regular file", ErrCorrupt, len(out), off)
		}
		n, ok := octal(h[124:136])
		if !ok {
			return nil, fmt.Errorf("%w: member %d at byte %d: bad size field", ErrCorrupt, len(out), off)
		}
		max := lim.member
		if name == ManifestName {
			max = MaxManifestSize
		}
		if n > max {
			return nil, fmt.Errorf("%w: member %q is %d bytes, limit %d", ErrTooLarge, name, n, max)
		}
		start := off + blockSize
		end := start + n + padding(n)
		if end > size {
			return nil, fmt.Errorf("%w: member %q truncated: needs %d bytes, file has %d", ErrCorrupt, name, end, size)
		}
		if !allZero(b[start+n : end]) {
			return nil, fmt.Errorf("%w: member %q: padding is not zero", ErrCorrupt, name)
		}
		out = append(out, rawMember{off: off, name: name, data: b[start : start+n]})
		off = end
	}
	if size-off != 2*blockSize || !allZero(b[off:]) {
		return nil, fmt.Errorf("%w: %d bytes after the last member, want a %d-byte zero end-of-archive marker", ErrCorrupt, size-off, 2*blockSize)
	}
	return out, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// cString returns the NUL-terminated string in field f; every byte after the
// first NUL must be NUL too.
func cString(f []byte) (string, bool) {
	i := 0
	for i < len(f) && f[i] != 0 {
		i++
	}
	if i == len(f) || !allZero(f[i:]) {
		return "", false
	}
	return string(f[:i]), true
}

// octal parses a size field: exactly 11 octal digits and a NUL.
func octal(f []byte) (int64, bool) {
	if len(f) != 12 || f[11] != 0 {
		return 0, false
	}
	var n int64
	for _, c := range f[:11] {
		if c < '0' || c > '7' {
			return 0, false
		}
		n = n<<3 | int64(c-'0')
	}
	return n, true
}
