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
	"github.com/pofr/pofr/spool"
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
	{event.TableExe, "executables", false, false},
	{event.TableDNS, "dns_events", true, true},
	{event.TableLogin, "login_events", true, true},
	{event.TableCtr, "containers", false, false},
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

// field renders value i of one column. A field has either render, which
// appends the whole (short) value to dst, or value, which returns the raw
// bytes of a byte column for the reader to escape piece by piece: so a long
// value never needs more than tsvChunk of buffer, however long it is.
type field struct {
	render func(dst []byte, i int) ([]byte, error)
	value  func(i int) (v []byte, null bool, err error)
}

// tsvReader renders a record batch as LOAD DATA text on demand. It is an
// io.Reader that the MySQL driver pulls from, so rendering needs no goroutine
// and no copy beyond its own buffer, which stays near tsvChunk. Each line is:
// row_no, then the columns in schema order (ts as two fields when split),
// tab-separated.
type tsvReader struct {
	chunks
	n, i   int
	fields []field
	enc    Encoding
	rows   int64 // rows rendered
	bytes  int64 // bytes rendered

	// Position inside row i: the next field, and within a long value the
	// next byte.
	inRow   bool
	fi      int
	inValue bool
	voff    int
}

const (
	tsvChunk = 256 << 10
	// tsvPiece is how much of a long value is escaped at once.
	tsvPiece = 64 << 10
)

// newTSVReader returns a reader over rec, whose schema must be the table's.
func newTSVReader(ti tableInfo, rec arrow.RecordBatch, enc Encoding) (*tsvReader, error) {
	r := &tsvReader{n: int(rec.NumRows()), enc: enc}
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

// chunks is the io.Reader side of a renderer that fills buf a chunk at a
// time: Read hands out buf, asks for the next chunk when it is used up, and
// ends with err (the renderer's) or io.EOF.
type chunks struct {
	buf []byte
	off int
	err error
}

// read implements Read for a renderer that has more to render while more()
// and renders the next chunk into buf with fill.
func (c *chunks) read(p []byte, more func() bool, fill func()) (int, error) {
	for c.off == len(c.buf) {
		if c.err != nil {
			return 0, c.err
		}
		if !more() {
			return 0, io.EOF
		}
		fill()
	}
	n := copy(p, c.buf[c.off:])
	c.off += n
	return n, nil
}

// Read implements io.Reader.
func (r *tsvReader) Read(p []byte) (int, error) {
	return r.read(p, func() bool { return r.i < r.n }, r.fill)
}

// fill renders the next rows (or the next part of a long row) into r.buf,
// about tsvChunk bytes.
func (r *tsvReader) fill() {
	if r.buf == nil {
		// A chunk, the pieces of a long value that may overshoot it, and
		// a row of short fields.
		r.buf = make([]byte, 0, tsvChunk+2*tsvPiece+16<<10)
	}
	r.buf, r.off = r.buf[:0], 0
	for r.i < r.n && len(r.buf) < tsvChunk {
		var err error
		if r.buf, err = r.renderRow(r.buf); err != nil {
			r.err = fmt.Errorf("row %d: %w", r.i, err)
			r.buf = r.buf[:0]
			break
		}
	}
	r.bytes += int64(len(r.buf))
}

// WriteTo renders everything into w (used to pre-render benchmarks' ceiling).
func (r *tsvReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for r.i < r.n {
		r.fill()
		if r.err != nil {
			return total, r.err
		}
		n, err := w.Write(r.buf)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
	r.buf, r.off = r.buf[:0], 0
	return total, nil
}

// renderRow appends row r.i from where it stopped, until the row ends
// (r.i advances) or dst reaches tsvChunk inside a long value.
func (r *tsvReader) renderRow(dst []byte) ([]byte, error) {
	i := r.i
	fi := r.fi
	if !r.inRow {
		dst = strconv.AppendInt(dst, int64(i), 10)
		r.inRow, fi = true, 0
	}
	fields := r.fields
	for ; fi < len(fields); fi++ {
		f := &fields[fi]
		if f.render != nil {
			dst = append(dst, '\t')
			var err error
			if dst, err = f.render(dst, i); err != nil {
				r.fi = fi
				return dst, err
			}
			continue
		}
		if !r.inValue {
			dst = append(dst, '\t')
		}
		v, null, err := f.value(i)
		if err != nil {
			r.fi = fi
			return dst, err
		}
		if null {
			dst = append(dst, '\\', 'N')
			continue
		}
		if len(v) <= tsvPiece && !r.inValue {
			dst = appendBytes(dst, v, r.enc) // the common case: short
			continue
		}
		r.inValue = true
		for r.voff < len(v) {
			if len(dst) >= tsvChunk {
				r.fi = fi
				return dst, nil // the rest of this value in the next fill
			}
			end := min(len(v), r.voff+tsvPiece)
			dst = appendBytes(dst, v[r.voff:end], r.enc)
			r.voff = end
		}
		r.inValue, r.voff = false, 0
	}
	r.inRow, r.fi = false, 0
	r.i++
	r.rows++
	return append(dst, '\n'), nil
}

// numbers is an Arrow integer column of element type T.
type numbers[T int32 | int64 | uint8 | uint16 | uint32 | uint64] interface {
	IsNull(i int) bool
	Value(i int) T
}

// intField renders a signed integer column in decimal, null as \N.
func intField[T int32 | int64](a numbers[T]) []field {
	return []field{{render: func(dst []byte, i int) ([]byte, error) {
		if a.IsNull(i) {
			return append(dst, '\\', 'N'), nil
		}
		return strconv.AppendInt(dst, int64(a.Value(i)), 10), nil
	}}}
}

// uintField renders an unsigned integer column in decimal, null as \N.
func uintField[T uint8 | uint16 | uint32 | uint64](a numbers[T]) []field {
	return []field{{render: func(dst []byte, i int) ([]byte, error) {
		if a.IsNull(i) {
			return append(dst, '\\', 'N'), nil
		}
		return strconv.AppendUint(dst, uint64(a.Value(i)), 10), nil
	}}}
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
			return []field{{render: dt}}, nil
		}
		ns := func(dst []byte, i int) ([]byte, error) {
			if d, ok := null(dst, i); ok {
				return d, nil
			}
			return strconv.AppendInt(dst, floorMod(int64(a.Value(i)), 1000), 10), nil
		}
		return []field{{render: dt}, {render: ns}}, nil
	case *array.Int32:
		return intField(a), nil
	case *array.Int64:
		return intField(a), nil
	case *array.Uint8:
		return uintField(a), nil
	case *array.Uint16:
		return uintField(a), nil
	case *array.Uint32:
		return uintField(a), nil
	case *array.Uint64:
		return uintField(a), nil
	case *array.Binary:
		return []field{{value: func(i int) ([]byte, bool, error) {
			if a.IsNull(i) {
				return nil, true, nil
			}
			return a.Value(i), false, nil
		}}}, nil
	case *array.Dictionary:
		return dictField(name, a, enc)
	}
	return nil, fmt.Errorf("%w: column %s has unsupported type %s", ErrDecode, name, a.DataType())
}

// maxDictCache bounds the bytes of a dictionary rendered ahead: a
// dictionary up to this size is rendered once and copied for every row that
// uses an entry; a larger one is escaped row by row, piece by piece.
const maxDictCache = 256 << 10

// dictField renders a dictionary column.
func dictField(name string, a *array.Dictionary, enc Encoding) ([]field, error) {
	dict := a.Dictionary()
	index := func(i int) (int, error) {
		k := a.GetValueIndex(i)
		if k < 0 || k >= dict.Len() {
			return 0, fmt.Errorf("%w: column %s: dictionary index %d of %d", ErrDecode, name, k, dict.Len())
		}
		return k, nil
	}
	switch d := dict.(type) {
	case *array.String:
		if !freeText[name] {
			// A small vocabulary: printable ASCII, checked per entry used;
			// rendered ahead when the dictionary is small.
			var rendered [][]byte
			if len(d.ValueBytes()) <= maxDictCache {
				rendered = make([][]byte, d.Len())
				for k := range rendered {
					if v := d.Value(k); printableASCII(v) {
						rendered[k] = appendBytes([]byte{}, []byte(v), Escaped)
					}
				}
			}
			return []field{{render: func(dst []byte, i int) ([]byte, error) {
				if a.IsNull(i) {
					return append(dst, '\\', 'N'), nil
				}
				k, err := index(i)
				if err != nil {
					return dst, err
				}
				if rendered != nil && rendered[k] != nil {
					return append(dst, rendered[k]...), nil
				}
				v := d.Value(k)
				if !printableASCII(v) {
					return dst, fmt.Errorf("%w: column %s: value %q is not printable ASCII", ErrDecode, name, v)
				}
				for j := 0; j < len(v); j++ { // printable ASCII: only \ to escape
					if v[j] == '\\' {
						dst = append(dst, '\\')
					}
					dst = append(dst, v[j])
				}
				return dst, nil
			}}}, nil
		}
		return bytesDictField(a, index, len(d.ValueBytes()), func(k int) []byte { return []byte(d.Value(k)) }, enc), nil
	case *array.Binary:
		return bytesDictField(a, index, len(d.ValueBytes()), d.Value, enc), nil
	}
	return nil, fmt.Errorf("%w: column %s: dictionary of %s", ErrDecode, name, dict.DataType())
}

// bytesDictField renders a dictionary of byte values of size bytes in all.
func bytesDictField(a *array.Dictionary, index func(int) (int, error), size int, value func(k int) []byte, enc Encoding) []field {
	if size > maxDictCache {
		return []field{{value: func(i int) ([]byte, bool, error) {
			if a.IsNull(i) {
				return nil, true, nil
			}
			k, err := index(i)
			if err != nil {
				return nil, false, err
			}
			return value(k), false, nil
		}}}
	}
	n := a.Dictionary().Len()
	rendered := make([][]byte, n)
	for k := range rendered {
		rendered[k] = appendBytes([]byte{}, value(k), enc)
	}
	return []field{{render: func(dst []byte, i int) ([]byte, error) {
		if a.IsNull(i) {
			return append(dst, '\\', 'N'), nil
		}
		k, err := index(i)
		if err != nil {
			return dst, err
		}
		return append(dst, rendered[k]...), nil
	}}}
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

// columnLimits are the bytes each byte or string column of an event table
// holds in SQL (001_tables.sql; a test compares them with the database). A
// longer value is refused before it is copied or sent (spool.ErrTooLong):
// MariaDB would only truncate it with a warning after receiving all of it.
var columnLimits = map[string]map[string]int64{
	"proc_events":  {"event": 16, "tty": 1024, "comm": 1024, "exe": 4096, "argv": 1<<24 - 1, "cwd": 4096, "cgroup": 4096, "container_id": 1024},
	"file_events":  {"op": 16, "path": 4096, "new_path": 4096},
	"sock_events":  {"event": 16, "proto": 8, "state": 16, "direction": 8, "local_addr": 16, "remote_addr": 16},
	"gaps":         {"source": 16, "reason": 1<<16 - 1},
	"accounts":     {"kind": 8, "name": 1024},
	"executables":  {"sha256": 32, "how": 8, "skip": 16, "path": 4096},
	"login_events": {"kind": 16, "file": 8, "tty": 32, "ut_id": 4, "user": 32, "remote_host": 256, "remote_addr": 16},
	"containers":   {"container_id": 1024, "runtime": 16, "name": 1024, "image": 4096, "pod": 1024, "namespace": 1024, "source": 4096, "error": 16},
	"dns_events":   {"event": 16, "proto": 8, "client_addr": 16, "server_addr": 16, "qname": 1024, "answers": 1<<16 - 1, "answer_addrs": 4096},
}

// maxValueBytes is columnLimits by event table name, for
// spool.VerifyOptions.MaxValueBytes.
func maxValueBytes(table, column string) int64 {
	ti, ok := infoOf(table)
	if !ok {
		return 0
	}
	return columnLimits[ti.sqlName][column]
}

// checkValues refuses a record with a value longer than its column holds
// (every row, and every dictionary entry), before anything is rendered.
func checkValues(ti tableInfo, rec arrow.RecordBatch) error {
	for j, f := range rec.Schema().Fields() {
		lim := columnLimits[ti.sqlName][f.Name]
		if lim == 0 {
			continue
		}
		tooLong := func(what string, n int) error {
			return fmt.Errorf("%w: %s.%s %s: %d bytes, the column holds %d", spool.ErrTooLong, ti.sqlName, f.Name, what, n, lim)
		}
		switch a := rec.Column(j).(type) {
		case *array.Binary:
			for i := 0; i < a.Len(); i++ {
				if n := a.ValueLen(i); int64(n) > lim && a.IsValid(i) {
					return tooLong(fmt.Sprintf("row %d", i), n)
				}
			}
		case *array.String:
			for i := 0; i < a.Len(); i++ {
				if n := a.ValueLen(i); int64(n) > lim && a.IsValid(i) {
					return tooLong(fmt.Sprintf("row %d", i), n)
				}
			}
		case *array.Dictionary:
			switch d := a.Dictionary().(type) {
			case *array.Binary:
				for k := 0; k < d.Len(); k++ {
					if n := d.ValueLen(k); int64(n) > lim {
						return tooLong(fmt.Sprintf("dictionary entry %d", k), n)
					}
				}
			case *array.String:
				for k := 0; k < d.Len(); k++ {
					if n := d.ValueLen(k); int64(n) > lim {
						return tooLong(fmt.Sprintf("dictionary entry %d", k), n)
					}
				}
			}
		}
	}
	return nil
}
