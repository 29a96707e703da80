package tracepoint

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrFormat reports a tracefs format file that does not parse.
var ErrFormat = errors.New("tracepoint: malformed format file")

// ErrField reports a field missing from a tracepoint's format, or a raw
// record too short for it.
var ErrField = errors.New("tracepoint: field")

// Limits on what ParseFormat accepts: the largest format file of a 6.x
// kernel is about 4 KiB with a few dozen fields.
const (
	maxFormatBytes = 64 << 10
	maxFields      = 256
)

// Format is one tracepoint's id and field layout as tracefs describes it in
// events/<sys>/<name>/format.
type Format struct {
	Name   string // e.g. "sched_process_exec"
	ID     uint16 // the tracepoint's type id: the first field (common_type) of every raw record
	Fields []Field
}

// Field is one field of a tracepoint's raw record.
type Field struct {
	Name   string // e.g. "filename"
	Type   string // C type as tracefs writes it, e.g. "__data_loc char[]", "pid_t"
	Offset int    // byte offset in the raw record
	Size   int    // byte size in the raw record (4 for __data_loc and __rel_loc)
	Signed bool
	// Loc is set for __data_loc (dynamic: the 4 bytes hold the payload's
	// offset from the record start in the low half and its length in the
	// high half) and __rel_loc (the same, offset from the end of the
	// field) fields.
	Loc LocKind
	// ArrayLen is the element count of a fixed array ("char comm[16]" →
	// 16), 0 otherwise.
	ArrayLen int
}

// LocKind says how a field's payload is found.
type LocKind uint8

// Payload placement of a field.
const (
	LocInline LocKind = iota // the bytes at Offset, Size long
	LocData                  // __data_loc: offset from the record start
	LocRel                   // __rel_loc: offset from the end of the field
)

// ParseFormat parses a tracefs format file. Unknown lines (print fmt) are
// ignored; a file without name, ID or fields, a field without offset or size,
// or one that exceeds the limits returns an error wrapping ErrFormat.
func ParseFormat(b []byte) (*Format, error) {
	if len(b) > maxFormatBytes {
		return nil, fmt.Errorf("%w: %d bytes", ErrFormat, len(b))
	}
	f := &Format{}
	haveID := false
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		line = bytes.TrimSpace(line)
		switch {
		case bytes.HasPrefix(line, []byte("name:")):
			f.Name = string(bytes.TrimSpace(line[5:]))
		case bytes.HasPrefix(line, []byte("ID:")):
			id, err := strconv.ParseUint(string(bytes.TrimSpace(line[3:])), 10, 16)
			if err != nil {
				return nil, fmt.Errorf("%w: ID: %v", ErrFormat, err)
			}
			f.ID, haveID = uint16(id), true
		case bytes.HasPrefix(line, []byte("field:")):
			if len(f.Fields) >= maxFields {
				return nil, fmt.Errorf("%w: more than %d fields", ErrFormat, maxFields)
			}
			fd, err := parseField(string(line))
			if err != nil {
				return nil, err
			}
			f.Fields = append(f.Fields, fd)
		}
	}
	if f.Name == "" || !haveID || len(f.Fields) == 0 {
		return nil, fmt.Errorf("%w: no name, ID or fields", ErrFormat)
	}
	return f, nil
}

// parseField parses "field:TYPE NAME;\toffset:N;\tsize:N;\tsigned:N;".
func parseField(line string) (Field, error) {
	var fd Field
	haveOff, haveSize := false, false
	for _, part := range strings.Split(line, ";") {
		part = strings.TrimSpace(part)
		k, v, ok := strings.Cut(part, ":")
		if !ok {
			continue
		}
		switch k {
		case "field":
			decl := strings.TrimSpace(v)
			i := strings.LastIndexAny(decl, " *")
			if i < 0 || i == len(decl)-1 {
				return fd, fmt.Errorf("%w: field declaration %q", ErrFormat, decl)
			}
			fd.Name, fd.Type = decl[i+1:], strings.TrimSpace(decl[:i+1])
			if j := strings.IndexByte(fd.Name, '['); j >= 0 {
				n, err := strconv.Atoi(strings.TrimSuffix(fd.Name[j+1:], "]"))
				if err != nil || n < 0 {
					return fd, fmt.Errorf("%w: array %q", ErrFormat, fd.Name)
				}
				fd.Name, fd.ArrayLen = fd.Name[:j], n
			}
			switch {
			case strings.HasPrefix(fd.Type, "__data_loc"):
				fd.Loc = LocData
			case strings.HasPrefix(fd.Type, "__rel_loc"):
				fd.Loc = LocRel
			}
		case "offset", "size", "signed":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > maxFormatBytes {
				return fd, fmt.Errorf("%w: %s %q", ErrFormat, k, v)
			}
			switch k {
			case "offset":
				fd.Offset, haveOff = n, true
			case "size":
				fd.Size, haveSize = n, true
			default:
				fd.Signed = n != 0
			}
		}
	}
	if fd.Name == "" || !haveOff || !haveSize {
		return fd, fmt.Errorf("%w: field %q without name, offset or size", ErrFormat, line)
	}
	if fd.Loc != LocInline && fd.Size != 4 {
		return fd, fmt.Errorf("%w: dynamic field %s of size %d", ErrFormat, fd.Name, fd.Size)
	}
	return fd, nil
}

// Field returns the field called name.
func (f *Format) Field(name string) (Field, error) {
	for _, fd := range f.Fields {
		if fd.Name == name {
			return fd, nil
		}
	}
	return Field{}, fmt.Errorf("%w %s: not in tracepoint %s", ErrField, name, f.Name)
}

// Uint returns the field's value as an unsigned integer (sizes 1, 2, 4, 8;
// native byte order).
func (fd *Field) Uint(raw []byte) (uint64, error) {
	if fd.Offset+fd.Size > len(raw) {
		return 0, fmt.Errorf("%w %s: record of %d bytes", ErrField, fd.Name, len(raw))
	}
	b := raw[fd.Offset : fd.Offset+fd.Size]
	switch fd.Size {
	case 1:
		return uint64(b[0]), nil
	case 2:
		return uint64(binary.NativeEndian.Uint16(b)), nil
	case 4:
		return uint64(binary.NativeEndian.Uint32(b)), nil
	case 8:
		return binary.NativeEndian.Uint64(b), nil
	}
	return 0, fmt.Errorf("%w %s: size %d is not an integer", ErrField, fd.Name, fd.Size)
}

// Int returns the field's value sign-extended when the field is signed.
func (fd *Field) Int(raw []byte) (int64, error) {
	u, err := fd.Uint(raw)
	if err != nil || !fd.Signed {
		return int64(u), err
	}
	shift := 64 - 8*uint(fd.Size)
	return int64(u<<shift) >> shift, nil
}

// Bytes returns the field's payload: the inline bytes, or for __data_loc and
// __rel_loc fields the dynamic area they point to. It aliases raw.
func (fd *Field) Bytes(raw []byte) ([]byte, error) {
	if fd.Offset+fd.Size > len(raw) {
		return nil, fmt.Errorf("%w %s: record of %d bytes", ErrField, fd.Name, len(raw))
	}
	if fd.Loc == LocInline {
		return raw[fd.Offset : fd.Offset+fd.Size], nil
	}
	v := binary.NativeEndian.Uint32(raw[fd.Offset:])
	off, n := int(v&0xffff), int(v>>16)
	if fd.Loc == LocRel {
		off += fd.Offset + fd.Size
	}
	if off+n > len(raw) {
		return nil, fmt.Errorf("%w %s: payload %d+%d beyond record of %d bytes", ErrField, fd.Name, off, n, len(raw))
	}
	return raw[off : off+n], nil
}

// String returns a string field (a char array or a dynamic string) up to
// its first NUL. It aliases raw.
func (fd *Field) String(raw []byte) ([]byte, error) {
	b, err := fd.Bytes(raw)
	if err != nil {
		return nil, err
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return b, nil
}
