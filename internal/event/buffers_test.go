package event

import (
	"fmt"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/google/go-cmp/cmp"
)

// TestBuilderMatchesArrow checks that the Builder's column buffers give the
// arrays Arrow's own builders give: each column of a record built by Builder
// is rebuilt value by value with Arrow's builder of its type; the columns
// must be equal (values, nulls, dictionaries in the same order), pass full
// validation, and come back equal from an IPC stream with ZSTD. The rows mix
// nulls at every position of a bitmap byte, empty and repeated values, and
// bitmaps of several 64-byte blocks.
func TestBuilderMatchesArrow(t *testing.T) {
	var procs []Proc
	var files []File
	names := [][]byte{[]byte("/usr/bin/true"), {}, nil, []byte("/usr/bin/bash"), []byte("\xff\x00odd"), nil}
	kinds := []string{ProcFork, ProcExec, "", ProcExit, ProcExec}
	for i := range 70 {
		p := hostileProc()
		p.Argv = p.Argv[:i%40]
		if i%9 == 4 {
			p.Argv = nil
		}
		p.Event = kinds[i%len(kinds)]
		p.Exe, p.Comm, p.Cwd = names[i%len(names)], names[(i/2)%len(names)], names[(i/3)%len(names)]
		p.TTY, p.Cgroup, p.ContainerID = names[(i/7)%len(names)], names[(i+1)%len(names)], nil
		p.UID = uint32(i)
		if i%5 == 3 || i > 60 {
			p.UID = NoID
		}
		if i%11 == 10 {
			p.ExitCode = Opt[int32]{}
		}
		p.NSUts = Opt[uint32]{}
		if i >= 17 {
			p.NSUts = Some(uint32(i))
		}
		procs = append(procs, p)
		files = append(files, File{TS: int64(i), LastTS: int64(2 * i), Count: uint32(i), PID: int32(i), Op: kinds[i%len(kinds)],
			Path: names[i%len(names)], NewPath: names[(i+2)%len(names)]})
		if i%2 == 0 {
			files[i].Inode = Some(uint64(i))
		}
	}
	matchArrow(t, ProcTable, procs)
	matchArrow(t, ProcTable, procs[:1])
	matchArrow(t, FileTable, files)
	matchArrow(t, FileTable, files[2:3]) // one null path
	// Long: bitmaps of several 64-byte blocks, the first null late.
	var many []Proc
	for i := range 1100 {
		p := procs[i%len(procs)]
		p.UID, p.Exe = uint32(i), []byte(fmt.Sprint("/bin/", i%300))
		if i >= 700 && i%3 == 0 {
			p.UID = NoID
		}
		if i == 1099 {
			p.Exe = nil
		}
		many = append(many, p)
	}
	matchArrow(t, ProcTable, many)
	matchArrow(t, SockTable, []Sock{{TS: 6, Event: SockClose, Proto: "tcp", Family: 6, LocalAddr: make([]byte, 16),
		RemoteAddr: []byte{127, 0, 0, 1}, UID: NoID, PID: Some[int32](9), FirstTS: Some[int64](5)}, {TS: 7, Event: SockOpen}})
}

func matchArrow[R any](t *testing.T, tb *Table[R], rows []R) {
	t.Helper()
	b := tb.NewBuilder(nil)
	defer b.Release()
	b.Grow(len(rows) / 2) // room for some, not all
	for i := range rows {
		b.Append(&rows[i])
	}
	rec := b.NewRecord()
	defer rec.Release()
	if err := array.ValidateRecordFull(rec); err != nil {
		t.Fatalf("%s: %v", tb.Name, err)
	}
	got, err := tb.Decode(rec)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rows, got); diff != "" {
		t.Fatalf("%s rows read back (-want +got):\n%s", tb.Name, diff)
	}
	cols := make([]arrow.Array, rec.NumCols())
	for i, a := range rec.Columns() {
		cols[i] = rebuild(t, a)
		defer cols[i].Release()
	}
	ref := array.NewRecordBatch(tb.Schema, cols, rec.NumRows())
	defer ref.Release()
	for i := range cols {
		if !array.Equal(rec.Column(i), ref.Column(i)) {
			t.Errorf("%s column %s: %v, Arrow's builder %v", tb.Name, tb.Schema.Field(i).Name, rec.Column(i), ref.Column(i))
		}
	}
	if !array.RecordEqual(ipcRoundTrip(t, tb, rec), ref) {
		t.Errorf("%s: the record read back differs from Arrow's", tb.Name)
	}
	// A second record from the same builder starts empty.
	b.Append(&rows[0])
	rec2 := b.NewRecord()
	defer rec2.Release()
	if rec2.NumRows() != 1 {
		t.Fatalf("%s: second record has %d rows", tb.Name, rec2.NumRows())
	}
}

// rebuild builds a copy of a with Arrow's builder of its type.
func rebuild(t *testing.T, a arrow.Array) arrow.Array {
	mem := memory.DefaultAllocator
	bld := array.NewBuilder(mem, a.DataType())
	defer bld.Release()
	for i := range a.Len() {
		if a.IsNull(i) {
			bld.AppendNull()
			continue
		}
		var err error
		switch a := a.(type) {
		case *array.Dictionary:
			switch d := a.Dictionary().(type) {
			case *array.String:
				err = bld.(*array.BinaryDictionaryBuilder).AppendString(d.Value(a.GetValueIndex(i)))
			case *array.Binary:
				// An empty Value may be a nil slice, which Append takes for null.
				err = bld.(*array.BinaryDictionaryBuilder).Append(append([]byte{}, d.Value(a.GetValueIndex(i))...))
			}
		case *array.Binary:
			bld.(*array.BinaryBuilder).Append(append([]byte{}, a.Value(i)...))
		case *array.Timestamp:
			bld.(*array.TimestampBuilder).Append(a.Value(i))
		case *array.Int32:
			bld.(*array.Int32Builder).Append(a.Value(i))
		case *array.Int64:
			bld.(*array.Int64Builder).Append(a.Value(i))
		case *array.Uint8:
			bld.(*array.Uint8Builder).Append(a.Value(i))
		case *array.Uint16:
			bld.(*array.Uint16Builder).Append(a.Value(i))
		case *array.Uint32:
			bld.(*array.Uint32Builder).Append(a.Value(i))
		case *array.Uint64:
			bld.(*array.Uint64Builder).Append(a.Value(i))
		default:
			err = fmt.Errorf("no case for %T", a)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return bld.NewArray()
}
