package event

import (
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// ErrSchema reports a record batch whose schema is not the table's schema.
var ErrSchema = errors.New("event: schema mismatch")

// Table is one table's schema and its mapping to the Go record type R.
type Table[R any] struct {
	// Name is the table name (proc, file, sock, gap, acct, exe, dns).
	Name string
	// Schema is the Arrow schema of the table's segment member. Column
	// documentation is not in it (see Docs): in every segment it would cost
	// more bytes than an idle host's rows.
	Schema *arrow.Schema

	cols    []column[R]
	minCols int // columns before the first added one: what the oldest writers wrote
}

// The tables.
var (
	ProcTable  = newTable(TableProc, procColumns)
	FileTable  = newTable(TableFile, fileColumns)
	SockTable  = newTable(TableSock, sockColumns)
	GapTable   = newTable(TableGap, gapColumns)
	AcctTable  = newTable(TableAcct, acctColumns)
	ExeTable   = newTable(TableExe, exeColumns)
	DNSTable   = newTable(TableDNS, dnsColumns)
	LoginTable = newTable(TableLogin, loginColumns)
	CtrTable   = newTable(TableCtr, ctrColumns)
)

// ErrUnknownTable reports a table name that is not one of [Tables].
var ErrUnknownTable = errors.New("event: unknown table")

// byName gives the schema and the check of each table to callers that hold
// its name rather than its record type.
var byName = map[string]struct {
	schema *arrow.Schema
	check  func(*arrow.Schema) error
}{
	TableProc:  {ProcTable.Schema, ProcTable.Check},
	TableFile:  {FileTable.Schema, FileTable.Check},
	TableSock:  {SockTable.Schema, SockTable.Check},
	TableGap:   {GapTable.Schema, GapTable.Check},
	TableAcct:  {AcctTable.Schema, AcctTable.Check},
	TableExe:   {ExeTable.Schema, ExeTable.Check},
	TableDNS:   {DNSTable.Schema, DNSTable.Check},
	TableLogin: {LoginTable.Schema, LoginTable.Check},
	TableCtr:   {CtrTable.Schema, CtrTable.Check},
}

// Pad returns rec, which must have passed CheckSchema for table, with the
// table's full schema: the columns an older writer did not write are added
// as all-null arrays. It returns rec itself (not retained again) when
// nothing is missing; otherwise a new batch the caller must Release, and
// rec is left as it was.
func Pad(table string, rec arrow.RecordBatch) arrow.RecordBatch {
	schema := SchemaOf(table)
	if schema == nil || int(rec.NumCols()) >= schema.NumFields() {
		return rec
	}
	cols := append([]arrow.Array(nil), rec.Columns()...)
	for j := len(cols); j < schema.NumFields(); j++ {
		a := array.MakeArrayOfNull(memory.DefaultAllocator, schema.Field(j).Type, int(rec.NumRows()))
		defer a.Release()
		cols = append(cols, a)
	}
	return array.NewRecordBatch(schema, cols, rec.NumRows())
}

// SchemaOf returns the schema of the named table, or nil if there is none.
func SchemaOf(table string) *arrow.Schema { return byName[table].schema }

// CheckSchema is [Table.Check] for the named table; a name that is not one
// of [Tables] gives an error wrapping ErrUnknownTable.
func CheckSchema(table string, s *arrow.Schema) error {
	t, ok := byName[table]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownTable, table)
	}
	return t.check(s)
}

// ColumnDoc documents one column.
type ColumnDoc struct {
	Name     string
	Type     string
	Nullable bool
	Doc      string
}

// Docs returns the documentation of every column of the table, in order.
func (t *Table[R]) Docs() []ColumnDoc {
	out := make([]ColumnDoc, len(t.cols))
	for i, c := range t.cols {
		out[i] = ColumnDoc{Name: c.name, Type: c.typ.String(), Nullable: c.nullable, Doc: c.doc}
	}
	return out
}

func newTable[R any](name string, cols []column[R]) *Table[R] {
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		fields[i] = arrow.Field{
			Name:     c.name,
			Type:     c.typ,
			Nullable: c.nullable,
		}
	}
	minCols := len(cols)
	for minCols > 0 && cols[minCols-1].added {
		minCols--
	}
	for _, c := range cols[:minCols] {
		if c.added {
			panic("event: added column " + c.name + " before an original one in " + name)
		}
	}
	return &Table[R]{Name: name, Schema: arrow.NewSchema(fields, nil), cols: cols, minCols: minCols}
}

// Builder accumulates records of one table, column by column, for one
// Arrow record batch. It is not safe for concurrent use.
type Builder[R any] struct {
	t    *Table[R]
	cols []colBuf[R]
	n    int
}

// NewBuilder returns an empty builder. Its values live on the Go heap
// whatever mem is (the parameter is kept for callers that name an
// allocator).
func (t *Table[R]) NewBuilder(mem memory.Allocator) *Builder[R] {
	b := &Builder[R]{t: t, cols: make([]colBuf[R], len(t.cols))}
	for i, c := range t.cols {
		b.cols[i] = c.buf()
	}
	return b
}

// Grow makes room for n more records, so that appending them does not
// reallocate the columns (the bytes of variable-length values excepted).
func (b *Builder[R]) Grow(n int) {
	for _, c := range b.cols {
		c.grow(n)
	}
}

// Append adds one record. The builder copies what it keeps of r.
func (b *Builder[R]) Append(r *R) {
	for _, c := range b.cols {
		c.put(r)
	}
	b.n++
}

// Len returns the number of records appended since the last NewRecord.
func (b *Builder[R]) Len() int { return b.n }

// NewRecord returns the records appended so far as one record batch and
// resets the builder. The caller must Release the batch.
func (b *Builder[R]) NewRecord() arrow.RecordBatch {
	cols := make([]arrow.Array, len(b.cols))
	for i, c := range b.cols {
		cols[i] = c.array()
	}
	rec := array.NewRecordBatch(b.t.Schema, cols, int64(b.n))
	for _, a := range cols {
		a.Release()
	}
	b.n = 0
	return rec
}

// Release drops the builder's values (they are on the Go heap). The builder
// must not be used after it.
func (b *Builder[R]) Release() {
	b.cols, b.n = nil, 0
}

// Check returns ErrSchema unless s has the table's columns, in order, with
// the same types and nullability (metadata is ignored). A member written
// before columns were added to the table may end before them (the added
// columns are nullable and always last); Pad gives such a batch the rest.
func (t *Table[R]) Check(s *arrow.Schema) error {
	if s.NumFields() < t.minCols || s.NumFields() > len(t.cols) {
		if t.minCols == len(t.cols) {
			return fmt.Errorf("%w: %s has %d columns, want %d", ErrSchema, t.Name, s.NumFields(), len(t.cols))
		}
		return fmt.Errorf("%w: %s has %d columns, want %d to %d", ErrSchema, t.Name, s.NumFields(), t.minCols, len(t.cols))
	}
	for i, c := range t.cols[:s.NumFields()] {
		f := s.Field(i)
		if f.Name != c.name || !arrow.TypeEqual(f.Type, c.typ) || f.Nullable != c.nullable {
			return fmt.Errorf("%w: %s column %d is %s %s, want %s %s", ErrSchema, t.Name, i, f.Name, f.Type, c.name, c.typ)
		}
	}
	return nil
}

// Row decodes row i of rec into r, which should be zero. rec must have passed
// Check.
func (t *Table[R]) Row(rec arrow.RecordBatch, i int, r *R) {
	for j, c := range t.cols[:rec.NumCols()] {
		c.get(rec.Column(j), i, r)
	}
}

// Decode checks rec's schema and returns all its rows.
func (t *Table[R]) Decode(rec arrow.RecordBatch) ([]R, error) {
	if err := t.Check(rec.Schema()); err != nil {
		return nil, err
	}
	out := make([]R, rec.NumRows())
	for i := range out {
		t.Row(rec, i, &out[i])
	}
	return out, nil
}
