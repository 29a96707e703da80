package event

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// column describes one column of table R: its Arrow field, a new buffer for
// the column's values of appended records, and how to read a value back from
// an array.
type column[R any] struct {
	name     string
	typ      arrow.DataType
	nullable bool
	doc      string
	buf      func() colBuf[R]
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
)

func tsCol[R any](name, doc string, f func(*R) *int64) column[R] {
	return column[R]{name: name, typ: tsType, doc: doc,
		buf: func() colBuf[R] { return &numBuf[R, int64]{typ: tsType, f: f} },
		get: func(a arrow.Array, i int, r *R) { *f(r) = int64(a.(*array.Timestamp).Value(i)) },
	}
}

func optTSCol[R any](name, doc string, f func(*R) *Opt[int64]) column[R] {
	return column[R]{name: name, typ: tsType, nullable: true, doc: doc,
		buf: func() colBuf[R] { return &optBuf[R, int64]{typ: tsType, f: f} },
		get: func(a arrow.Array, i int, r *R) {
			if a.IsValid(i) {
				*f(r) = Some(int64(a.(*array.Timestamp).Value(i)))
			}
		},
	}
}

// num is a column of a fixed-width integer type that is never null.
func num[R any, T fixed](name string, typ arrow.DataType, doc string, f func(*R) *T) column[R] {
	return column[R]{name: name, typ: typ, doc: doc,
		buf: func() colBuf[R] { return &numBuf[R, T]{typ: typ, f: f} },
		get: func(a arrow.Array, i int, r *R) { *f(r) = numValue[T](a, i) },
	}
}

// optNum is a nullable integer column held in an Opt; get sets the field of
// a valid row and leaves it as it is for a null one.
func optNum[R any, T fixed](name string, typ arrow.DataType, doc string, f func(*R) *Opt[T]) column[R] {
	return column[R]{name: name, typ: typ, nullable: true, doc: doc,
		buf: func() colBuf[R] { return &optBuf[R, T]{typ: typ, f: f} },
		get: func(a arrow.Array, i int, r *R) {
			if a.IsValid(i) {
				*f(r) = Some(numValue[T](a, i))
			}
		},
	}
}

// idCol is a uint32 user, group or session id where NoID means null.
func idCol[R any](name, doc string, f func(*R) *uint32) column[R] {
	return column[R]{name: name, typ: uint32Type, nullable: true, doc: doc,
		buf: func() colBuf[R] { return &idBuf[R]{f: f} },
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
	return column[R]{name: name, typ: dictString, nullable: true, doc: doc,
		buf: func() colBuf[R] { return &dictStrBuf[R]{dict: newDict(dictString), f: f} },
		get: func(a arrow.Array, i int, r *R) {
			if a.IsValid(i) {
				d := a.(*array.Dictionary)
				*f(r) = d.Dictionary().(*array.String).Value(d.GetValueIndex(i))
			}
		},
	}
}

// dictBin is a dictionary-encoded byte column for names that repeat (comm,
// exe, cwd, paths). A nil slice is null; a non-nil empty slice is empty.
func dictBin[R any](name, doc string, f func(*R) *[]byte) column[R] {
	return column[R]{name: name, typ: dictBinary, nullable: true, doc: doc,
		buf: func() colBuf[R] { return &dictBinBuf[R]{dict: newDict(dictBinary), f: f} },
		get: func(a arrow.Array, i int, r *R) {
			if a.IsValid(i) {
				d := a.(*array.Dictionary)
				*f(r) = cloneBytes(d.Dictionary().(*array.Binary).Value(d.GetValueIndex(i)))
			}
		},
	}
}

// bin is a plain byte column for values that rarely repeat (argv, addresses).
// A nil slice is null; a non-nil empty slice is empty.
func bin[R any](name, doc string, f func(*R) *[]byte) column[R] {
	return column[R]{name: name, typ: binaryType, nullable: true, doc: doc,
		buf: func() colBuf[R] { return &binBuf[R]{bins: bins{typ: binaryType}, f: f} },
		get: func(a arrow.Array, i int, r *R) {
			if a.IsValid(i) {
				*f(r) = cloneBytes(a.(*array.Binary).Value(i))
			}
		},
	}
}

func notNil(b []byte) bool { return b != nil }

func cloneBytes(b []byte) []byte {
	return append(make([]byte, 0, len(b)), b...)
}

func numValue[T fixed](a arrow.Array, i int) T {
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
