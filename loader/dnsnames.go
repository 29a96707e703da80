package loader

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/pofr/pofr/internal/event"
)

// dnsNamesTable is the address-keyed form of dns_events' answers
// (schema/015_dns_names.sql), filled with the dns rows of each segment.
const dnsNamesTable = "dns_names"

// answerAddrs returns the addresses answer_addrs lists (",A,B,": upper-case
// hex between commas; a token counts only between two commas), 4 or 16
// bytes each, without repeats, appended to dst. Any other token is skipped:
// the same rule as the migration's SQL and as LOCATE(CONCAT(',', HEX(addr),
// ','), answer_addrs) > 0.
func answerAddrs(dst [][]byte, s []byte) [][]byte {
	first := len(dst)
	k := bytes.IndexByte(s, ',')
	if k < 0 {
		return dst
	}
	s = s[k+1:]
	for {
		j := bytes.IndexByte(s, ',')
		if j < 0 {
			return dst
		}
		tok := s[:j]
		s = s[j+1:]
		if (len(tok) != 8 && len(tok) != 32) || !upperHex(tok) {
			continue
		}
		a := make([]byte, len(tok)/2)
		hex.Decode(a, tok)
		dup := false
		for _, b := range dst[first:] {
			if bytes.Equal(a, b) {
				dup = true
				break
			}
		}
		if !dup {
			dst = append(dst, a)
		}
	}
}

func upperHex(b []byte) bool {
	for _, c := range b {
		if (c < '0' || c > '9') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}

// dnsNamesReader renders the dns_names rows of a dns record: for each
// response, one line per answer address (addr, ts, pid, proc_start, qname,
// row_no). Values are bounded (checkValues ran on the record: qname ≤ 1024,
// answer_addrs ≤ 4096 bytes), so a row's lines fit well within a chunk.
type dnsNamesReader struct {
	chunks
	n, i      int
	ts        *array.Timestamp
	event     func(i int) ([]byte, bool)
	pid       *array.Int32
	procStart *array.Int64
	qname     func(i int) ([]byte, bool)
	addrs     func(i int) ([]byte, bool)
	enc       Encoding
	lines     int64
	scratch   [][]byte
}

// newDNSNamesReader returns the reader over rec, a dns record whose schema
// has been checked (event.CheckSchema).
func newDNSNamesReader(rec arrow.RecordBatch, enc Encoding) (*dnsNamesReader, error) {
	r := &dnsNamesReader{n: int(rec.NumRows()), enc: enc}
	col := func(name string) arrow.Array {
		if i := rec.Schema().FieldIndices(name); len(i) == 1 {
			return rec.Column(i[0])
		}
		return nil
	}
	var ok1, ok2, ok3, ok4, ok5 bool
	r.ts, ok1 = col("ts").(*array.Timestamp)
	r.pid, ok2 = col("pid").(*array.Int32)
	r.procStart, ok3 = col("proc_start").(*array.Int64)
	r.event, ok4 = bytesColumnAt(col("event"))
	r.qname, ok5 = bytesColumnAt(col("qname"))
	var ok6 bool
	r.addrs, ok6 = bytesColumnAt(col("answer_addrs"))
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 {
		return nil, fmt.Errorf("%w: dns member: columns for %s", ErrDecode, dnsNamesTable)
	}
	return r, nil
}

// bytesColumnAt returns a getter of the bytes of a binary, string or
// dictionary column (null reported as false).
func bytesColumnAt(a arrow.Array) (func(i int) ([]byte, bool), bool) {
	switch a := a.(type) {
	case *array.Binary:
		return func(i int) ([]byte, bool) { return a.Value(i), a.IsValid(i) }, true
	case *array.String:
		return func(i int) ([]byte, bool) { return []byte(a.Value(i)), a.IsValid(i) }, true
	case *array.Dictionary:
		var value func(k int) []byte
		switch d := a.Dictionary().(type) {
		case *array.Binary:
			value = d.Value
		case *array.String:
			value = func(k int) []byte { return []byte(d.Value(k)) }
		default:
			return nil, false
		}
		n := a.Dictionary().Len()
		return func(i int) ([]byte, bool) {
			if a.IsNull(i) {
				return nil, false
			}
			k := a.GetValueIndex(i)
			if k < 0 || k >= n {
				return nil, false
			}
			return value(k), true
		}, true
	}
	return nil, false
}

// Read implements io.Reader.
func (r *dnsNamesReader) Read(p []byte) (int, error) {
	return r.read(p, func() bool { return r.i < r.n }, r.fill)
}

func (r *dnsNamesReader) fill() {
	if r.buf == nil {
		r.buf = make([]byte, 0, tsvChunk+256<<10)
	}
	r.buf, r.off = r.buf[:0], 0
	for r.i < r.n && len(r.buf) < tsvChunk {
		r.buf, r.err = r.appendRow(r.buf, r.i)
		if r.err != nil {
			r.buf = r.buf[:0]
			return
		}
		r.i++
	}
}

// appendRow appends the lines of dns row i.
func (r *dnsNamesReader) appendRow(dst []byte, i int) ([]byte, error) {
	if ev, ok := r.event(i); !ok || string(ev) != "response" {
		return dst, nil
	}
	s, ok := r.addrs(i)
	if !ok {
		return dst, nil
	}
	r.scratch = answerAddrs(r.scratch[:0], s)
	if len(r.scratch) == 0 {
		return dst, nil
	}
	// The fields after addr are the same on every line of the row.
	mark := len(dst)
	dst = append(dst, '\t')
	if r.ts.IsNull(i) {
		return dst, fmt.Errorf("%w: dns row %d: null ts", ErrDecode, i)
	}
	dst, _ = appendDatetime(dst, int64(r.ts.Value(i)), "ts")
	dst = append(dst, '\t')
	if r.pid.IsNull(i) {
		dst = append(dst, '\\', 'N')
	} else {
		dst = strconv.AppendInt(dst, int64(r.pid.Value(i)), 10)
	}
	dst = append(dst, '\t')
	if r.procStart.IsNull(i) {
		dst = append(dst, '\\', 'N')
	} else {
		dst = strconv.AppendInt(dst, r.procStart.Value(i), 10)
	}
	dst = append(dst, '\t')
	if q, ok := r.qname(i); ok {
		dst = appendBytes(dst, q, r.enc)
	} else {
		dst = append(dst, '\\', 'N')
	}
	dst = append(dst, '\t')
	dst = strconv.AppendInt(dst, int64(i), 10)
	dst = append(dst, '\n')
	tail := string(dst[mark:])
	dst = dst[:mark]
	for _, a := range r.scratch {
		dst = appendBytes(dst, a, r.enc)
		dst = append(dst, tail...)
		r.lines++
	}
	return dst, nil
}

// dnsNamesStatement is the LOAD DATA statement for a dnsNamesReader
// registered as name.
func dnsNamesStatement(enc Encoding, name string, c segConsts) string {
	addr, qname, sets := "addr", "qname", ""
	if enc == Hex {
		addr, qname, sets = "@a", "@q", "addr = UNHEX(@a), qname = UNHEX(@q), "
	}
	return "LOAD DATA LOCAL INFILE 'Reader::" + name + "' INTO TABLE " + dnsNamesTable +
		" CHARACTER SET binary FIELDS TERMINATED BY '\\t' ENCLOSED BY '' ESCAPED BY '\\\\'" +
		" LINES STARTING BY '' TERMINATED BY '\\n' (" + addr + ", ts, pid, proc_start, " + qname + ", row_no) SET " + sets +
		"segment_id = " + strconv.FormatUint(c.SegmentID, 10) +
		", host_id = '" + c.HostID + "', boot_id = X'" + hex.EncodeToString([]byte(c.BootID)) + "'"
}

// loadDNSNames fills dns_names from seg's dns rows (already loaded into
// dns_events in tx) and checks that every line went in.
func (w *worker) loadDNSNames(ctx context.Context, tx *sql.Tx, seg *segment, c segConsts) error {
	rec, err := seg.record(event.TableDNS)
	if err != nil {
		return err
	}
	r, err := newDNSNamesReader(rec, w.l.opt.Encoding)
	if err != nil {
		return err
	}
	n, err := loadStream(ctx, tx, dnsNamesTable, r, func() error { return r.err }, func(name string) string {
		return dnsNamesStatement(w.l.opt.Encoding, name, c)
	})
	if err != nil {
		return err
	}
	if n != r.lines {
		return fmt.Errorf("%w: %s: database took %d rows of %d", ErrRejected, dnsNamesTable, n, r.lines)
	}
	return nil
}
