package event

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// column describes one column of table R: its Arrow field, how to append a
// record's value to a builder and how to read it back from an array.
type column[R any] struct {
	name     string
	typ      arrow.DataType
	nullable bool
	doc      string
	put      func(b array.Builder, r *R)
	get      func(a arrow.Array, i int, r *R)
	added    bool // appended after format 1's first writers: older members lack it (see Table.Check)
}

// added marks a nullable column appended to a table after segments without
// it were written: a member may end before it, and its rows read as null.
func added[R any](c column[R]) column[R] {
	if !c.nullable {
		panic("event: an added column must be nullable: " + c.name)
	}
	c.added = true
	return c
}

var (
	tsType     = &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}
	dictString = &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
	dictBinary = &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.Binary}
	binaryType = arrow.BinaryTypes.Binary
	int32Type  = arrow.PrimitiveTypes.Int32
	int64Type  = arrow.PrimitiveTypes.Int64
	uint8Type  = arrow.PrimitiveTypes.Uint8
	uint16Type = arrow.PrimitiveTypes.Uint16
	uint32Type = arrow.PrimitiveTypes.Uint32
	uint64Type = arrow.PrimitiveTypes.Uint64
	durationNS = &arrow.DurationType{Unit: arrow.Nanosecond}
	_          = durationNS
)

func tsCol[R any](name, doc string, f func(*R) *int64) column[R] {
	return column[R]{name: name, typ: tsType, doc: doc,
		put: func(b array.Builder, r *R) { b.(*array.TimestampBuilder).Append(arrow.Timestamp(*f(r))) },
		get: func(a arrow.Array, i int, r *R) { *f(r) = int64(a.(*array.Timestamp).Value(i)) },
	}
}

func optTSCol[R any](name, doc string, f func(*R) *Opt[int64]) column[R] {
	return nullable(name, tsType, doc, f, Opt[int64].present,
		func(b array.Builder, v Opt[int64]) { b.(*array.TimestampBuilder).Append(arrow.Timestamp(v.V)) },
		func(a arrow.Array, i int) Opt[int64] { return Some(int64(a.(*array.Timestamp).Value(i))) })
}

// nullable is a column whose value can be absent: put appends a present
// value with add and null otherwise; get sets the field of a valid row with
// read and leaves it as it is for a null one.
func nullable[R, V any](name string, typ arrow.DataType, doc string, f func(*R) *V, present func(V) bool,
	add func(b array.Builder, v V), read func(a arrow.Array, i int) V) column[R] {
	return column[R]{name: name, typ: typ, nullable: true, doc: doc,
		put: func(b array.Builder, r *R) {
			if v := *f(r); present(v) {
				add(b, v)
			} else {
				b.AppendNull()
			}
		},
		get: func(a arrow.Array, i int, r *R) {
			if a.IsValid(i) {
				*f(r) = read(a, i)
			}
		},
	}
}

// num is a column of a fixed-width integer type that is never null.
func num[R any, T int32 | int64 | uint8 | uint16 | uint32 | uint64](name string, typ arrow.DataType, doc string, f func(*R) *T) column[R] {
	return column[R]{name: name, typ: typ, doc: doc,
		put: func(b array.Builder, r *R) { appendNum(b, *f(r)) },
		get: func(a arrow.Array, i int, r *R) { *f(r) = numValue[T](a, i) },
	}
}

// optNum is a nullable integer column held in an Opt.
func optNum[R any, T int32 | int64 | uint8 | uint16 | uint32 | uint64](name string, typ arrow.DataType, doc string, f func(*R) *Opt[T]) column[R] {
	return nullable(name, typ, doc, f, Opt[T].present,
		func(b array.Builder, v Opt[T]) { appendNum(b, v.V) },
		func(a arrow.Array, i int) Opt[T] { return Some(numValue[T](a, i)) })
}

// idCol is a uint32 user, group or session id where NoID means null.
func idCol[R any](name, doc string, f func(*R) *uint32) column[R] {
	return column[R]{name: name, typ: uint32Type, nullable: true, doc: doc,
		put: func(b array.Builder, r *R) {
			if v := *f(r); v != NoID {
				b.(*array.Uint32Builder).Append(v)
			} else {
				b.AppendNull()
			}
		},
		get: func(a arrow.Array, i int, r *R) {
			if a.IsValid(i) {
				*f(r) = a.(*array.Uint32).Value(i)
			} else {
				*f(r) = NoID
			}
		},
	}
}

// dictStr is a dictionary-encoded string column of a small fixed vocabulary
// (event kinds, ops, states); "" is stored as null.
func dictStr[R any](name, doc string, f func(*R) *string) column[R] {
	return nullable(name, dictString, doc, f, func(v string) bool { return v != "" },
		func(b array.Builder, v string) { dictAppend(name, b.(*array.BinaryDictionaryBuilder).AppendString(v)) },
		func(a arrow.Array, i int) string {
			d := a.(*array.Dictionary)
			return d.Dictionary().(*array.String).Value(d.GetValueIndex(i))
		})
}

// dictBin is a dictionary-encoded byte column for names that repeat (comm,
// exe, cwd, paths). A nil slice is null; a non-nil empty slice is empty.
func dictBin[R any](name, doc string, f func(*R) *[]byte) column[R] {
	return nullable(name, dictBinary, doc, f, notNil,
		func(b array.Builder, v []byte) { dictAppend(name, b.(*array.BinaryDictionaryBuilder).Append(v)) },
		func(a arrow.Array, i int) []byte {
			d := a.(*array.Dictionary)
			return cloneBytes(d.Dictionary().(*array.Binary).Value(d.GetValueIndex(i)))
		})
}

// dictAppend panics with the error of a dictionary append: the builders
// fail only on a programming error (a value of the wrong type).
func dictAppend(name string, err error) {
	if err != nil {
		panic(fmt.Sprintf("event: dictionary append %s: %v", name, err))
	}
}

// bin is a plain byte column for values that rarely repeat (argv, addresses).
// A nil slice is null; a non-nil empty slice is empty.
func bin[R any](name, doc string, f func(*R) *[]byte) column[R] {
	return nullable(name, binaryType, doc, f, notNil,
		func(b array.Builder, v []byte) { b.(*array.BinaryBuilder).Append(v) },
		func(a arrow.Array, i int) []byte { return cloneBytes(a.(*array.Binary).Value(i)) })
}

func notNil(b []byte) bool { return b != nil }

func cloneBytes(b []byte) []byte {
	return append(make([]byte, 0, len(b)), b...)
}

func appendNum[T int32 | int64 | uint8 | uint16 | uint32 | uint64](b array.Builder, v T) {
	switch b := b.(type) {
	case *array.Int32Builder:
		b.Append(int32(v))
	case *array.Int64Builder:
		b.Append(int64(v))
	case *array.Uint8Builder:
		b.Append(uint8(v))
	case *array.Uint16Builder:
		b.Append(uint16(v))
	case *array.Uint32Builder:
		b.Append(uint32(v))
	case *array.Uint64Builder:
		b.Append(uint64(v))
	default:
		panic(fmt.Sprintf("event: no integer builder %T", b))
	}
}

func numValue[T int32 | int64 | uint8 | uint16 | uint32 | uint64](a arrow.Array, i int) T {
	switch a := a.(type) {
	case *array.Int32:
		return T(a.Value(i))
	case *array.Int64:
		return T(a.Value(i))
	case *array.Uint8:
		return T(a.Value(i))
	case *array.Uint16:
		return T(a.Value(i))
	case *array.Uint32:
		return T(a.Value(i))
	case *array.Uint64:
		return T(a.Value(i))
	default:
		panic(fmt.Sprintf("event: no integer array %T", a))
	}
}

// present reports o.Valid, for nullable.
func (o Opt[T]) present() bool { return o.Valid }
