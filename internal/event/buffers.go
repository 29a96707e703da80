package event

import (
	"bytes"
	"slices"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// The column buffers below hold a Builder's values in plain Go slices and
// hand them to Arrow as they are when the record is built. This is the
// collector's per-row path: an Arrow builder per column costs a capacity
// check, a validity-bitmap write and an interface conversion per value, and
// a dictionary builder hashes every value (xxh3) into its memo table; here a
// value is an append, and a dictionary column first compares with the value
// it appended last (the rows of one process repeat their exe, comm, cwd and
// cgroup) and then looks the bytes up in a Go map. The arrays built equal
// the ones Arrow's builders would build (same values, nulls and dictionary
// order: first seen first; TestBuilderMatchesArrow), so segments read as
// before; only buffer lengths beyond what the rows need may differ (a
// validity bitmap is ceil(rows/8) bytes here, a builder's capacity there).

// fixed is the value types of the integer and timestamp columns.
type fixed interface {
	int32 | int64 | uint8 | uint16 | uint32 | uint64
}

// colBuf holds one column's values of the records appended so far.
type colBuf[R any] interface {
	// put appends r's value.
	put(r *R)
	// array returns the values as an Arrow array (the caller releases it)
	// and starts the buffer again empty.
	array() arrow.Array
	// grow makes room for n more values (their bytes excepted).
	grow(n int)
}

// validity is a column's validity bitmap, kept only once a null was
// appended: until then every value is valid, and Arrow needs no bitmap.
type validity struct {
	bits  []byte // nil while nulls == 0
	nulls int
}

// set records whether value i (appended in order) is valid.
func (v *validity) set(i int, ok bool) {
	if ok && v.nulls == 0 {
		return
	}
	if v.bits == nil {
		// The first null: values 0 … i−1 were all valid.
		v.bits = make([]byte, i/8+1, max(64, 2*(i/8+1)))
		for j := range i / 8 {
			v.bits[j] = 0xff
		}
		v.bits[i/8] = byte(1)<<(i%8) - 1
	}
	for len(v.bits) <= i/8 {
		v.bits = append(v.bits, 0)
	}
	if ok {
		v.bits[i/8] |= 1 << (i % 8)
	} else {
		v.nulls++
	}
}

// buffer returns the bitmap of n values for Arrow (nil: no nulls) and
// starts again.
func (v *validity) buffer(n int) *memory.Buffer {
	if v.nulls == 0 {
		return nil
	}
	for len(v.bits) < (n+7)/8 {
		v.bits = append(v.bits, 0)
	}
	b := memory.NewBufferBytes(v.bits)
	*v = validity{}
	return b
}

// values is the storage of a fixed-width column.
type values[T fixed] struct {
	v []T
	validity
}

func (c *values[T]) grow(n int) { c.v = slices.Grow(c.v, n) }

func (c *values[T]) add(x T) {
	c.v = append(c.v, x)
	if c.nulls > 0 {
		c.set(len(c.v)-1, true)
	}
}

func (c *values[T]) addNull() {
	c.v = append(c.v, 0)
	c.set(len(c.v)-1, false)
}

// data returns the values as the array data of typ and starts again.
func (c *values[T]) data(typ arrow.DataType) arrow.ArrayData {
	n, nulls := len(c.v), c.nulls
	var raw []byte
	if n > 0 {
		raw = unsafe.Slice((*byte)(unsafe.Pointer(&c.v[0])), n*int(unsafe.Sizeof(c.v[0])))
	}
	d := array.NewData(typ, n, []*memory.Buffer{c.buffer(n), memory.NewBufferBytes(raw)}, nil, nulls, 0)
	c.v = nil // the array keeps the old slice
	return d
}

func arrayOf(d arrow.ArrayData) arrow.Array {
	a := array.MakeFromData(d)
	d.Release()
	return a
}

// numBuf is a never-null fixed-width column.
type numBuf[R any, T fixed] struct {
	values[T]
	typ arrow.DataType
	f   func(*R) *T
}

func (c *numBuf[R, T]) put(r *R)           { c.add(*c.f(r)) }
func (c *numBuf[R, T]) array() arrow.Array { return arrayOf(c.data(c.typ)) }

// optBuf is a fixed-width column held in an Opt.
type optBuf[R any, T fixed] struct {
	values[T]
	typ arrow.DataType
	f   func(*R) *Opt[T]
}

func (c *optBuf[R, T]) put(r *R) {
	if o := c.f(r); o.Valid {
		c.add(o.V)
	} else {
		c.addNull()
	}
}

func (c *optBuf[R, T]) array() arrow.Array { return arrayOf(c.data(c.typ)) }

// idBuf is a uint32 id column where NoID is null.
type idBuf[R any] struct {
	values[uint32]
	f func(*R) *uint32
}

func (c *idBuf[R]) put(r *R) {
	if v := *c.f(r); v != NoID {
		c.add(v)
	} else {
		c.addNull()
	}
}

func (c *idBuf[R]) array() arrow.Array { return arrayOf(c.data(uint32Type)) }

// bins is the storage of a variable-length column (binary or string).
type bins struct {
	typ     arrow.DataType
	offsets []int32 // len = values + 1 once a value was added
	bytes   []byte
	validity
}

func (c *bins) grow(n int) { c.offsets = slices.Grow(c.offsets, n+1) }

// n returns the number of values.
func (c *bins) n() int { return max(len(c.offsets)-1, 0) }

func (c *bins) add(b []byte, ok bool) {
	if len(c.offsets) == 0 {
		c.offsets = append(c.offsets, 0)
	}
	c.bytes = append(c.bytes, b...)
	c.offsets = append(c.offsets, int32(len(c.bytes)))
	c.set(c.n()-1, ok)
}

// value returns value i.
func (c *bins) value(i int32) []byte { return c.bytes[c.offsets[i]:c.offsets[i+1]] }

// data returns the values as array data and starts again.
func (c *bins) data() arrow.ArrayData {
	n, nulls := c.n(), c.nulls
	if len(c.offsets) == 0 {
		c.offsets = append(c.offsets, 0)
	}
	d := array.NewData(c.typ, n, []*memory.Buffer{c.buffer(n),
		memory.NewBufferBytes(unsafe.Slice((*byte)(unsafe.Pointer(&c.offsets[0])), 4*len(c.offsets))),
		memory.NewBufferBytes(c.bytes)}, nil, nulls, 0)
	c.offsets, c.bytes = nil, nil
	return d
}

// binBuf is a plain binary column: nil is null.
type binBuf[R any] struct {
	bins
	f func(*R) *[]byte
}

func (c *binBuf[R]) put(r *R) {
	b := *c.f(r)
	c.add(b, b != nil)
}

func (c *binBuf[R]) array() arrow.Array { return arrayOf(c.data()) }

// dict is the storage of a dictionary column: the indices, and the
// dictionary's values in the order they were first seen.
type dict struct {
	typ  *arrow.DictionaryType
	idx  values[int32]
	vals bins
	m    map[string]int32
	last int32 // index appended last, −1: none
}

func newDict(typ *arrow.DictionaryType) dict {
	return dict{typ: typ, vals: bins{typ: typ.ValueType}, m: map[string]int32{}, last: -1}
}

func (d *dict) grow(n int) { d.idx.grow(n) }

func (d *dict) add(b []byte) {
	if d.last >= 0 && bytes.Equal(d.vals.value(d.last), b) {
		d.idx.add(d.last)
		return
	}
	i, ok := d.m[string(b)]
	if !ok {
		i = int32(len(d.m))
		d.m[string(b)] = i
		d.vals.add(b, true)
	}
	d.last = i
	d.idx.add(i)
}

func (d *dict) array() arrow.Array {
	idx := arrayOf(d.idx.data(d.typ.IndexType))
	defer idx.Release()
	vals := arrayOf(d.vals.data())
	defer vals.Release()
	clear(d.m)
	d.last = -1
	return array.NewDictionaryArray(d.typ, idx, vals)
}

// dictStrBuf is a dictionary column of strings: "" is null.
type dictStrBuf[R any] struct {
	dict
	f func(*R) *string
}

func (c *dictStrBuf[R]) put(r *R) {
	if s := *c.f(r); s != "" {
		c.add(unsafe.Slice(unsafe.StringData(s), len(s)))
	} else {
		c.idx.addNull()
	}
}

// dictBinBuf is a dictionary column of bytes: nil is null.
type dictBinBuf[R any] struct {
	dict
	f func(*R) *[]byte
}

func (c *dictBinBuf[R]) put(r *R) {
	if b := *c.f(r); b != nil {
		c.add(b)
	} else {
		c.idx.addNull()
	}
}
