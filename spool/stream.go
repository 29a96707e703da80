package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// scanStream checks the framing of one Arrow IPC stream member before any
// Arrow code sees it, so that no length taken from hostile bytes can make the
// Arrow reader or the zstd decoder allocate more than the limits allow:
//
//   - messages are 0xFFFFFFFF, int32 metadata length, Message flatbuffer,
//     body; metadata length ≤ 1 MiB and body length ≤ the bytes left;
//   - a Schema message, then dictionary batches (no deltas, distinct ids),
//     then exactly one record batch, then the end-of-stream marker, and not
//     one byte more;
//   - every batch is ZSTD-compressed per buffer; every buffer lies inside
//     its body; each declares its decompressed size, and their sum over the
//     segment stays within budget; each compressed buffer is exactly one zstd
//     frame without dictionary, with a window ≤ MaxZstdWindow and, when the
//     frame states its content size, the declared size;
//   - with lim.value, the values buffer of every binary or string column
//     (of the record batch, or of the dictionary batch that a column uses)
//     decompresses to at most its rows times the column's limit
//     (ErrTooLong): no value longer than a column allows is ever expanded.
//
// table names the member's table, for lim.value. It returns the record
// batch's row count.
func scanStream(b []byte, table string, lim *limits, budget *int64) (rows int64, err error) {
	const (
		maxMeta      = 1 << 20
		v5           = 4 // MetadataVersion V5
		typSchema    = 1
		typDict      = 2
		typRecord    = 3
		codecZSTD    = 1
		methodBuffer = 0
	)
	pos := 0
	seenRecord := false
	dictIDs := map[int64]bool{}
	var fields []fbField
	for n := 0; ; n++ {
		if len(b)-pos < 8 {
			return 0, fmt.Errorf("message %d at byte %d: truncated", n, pos)
		}
		if binary.LittleEndian.Uint32(b[pos:]) != 0xFFFFFFFF {
			return 0, fmt.Errorf("message %d at byte %d: no continuation marker", n, pos)
		}
		metaLen := int(binary.LittleEndian.Uint32(b[pos+4:]))
		pos += 8
		if metaLen == 0 { // end of stream
			if !seenRecord {
				return 0, errors.New("stream ends without a record batch")
			}
			if pos != len(b) {
				return 0, fmt.Errorf("%d bytes after the end-of-stream marker", len(b)-pos)
			}
			return rows, nil
		}
		if metaLen > maxMeta || metaLen > len(b)-pos {
			return 0, fmt.Errorf("message %d: metadata length %d exceeds the member", n, metaLen)
		}
		fb := flatbuf(b[pos : pos+metaLen])
		pos += metaLen
		msg, err := fb.root()
		if err != nil {
			return 0, fmt.Errorf("message %d: %w", n, err)
		}
		version, err := fb.scalar(msg, 0, 2)
		if err != nil || version != v5 {
			return 0, fmt.Errorf("message %d: metadata version %d, want V5", n, version)
		}
		typ, err := fb.scalar(msg, 1, 1)
		if err != nil {
			return 0, fmt.Errorf("message %d: %w", n, err)
		}
		bodyLen, err := fb.scalar(msg, 3, 8)
		if err != nil {
			return 0, fmt.Errorf("message %d: %w", n, err)
		}
		if bodyLen < 0 || bodyLen > int64(len(b)-pos) {
			return 0, fmt.Errorf("message %d: body length %d exceeds the member", n, bodyLen)
		}
		body := b[pos : pos+int(bodyLen)]
		pos += int(bodyLen)

		if err := checkKeyValues(fb, msg, 4); err != nil {
			return 0, fmt.Errorf("message %d: custom metadata: %w", n, err)
		}

		switch {
		case n == 0:
			if typ != typSchema {
				return 0, errors.New("stream does not start with a schema")
			}
			schema, err := fb.table(msg, 2)
			if err != nil {
				return 0, fmt.Errorf("schema: %w", err)
			}
			if err := checkSchemaFB(fb, schema); err != nil {
				return 0, fmt.Errorf("schema: %w", err)
			}
			fields = schemaFields(fb, schema)
			continue
		case seenRecord:
			return 0, fmt.Errorf("message %d: more than one record batch", n)
		case typ == typDict:
			dict, err := fb.table(msg, 2)
			if err != nil {
				return 0, fmt.Errorf("message %d: %w", n, err)
			}
			id, err := fb.scalar(dict, 0, 8)
			if err != nil {
				return 0, fmt.Errorf("message %d: %w", n, err)
			}
			delta, err := fb.scalar(dict, 2, 1)
			if err != nil || delta != 0 {
				return 0, fmt.Errorf("message %d: dictionary delta", n)
			}
			if dictIDs[id] {
				return 0, fmt.Errorf("message %d: dictionary %d twice", n, id)
			}
			dictIDs[id] = true
			data, err := fb.table(dict, 1)
			if err != nil {
				return 0, fmt.Errorf("message %d: %w", n, err)
			}
			var vl []valueLimit
			for _, f := range fields {
				if f.dict && f.dictID == id && f.bytes {
					// One column: validity, offsets, values.
					vl = append(vl, valueLimit{buffer: 2, column: f.name, max: lim.maxValue(table, f.name)})
					break
				}
			}
			if _, err := scanBatch(fb, data, body, lim, budget, vl, 0); err != nil {
				return 0, fmt.Errorf("message %d (dictionary %d): %w", n, id, err)
			}
		case typ == typRecord:
			rb, err := fb.table(msg, 2)
			if err != nil {
				return 0, fmt.Errorf("message %d: %w", n, err)
			}
			var vl []valueLimit
			buf := 0
			for _, f := range fields {
				switch {
				case f.dict: // validity, indices
					buf += 2
				case f.bytes: // validity, offsets, values
					vl = append(vl, valueLimit{buffer: buf + 2, column: f.name, max: lim.maxValue(table, f.name)})
					buf += 3
				default: // validity, values
					buf += 2
				}
			}
			if rows, err = scanBatch(fb, rb, body, lim, budget, vl, buf); err != nil {
				return 0, fmt.Errorf("message %d (record batch): %w", n, err)
			}
			seenRecord = true
		default:
			return 0, fmt.Errorf("message %d: unexpected message type %d", n, typ)
		}
	}
}

// valueLimit bounds the values buffer (by index) of one column of a batch.
type valueLimit struct {
	buffer int
	column string
	max    int64 // longest value accepted; 0: none
}

// maxValue returns the caller's limit for a column, 0 if none.
func (l *limits) maxValue(table, column string) int64 {
	if l.value == nil {
		return 0
	}
	return max(l.value(table, column), 0)
}

// scanBatch checks a RecordBatch table (of a record or dictionary batch) and
// its body, charging decompressed sizes to budget and checking the values
// buffers of vl against their batch's length times their limit. A record
// batch must have exactly wantBufs buffers (the layout vl was computed
// from); 0 skips that check.
func scanBatch(fb flatbuf, rb int, body []byte, lim *limits, budget *int64, vl []valueLimit, wantBufs int) (int64, error) {
	length, err := fb.scalar(rb, 0, 8)
	if err != nil {
		return 0, err
	}
	if length < 0 || length > lim.rows {
		return 0, fmt.Errorf("%w: batch of %d rows, limit %d", ErrTooLarge, length, lim.rows)
	}
	nodes, nNodes, err := fb.vector(rb, 1, 16)
	if err != nil {
		return 0, err
	}
	for i := 0; i < nNodes; i++ {
		nl := int64(binary.LittleEndian.Uint64(fb[nodes+16*i:]))
		nulls := int64(binary.LittleEndian.Uint64(fb[nodes+16*i+8:]))
		if nl != length || nulls < 0 || nulls > nl {
			return 0, fmt.Errorf("field node %d: length %d, nulls %d in a batch of %d", i, nl, nulls, length)
		}
	}
	comp, err := fb.table(rb, 3)
	if err != nil {
		return 0, errors.New("batch is not compressed")
	}
	codec, err1 := fb.scalar(comp, 0, 1)
	method, err2 := fb.scalar(comp, 1, 1)
	if err1 != nil || err2 != nil || codec != 1 || method != 0 {
		return 0, fmt.Errorf("compression codec %d method %d, want ZSTD per buffer", codec, method)
	}
	bufs, nBufs, err := fb.vector(rb, 2, 16)
	if err != nil {
		return 0, err
	}
	if wantBufs > 0 && nBufs != wantBufs {
		return 0, fmt.Errorf("%d buffers, the schema has %d", nBufs, wantBufs)
	}
	for i := 0; i < nBufs; i++ {
		off := int64(binary.LittleEndian.Uint64(fb[bufs+16*i:]))
		n := int64(binary.LittleEndian.Uint64(fb[bufs+16*i+8:]))
		if off < 0 || n < 0 || off > int64(len(body)) || n > int64(len(body))-off {
			return 0, fmt.Errorf("buffer %d (offset %d, length %d) outside a body of %d bytes", i, off, n, len(body))
		}
		if n == 0 {
			continue
		}
		if n < 8 {
			return 0, fmt.Errorf("buffer %d: %d bytes, no size prefix", i, n)
		}
		buf := body[off : off+n]
		size := int64(binary.LittleEndian.Uint64(buf))
		if size == -1 { // stored uncompressed
			size = n - 8
		} else if err := checkZstdFrame(buf[8:], size); err != nil {
			return 0, fmt.Errorf("buffer %d: %w", i, err)
		}
		for _, v := range vl {
			if v.buffer == i && v.max > 0 && size > length*v.max {
				return 0, fmt.Errorf("%w: column %s: %d rows hold %d bytes of values, so at least one is longer than the %d bytes accepted",
					ErrTooLong, v.column, length, size, v.max)
			}
		}
		if size < 0 || size > *budget {
			return 0, fmt.Errorf("%w: buffer %d decompresses to %d bytes, %d left of the decoded-size limit", ErrTooLarge, i, size, *budget)
		}
		*budget -= size
	}
	if _, n, err := fb.vector(rb, 4, 8); err != nil || n != 0 {
		return 0, errors.New("variadic buffer counts in a schema without view types")
	}
	return length, nil
}

// checkSchemaFB walks a Schema table. Arrow's schema decoder trusts the
// FlatBuffers it reads and sizes slices by their vector lengths; here every
// vector, table and string it will touch is checked to lie inside the
// metadata, nested types are refused, and only the types pofr's schemas use
// (Int, Binary, Utf8, Timestamp, with Int dictionary indices) are allowed.
func checkSchemaFB(fb flatbuf, schema int) error {
	const (
		typeInt       = 2
		typeBinary    = 4
		typeUtf8      = 5
		typeTimestamp = 10
		maxFields     = 256
	)
	fields, n, err := fb.vector(schema, 1, 4)
	if err != nil {
		return err
	}
	if n > maxFields {
		return fmt.Errorf("%d fields", n)
	}
	for i := 0; i < n; i++ {
		f, err := fb.indirect(fields + 4*i)
		if err != nil {
			return fmt.Errorf("field %d: %w", i, err)
		}
		if err := fb.str(f, 0); err != nil {
			return fmt.Errorf("field %d: name: %w", i, err)
		}
		typ, err := fb.scalar(f, 2, 1)
		if err != nil {
			return fmt.Errorf("field %d: %w", i, err)
		}
		t, err := fb.table(f, 3)
		if err != nil {
			return fmt.Errorf("field %d: type: %w", i, err)
		}
		switch typ {
		case typeInt, typeBinary, typeUtf8:
		case typeTimestamp:
			if err := fb.str(t, 1); err != nil {
				return fmt.Errorf("field %d: timezone: %w", i, err)
			}
		default:
			return fmt.Errorf("field %d: type %d is not used by pofr", i, typ)
		}
		if p, err := fb.field(f, 4); err != nil {
			return fmt.Errorf("field %d: %w", i, err)
		} else if p != 0 {
			d, err := fb.table(f, 4)
			if err != nil {
				return fmt.Errorf("field %d: dictionary: %w", i, err)
			}
			if p, err := fb.field(d, 1); err != nil || p == 0 {
				return fmt.Errorf("field %d: dictionary without index type", i)
			}
			if _, err := fb.table(d, 1); err != nil {
				return fmt.Errorf("field %d: dictionary index type: %w", i, err)
			}
		}
		if _, nc, err := fb.vector(f, 5, 4); err != nil || nc != 0 {
			return fmt.Errorf("field %d: nested type", i)
		}
		if err := checkKeyValues(fb, f, 6); err != nil {
			return fmt.Errorf("field %d: metadata: %w", i, err)
		}
	}
	if err := checkKeyValues(fb, schema, 2); err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	_, _, err = fb.vector(schema, 3, 8)
	return err
}

// fbField is what scanStream needs of one schema field.
type fbField struct {
	name   string
	bytes  bool  // Binary or Utf8 values (of the column, or of its dictionary)
	dict   bool  // dictionary-encoded
	dictID int64 // its dictionary's id
}

// schemaFields lists the fields of a Schema table that checkSchemaFB
// accepted.
func schemaFields(fb flatbuf, schema int) []fbField {
	const typeBinary, typeUtf8 = 4, 5
	fields, n, _ := fb.vector(schema, 1, 4)
	out := make([]fbField, 0, n)
	for i := 0; i < n; i++ {
		f, _ := fb.indirect(fields + 4*i)
		typ, _ := fb.scalar(f, 2, 1)
		ff := fbField{name: fb.getStr(f, 0), bytes: typ == typeBinary || typ == typeUtf8}
		if p, _ := fb.field(f, 4); p != 0 {
			d, _ := fb.table(f, 4)
			ff.dict = true
			ff.dictID, _ = fb.scalar(d, 0, 8)
		}
		out = append(out, ff)
	}
	return out
}

// checkKeyValues checks the vector of KeyValue tables in field i of t.
func checkKeyValues(fb flatbuf, t, i int) error {
	kvs, n, err := fb.vector(t, i, 4)
	if err != nil {
		return err
	}
	for j := 0; j < n; j++ {
		kv, err := fb.indirect(kvs + 4*j)
		if err != nil {
			return err
		}
		if err := fb.str(kv, 0); err != nil {
			return err
		}
		if err := fb.str(kv, 1); err != nil {
			return err
		}
	}
	return nil
}

// checkZstdFrame checks that b is exactly one zstd frame (RFC 8878) that
// declares a window of at most MaxZstdWindow, no dictionary, and, if it
// states its content size, size. It walks the block headers without
// decoding anything.
func checkZstdFrame(b []byte, size int64) error {
	if len(b) < 6 || binary.LittleEndian.Uint32(b) != 0xFD2FB528 {
		return errors.New("not a zstd frame")
	}
	fhd := b[4]
	fcsFlag := fhd >> 6
	single := fhd&0x20 != 0
	checksum := fhd&0x04 != 0
	if fhd&0x08 != 0 || fhd&0x03 != 0 {
		return errors.New("zstd frame: reserved bit or dictionary id set")
	}
	p := 5
	var window uint64
	if !single {
		wd := b[p]
		p++
		log := uint(10 + wd>>3)
		base := uint64(1) << log
		window = base + base/8*uint64(wd&7)
	}
	fcsLen := [4]int{0, 2, 4, 8}[fcsFlag]
	if single && fcsFlag == 0 {
		fcsLen = 1
	}
	if len(b)-p < fcsLen {
		return errors.New("zstd frame header truncated")
	}
	if fcsLen > 0 {
		var fcs uint64
		switch fcsLen {
		case 1:
			fcs = uint64(b[p])
		case 2:
			fcs = uint64(binary.LittleEndian.Uint16(b[p:])) + 256
		case 4:
			fcs = uint64(binary.LittleEndian.Uint32(b[p:]))
		case 8:
			fcs = binary.LittleEndian.Uint64(b[p:])
		}
		p += fcsLen
		if fcs != uint64(size) {
			return fmt.Errorf("zstd frame content size %d, buffer declares %d", fcs, size)
		}
		if single {
			window = fcs
		}
	}
	if window > MaxZstdWindow {
		return fmt.Errorf("%w: zstd window %d, limit %d", ErrTooLarge, window, MaxZstdWindow)
	}
	blockMax := min(window, 128<<10)
	for {
		if len(b)-p < 3 {
			return errors.New("zstd block header truncated")
		}
		h := uint32(b[p]) | uint32(b[p+1])<<8 | uint32(b[p+2])<<16
		p += 3
		last := h&1 != 0
		bsize := uint64(h >> 3)
		var n uint64
		switch (h >> 1) & 3 {
		case 0, 2: // raw, compressed
			n = bsize
		case 1: // RLE
			n = 1
		default:
			return errors.New("zstd reserved block type")
		}
		if bsize > blockMax {
			return fmt.Errorf("zstd block of %d bytes, maximum %d", bsize, blockMax)
		}
		if uint64(len(b)-p) < n {
			return errors.New("zstd block truncated")
		}
		p += int(n)
		if last {
			break
		}
	}
	if checksum {
		p += 4
	}
	if p != len(b) {
		return fmt.Errorf("zstd frame: %d bytes missing or after the frame", len(b)-p)
	}
	return nil
}

// flatbuf is a bounds-checked reader of the few FlatBuffers tables scanStream
// needs. Positions are byte offsets into the buffer; every read is checked.
type flatbuf []byte

var errFB = errors.New("malformed flatbuffer")

func (f flatbuf) u32(p int) (int, error) {
	if p < 0 || p > len(f)-4 {
		return 0, errFB
	}
	return int(binary.LittleEndian.Uint32(f[p:])), nil
}

func (f flatbuf) root() (int, error) {
	off, err := f.u32(0)
	if err != nil {
		return 0, err
	}
	return off, f.checkTable(off)
}

func (f flatbuf) checkTable(t int) error {
	if t < 0 || t > len(f)-4 {
		return errFB
	}
	vt := t - int(int32(binary.LittleEndian.Uint32(f[t:])))
	if vt < 0 || vt > len(f)-4 {
		return errFB
	}
	vtLen := int(binary.LittleEndian.Uint16(f[vt:]))
	if vtLen < 4 || vtLen%2 != 0 || vt+vtLen > len(f) {
		return errFB
	}
	return nil
}

// field returns the absolute position of field i of table t, 0 if absent.
func (f flatbuf) field(t, i int) (int, error) {
	vt := t - int(int32(binary.LittleEndian.Uint32(f[t:])))
	vtLen := int(binary.LittleEndian.Uint16(f[vt:]))
	tLen := int(binary.LittleEndian.Uint16(f[vt+2:]))
	slot := 4 + 2*i
	if slot+2 > vtLen {
		return 0, nil
	}
	o := int(binary.LittleEndian.Uint16(f[vt+slot:]))
	if o == 0 {
		return 0, nil
	}
	if o >= tLen || t+o > len(f) {
		return 0, errFB
	}
	return t + o, nil
}

// scalar reads field i of table t as a little-endian signed integer of
// width bytes; an absent field reads as 0 (every default used here is 0).
func (f flatbuf) scalar(t, i, width int) (int64, error) {
	p, err := f.field(t, i)
	if err != nil || p == 0 {
		return 0, err
	}
	if p > len(f)-width {
		return 0, errFB
	}
	switch width {
	case 1:
		return int64(int8(f[p])), nil
	case 2:
		return int64(int16(binary.LittleEndian.Uint16(f[p:]))), nil
	case 4:
		return int64(int32(binary.LittleEndian.Uint32(f[p:]))), nil
	default:
		return int64(binary.LittleEndian.Uint64(f[p:])), nil
	}
}

// table follows the offset in field i of table t to a sub-table; an absent
// field is an error.
func (f flatbuf) table(t, i int) (int, error) {
	p, err := f.field(t, i)
	if err != nil {
		return 0, err
	}
	if p == 0 {
		return 0, errFB
	}
	off, err := f.u32(p)
	if err != nil {
		return 0, err
	}
	sub := p + off
	return sub, f.checkTable(sub)
}

// indirect follows the offset stored at p to a table.
func (f flatbuf) indirect(p int) (int, error) {
	off, err := f.u32(p)
	if err != nil {
		return 0, err
	}
	return p + off, f.checkTable(p + off)
}

// str checks the optional string in field i of table t.
func (f flatbuf) str(t, i int) error {
	p, err := f.field(t, i)
	if err != nil || p == 0 {
		return err
	}
	off, err := f.u32(p)
	if err != nil {
		return err
	}
	n, err := f.u32(p + off)
	if err != nil {
		return err
	}
	if n > len(f)-(p+off+4) {
		return errFB
	}
	return nil
}

// getStr returns the string in field i of table t, which str has checked
// ("" if absent).
func (f flatbuf) getStr(t, i int) string {
	p, err := f.field(t, i)
	if err != nil || p == 0 {
		return ""
	}
	off, _ := f.u32(p)
	n, _ := f.u32(p + off)
	start := p + off + 4
	if start+n > len(f) {
		return ""
	}
	return string(f[start : start+n])
}

// vector follows field i of table t to a vector of elem-byte structs and
// returns the position of its first element and its length; an absent
// field is an empty vector.
func (f flatbuf) vector(t, i, elem int) (start, n int, err error) {
	p, err := f.field(t, i)
	if err != nil || p == 0 {
		return 0, 0, err
	}
	off, err := f.u32(p)
	if err != nil {
		return 0, 0, err
	}
	v := p + off
	n, err = f.u32(v)
	if err != nil {
		return 0, 0, err
	}
	start = v + 4
	if n > (len(f)-start)/elem {
		return 0, 0, errFB
	}
	return start, n, nil
}
