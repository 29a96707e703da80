package loader

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/pofr/pofr/internal/event"
)

// ErrDecode reports a segment whose rows cannot be rendered for MariaDB: a
// column of an unexpected type, a vocabulary value that is not printable
// ASCII, a timestamp outside DATETIME's range. Such a segment is quarantined.
var ErrDecode = errors.New("loader: cannot decode segment rows")

// Encoding says how byte columns (comm, exe, argv, paths, addresses, …)
// travel in the LOAD DATA stream.
type Encoding int

const (
	// Escaped sends the bytes themselves with LOAD DATA's escapes (\\ \t \n
	// \r \0) under CHARACTER SET binary, so no conversion touches them. The
	// default: half the bytes of Hex on the wire and no per-row function.
	Escaped Encoding = iota
	// Hex sends every byte column as hexadecimal into a user variable and
	// stores UNHEX(@v).
	Hex
)

// String returns "escaped" or "hex".
func (e Encoding) String() string {
	if e == Hex {
		return "hex"
	}
	return "escaped"
}

// tableInfo maps an event table to its SQL table.
type tableInfo struct {
	table    string // event table name (proc …)
	sqlName  string // SQL table (proc_events …)
	tsNS     bool   // the "ts" column is split into ts (DATETIME(6)) and ts_ns
	tzOffset bool   // the SQL table has tz_offset
}

var tableInfos = []tableInfo{
	{event.TableProc, "proc_events", true, true},
	{event.TableFile, "file_events", true, true},
	{event.TableSock, "sock_events", true, true},
	{event.TableGap, "gaps", false, false},
	{event.TableAcct, "accounts", false, false},
}

func infoOf(table string) (tableInfo, bool) {
	for _, ti := range tableInfos {
		if ti.table == table {
			return ti, true
		}
	}
	return tableInfo{}, false
}

// segConsts are the values every row of one segment shares; they travel in
// the statement's SET clause, not in the stream.
type segConsts struct {
	SegmentID uint64
	HostID    string // a valid host id: [a-z0-9-]
	BootID    string // up to 64 bytes, anything
	TZOffset  int
}

// loadStatement returns the LOAD DATA statement that loads a stream of
// table's rows as rendered by newTSVReader from the file 'Reader::name'.
// Constants travel as literals: host_id is a validated id, boot_id is
// written as a hex literal, the numbers are numbers.
func loadStatement(ti tableInfo, schema *arrow.Schema, enc Encoding, name string, c segConsts) string {
	var cols []string
	var sets []string
	cols = append(cols, "row_no")
	for i, f := range schema.Fields() {
		if f.Name == "ts" && ti.tsNS {
			cols = append(cols, "ts", "ts_ns")
			continue
		}
		if enc == Hex && bytesColumn(f.Name, f.Type) {
			v := "@v" + strconv.Itoa(i)
			cols = append(cols, v)
			sets = append(sets, "`"+f.Name+"` = UNHEX("+v+")")
			continue
		}
		cols = append(cols, "`"+f.Name+"`")
	}
	sets = append(sets,
		"segment_id = "+strconv.FormatUint(c.SegmentID, 10),
		"host_id = '"+c.HostID+"'",
		"boot_id = X'"+hex.EncodeToString([]byte(c.BootID))+"'")
	if ti.tzOffset {
		sets = append(sets, "tz_offset = "+strconv.Itoa(c.TZOffset))
	}
	return "LOAD DATA LOCAL INFILE 'Reader::" + name + "' INTO TABLE " + ti.sqlName +
		" CHARACTER SET binary FIELDS TERMINATED BY '\\t' ENCLOSED BY '' ESCAPED BY '\\\\'" +
		" LINES STARTING BY '' TERMINATED BY '\\n' (" + strings.Join(cols, ", ") + ") SET " + strings.Join(sets, ", ")
}

// freeText names the string columns that hold free text rather than a small
// ASCII vocabulary; their SQL columns are BLOBs and they travel as bytes.
var freeText = map[string]bool{"reason": true}

// bytesColumn reports whether a column travels as bytes.
func bytesColumn(name string, t arrow.DataType) bool { return isBytes(t) || freeText[name] }

// isBytes reports whether a column holds exact bytes (binary or
// dictionary-of-binary).
func isBytes(t arrow.DataType) bool {
	switch t := t.(type) {
	case *arrow.BinaryType:
		return true
	case *arrow.DictionaryType:
		return t.ValueType.ID() == arrow.BINARY
	}
	return false
}

// field renders value i of one column, appending to dst.
type field func(dst []byte, i int) ([]byte, error)

// tsvReader renders a record batch as LOAD DATA text on demand. It is an
// io.Reader that the MySQL driver pulls from, so rendering needs no goroutine
// and no copy beyond its own buffer. Each line is: row_no, then the columns
// in schema order (ts as two fields when split), tab-separated.
type tsvReader struct {
	n, i   int
	fields []field
	buf    []byte
	off    int
	err    error
	rows   int64 // rows rendered
	bytes  int64 // bytes rendered
}

const tsvChunk = 256 << 10

// newTSVReader returns a reader over rec, whose schema must be the table's.
func newTSVReader(ti tableInfo, rec arrow.RecordBatch, enc Encoding) (*tsvReader, error) {
	r := &tsvReader{n: int(rec.NumRows())}
	for j := 0; j < int(rec.NumCols()); j++ {
		f := rec.Schema().Field(j)
		fs, err := columnFields(f.Name, rec.Column(j), ti.tsNS && f.Name == "ts", enc)
		if err != nil {
			return nil, err
		}
		r.fields = append(r.fields, fs...)
	}
	return r, nil
}

// Read implements io.Reader.
func (r *tsvReader) Read(p []byte) (int, error) {
	for r.off == len(r.buf) {
		if r.err != nil {
			return 0, r.err
		}
		if r.i >= r.n {
			return 0, io.EOF
		}
		r.buf, r.off = r.buf[:0], 0
		for r.i < r.n && len(r.buf) < tsvChunk {
			var err error
			if r.buf, err = r.renderRow(r.buf, r.i); err != nil {
				r.err = err
				r.buf = r.buf[:0]
				break
			}
			r.i++
			r.rows++
		}
		r.bytes += int64(len(r.buf))
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	return n, nil
}

// WriteTo renders everything into w (used to pre-render benchmarks' ceiling).
func (r *tsvReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	buf := make([]byte, 0, tsvChunk+4096)
	for r.i < r.n {
		var err error
		if buf, err = r.renderRow(buf, r.i); err != nil {
			return total, err
		}
		r.i++
		r.rows++
		if len(buf) >= tsvChunk || r.i == r.n {
			n, err := w.Write(buf)
			total += int64(n)
			if err != nil {
				return total, err
			}
			buf = buf[:0]
		}
	}
	return total, nil
}

func (r *tsvReader) renderRow(dst []byte, i int) ([]byte, error) {
	dst = strconv.AppendInt(dst, int64(i), 10)
	for _, f := range r.fields {
		dst = append(dst, '\t')
		var err error
		if dst, err = f(dst, i); err != nil {
			return dst, fmt.Errorf("row %d: %w", i, err)
		}
	}
	return append(dst, '\n'), nil
}

// columnFields returns the field renderers of one Arrow column: one, or two
// for a split ts.
func columnFields(name string, a arrow.Array, splitTS bool, enc Encoding) ([]field, error) {
	null := func(dst []byte, i int) ([]byte, bool) {
		if a.IsNull(i) {
			return append(dst, '\\', 'N'), true
		}
		return dst, false
	}
	switch a := a.(type) {
	case *array.Timestamp:
		if a.DataType().(*arrow.TimestampType).Unit != arrow.Nanosecond {
			return nil, fmt.Errorf("%w: column %s: timestamp unit %s, want ns", ErrDecode, name, a.DataType())
		}
		dt := func(dst []byte, i int) ([]byte, error) {
			if d, ok := null(dst, i); ok {
				return d, nil
			}
			return appendDatetime(dst, int64(a.Value(i)), name)
		}
		if !splitTS {
			return []field{dt}, nil
		}
		ns := func(dst []byte, i int) ([]byte, error) {
			if d, ok := null(dst, i); ok {
				return d, nil
			}
			return strconv.AppendInt(dst, floorMod(int64(a.Value(i)), 1000), 10), nil
		}
		return []field{dt, ns}, nil
	case *array.Int32:
		return []field{func(dst []byte, i int) ([]byte, error) {
			if d, ok := null(dst, i); ok {
				return d, nil
			}
			return strconv.AppendInt(dst, int64(a.Value(i)), 10), nil
		}}, nil
	case *array.Int64:
		return []field{func(dst []byte, i int) ([]byte, error) {
			if d, ok := null(dst, i); ok {
				return d, nil
			}
			return strconv.AppendInt(dst, a.Value(i), 10), nil
		}}, nil
	case *array.Uint8:
		return []field{func(dst []byte, i int) ([]byte, error) {
			if d, ok := null(dst, i); ok {
				return d, nil
			}
			return strconv.AppendUint(dst, uint64(a.Value(i)), 10), nil
		}}, nil
	case *array.Uint16:
		return []field{func(dst []byte, i int) ([]byte, error) {
			if d, ok := null(dst, i); ok {
				return d, nil
			}
			return strconv.AppendUint(dst, uint64(a.Value(i)), 10), nil
		}}, nil
	case *array.Uint32:
		return []field{func(dst []byte, i int) ([]byte, error) {
			if d, ok := null(dst, i); ok {
				return d, nil
			}
			return strconv.AppendUint(dst, uint64(a.Value(i)), 10), nil
		}}, nil
	case *array.Uint64:
		return []field{func(dst []byte, i int) ([]byte, error) {
			if d, ok := null(dst, i); ok {
				return d, nil
			}
			return strconv.AppendUint(dst, a.Value(i), 10), nil
		}}, nil
	case *array.Binary:
		return []field{func(dst []byte, i int) ([]byte, error) {
			if d, ok := null(dst, i); ok {
				return d, nil
			}
			return appendBytes(dst, a.Value(i), enc), nil
		}}, nil
	case *array.Dictionary:
		return dictField(name, a, enc)
	}
	return nil, fmt.Errorf("%w: column %s has unsupported type %s", ErrDecode, name, a.DataType())
}

// dictField renders a dictionary column; each dictionary entry is rendered
// once, then copied for every row that uses it.
func dictField(name string, a *array.Dictionary, enc Encoding) ([]field, error) {
	dict := a.Dictionary()
	rendered := make([][]byte, dict.Len())
	switch d := dict.(type) {
	case *array.String:
		for k := range rendered {
			v := d.Value(k)
			if freeText[name] {
				rendered[k] = appendBytes([]byte{}, []byte(v), enc)
				continue
			}
			if !printableASCII(v) {
				rendered[k] = nil // an error if a row uses it
				continue
			}
			rendered[k] = appendBytes(nil, []byte(v), Escaped)
		}
	case *array.Binary:
		for k := range rendered {
			rendered[k] = appendBytes(make([]byte, 0, len(d.Value(k))), d.Value(k), enc)
			if rendered[k] == nil {
				rendered[k] = []byte{}
			}
		}
	default:
		return nil, fmt.Errorf("%w: column %s: dictionary of %s", ErrDecode, name, dict.DataType())
	}
	return []field{func(dst []byte, i int) ([]byte, error) {
		if a.IsNull(i) {
			return append(dst, '\\', 'N'), nil
		}
		k := a.GetValueIndex(i)
		if k < 0 || k >= len(rendered) {
			return dst, fmt.Errorf("%w: column %s: dictionary index %d of %d", ErrDecode, name, k, len(rendered))
		}
		v := rendered[k]
		if v == nil {
			return dst, fmt.Errorf("%w: column %s: value %q is not printable ASCII", ErrDecode, name, dict.(*array.String).Value(k))
		}
		return append(dst, v...), nil
	}}, nil
}

// printableASCII reports whether s is made of bytes 0x20–0x7e only. The SQL
// columns of small vocabularies (event, op, state, …) are ASCII; MariaDB
// would silently turn anything else into '?'.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// escapes maps the bytes LOAD DATA's default format must escape to the
// character after the backslash.
var escapes = [256]byte{'\\': '\\', '\t': 't', '\n': 'n', '\r': 'r', 0: '0'}

// appendBytes appends b as one LOAD DATA field: escaped, or hexadecimal.
func appendBytes(dst, b []byte, enc Encoding) []byte {
	if enc == Hex {
		return hex.AppendEncode(dst, b)
	}
	start := 0
	for i, c := range b {
		if e := escapes[c]; e != 0 {
			dst = append(dst, b[start:i]...)
			dst = append(dst, '\\', e)
			start = i + 1
		}
	}
	return append(dst, b[start:]...)
}

// appendDatetime appends ns (since the epoch, UTC) as 'YYYY-MM-DD
// HH:MM:SS.ffffff', truncated to the microsecond. Every int64 of ns
// (1677–2262) is inside DATETIME's range (1000–9999).
func appendDatetime(dst []byte, ns int64, col string) ([]byte, error) {
	sec := floorDiv(ns, 1e9)
	frac := ns - sec*1e9
	t := time.Unix(sec, 0).UTC()
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	dst = append4(dst, y)
	dst = append(dst, '-')
	dst = append2(dst, int(mo))
	dst = append(dst, '-')
	dst = append2(dst, d)
	dst = append(dst, ' ')
	dst = append2(dst, h)
	dst = append(dst, ':')
	dst = append2(dst, mi)
	dst = append(dst, ':')
	dst = append2(dst, s)
	dst = append(dst, '.')
	us := int(frac / 1000)
	dst = append2(dst, us/10000)
	dst = append2(dst, us/100%100)
	dst = append2(dst, us%100)
	return dst, nil
}

func append2(dst []byte, v int) []byte { return append(dst, byte('0'+v/10), byte('0'+v%10)) }
func append4(dst []byte, v int) []byte { return append2(append2(dst, v/100), v%100) }

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func floorMod(a, b int64) int64 { return a - floorDiv(a, b)*b }
