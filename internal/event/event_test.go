package event

import (
	"bytes"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/google/go-cmp/cmp"
)

func hostileProc() Proc {
	argv := append([]byte("sh\x00-c\x00echo 'a\tb'\n\"q\" \\N ### \xff\xfe\x00"), bytes.Repeat([]byte{'x'}, 128<<10)...)
	return Proc{
		TS: 1764097373123456789, Event: ProcExec, PID: 4242, TID: 4243, PPID: 1,
		ProcStart: 123_450_000_000, ParentStart: Some[int64](10_000_000),
		UID: 1000, EUID: 0, GID: NoID, EGID: 0, AUID: NoID, SessionID: 7,
		TTY: []byte("pts/0"), Comm: []byte("a\tb\nc\x00\xff"), Exe: []byte("/usr/bin/\xff odd"),
		Argv: argv, Cwd: []byte{}, ExitCode: Some[int32](3), ExitSignal: Opt[int32]{},
		TracerPID: Some[int32](0), Cgroup: []byte("/system.slice/docker-abc.scope"), ContainerID: []byte("abc"),
		NSPid: Some[uint32](4026531836), NSNet: Some[uint32](4026531840), Flags: ProcFlagArgvTruncated | ProcFlagSelf,
	}
}

// TestRoundTrip writes every table through Arrow IPC with zstd and reads it
// back: values, nulls and empty values must come back exactly.
func TestRoundTrip(t *testing.T) {
	procs := []Proc{hostileProc(), {TS: 1, Event: ProcFork, PID: 2, TID: 2, UID: NoID, EUID: NoID, GID: NoID, EGID: NoID, AUID: NoID, SessionID: NoID}}
	files := []File{{TS: 5, LastTS: 9, Count: 10000, PID: 3, ProcStart: Some[int64](77), UID: 0, Op: FileRename,
		Path: []byte("/tmp/a b\nc"), NewPath: []byte("/tmp/\xff"), Inode: Some[uint64](12), Dev: Some[uint64](2049), Flags: FileFlagDir}}
	socks := []Sock{{TS: 6, Event: SockClose, Proto: "tcp", Family: 6, State: "CLOSE", Direction: DirOut,
		LocalAddr: make([]byte, 16), LocalPort: 4000, RemoteAddr: []byte{127, 0, 0, 1}, RemotePort: 80,
		Cookie: 1 << 40, UID: NoID, PID: Some[int32](9), BytesSent: Some[uint64](1024), FirstTS: Some[int64](5), Flags: SockFlagFromDestroy}}
	gaps := []Gap{{FromTS: 1, ToTS: 2, Source: SourceProc, Lost: Opt[int64]{}, Reason: "ENOBUFS"}}
	accts := []Account{{TS: 1, Kind: AcctUser, ID: 1000, Name: []byte("al\tice")}}

	check(t, ProcTable, procs)
	check(t, FileTable, files)
	check(t, SockTable, socks)
	check(t, GapTable, gaps)
	check(t, AcctTable, accts)
	check(t, DNSTable, []DNS{
		{TS: 7, Event: DNSResponse, Proto: "udp", ClientAddr: []byte{127, 0, 0, 1}, ClientPort: 40000, ServerAddr: []byte{127, 0, 0, 53},
			ServerPort: 53, PID: Some[int32](9), ProcStart: Some[int64](5), ID: 0xbeef, QName: []byte("a\\.b\xff."), QType: Some[uint16](1),
			RCode: Some[uint8](0), Answers: []byte("x. A 60 1.2.3.4\n"), AnswerAddrs: []byte(",01020304,"), Flags: DNSFlagTruncated},
		{TS: 8, Event: DNSQuery, Proto: "tcp", ClientAddr: make([]byte, 16), ServerAddr: make([]byte, 16), ServerPort: 53, QName: []byte{}, Flags: DNSFlagOwnerUnknown},
	})
}

func check[R any](t *testing.T, tb *Table[R], rows []R) {
	t.Helper()
	b := tb.NewBuilder(nil)
	defer b.Release()
	for i := range rows {
		b.Append(&rows[i])
	}
	if b.Len() != len(rows) {
		t.Fatalf("%s: Len = %d, want %d", tb.Name, b.Len(), len(rows))
	}
	rec := b.NewRecord()
	defer rec.Release()
	got, err := tb.Decode(ipcRoundTrip(t, tb, rec))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rows, got); diff != "" {
		t.Errorf("%s round trip (-want +got):\n%s", tb.Name, diff)
	}
}

// ipcRoundTrip writes rec as an Arrow IPC stream with ZSTD, as a segment
// member holds it, and returns the record read back (valid until the test
// ends).
func ipcRoundTrip[R any](t *testing.T, tb *Table[R], rec arrow.RecordBatch) arrow.RecordBatch {
	t.Helper()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(tb.Schema), ipc.WithZstd())
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := ipc.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Release)
	if !r.Next() {
		t.Fatalf("%s: no record: %v", tb.Name, r.Err())
	}
	return r.RecordBatch()
}

func TestCheckRejectsOtherSchema(t *testing.T) {
	if err := ProcTable.Check(FileTable.Schema); err == nil {
		t.Fatal("proc table accepted the file schema")
	}
	if err := FileTable.Check(FileTable.Schema); err != nil {
		t.Fatalf("file table refused its own schema: %v", err)
	}
}

func TestEveryColumnDocumented(t *testing.T) {
	for _, docs := range [][]ColumnDoc{ProcTable.Docs(), FileTable.Docs(), SockTable.Docs(), GapTable.Docs(), AcctTable.Docs(), DNSTable.Docs()} {
		seen := map[string]bool{}
		for _, d := range docs {
			if len(strings.TrimSpace(d.Doc)) < 10 {
				t.Errorf("column %s: doc %q too short", d.Name, d.Doc)
			}
			if seen[d.Name] {
				t.Errorf("column %s twice", d.Name)
			}
			seen[d.Name] = true
		}
	}
}

// TestAddedColumns: a proc member may end before exe_key (a writer from
// before it), not earlier; Row leaves the missing column null.
func TestAddedColumns(t *testing.T) {
	full := ProcTable.Schema.Fields()
	old := arrow.NewSchema(full[:len(full)-1], nil)
	if err := ProcTable.Check(old); err != nil {
		t.Errorf("proc without exe_key: %v", err)
	}
	if err := ProcTable.Check(arrow.NewSchema(full[:len(full)-2], nil)); err == nil {
		t.Error("proc without flags accepted")
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, old)
	defer b.Release()
	for i, f := range b.Fields() {
		if i == 0 {
			f.(*array.TimestampBuilder).Append(1)
			continue
		}
		if old.Field(i).Nullable {
			f.AppendNull()
		} else {
			f.AppendEmptyValue()
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	padded := Pad(TableProc, rec)
	defer padded.Release()
	if !padded.Schema().Equal(ProcTable.Schema) || padded.Column(len(full)-1).NullN() != 1 {
		t.Errorf("Pad = %v", padded)
	}
	rows, err := ProcTable.Decode(rec)
	if err != nil || len(rows) != 1 || rows[0].ExeKey.Valid {
		t.Errorf("Decode = %+v, %v", rows, err)
	}
	if ExeKey(2049, 1835263, 138208, -1, 1712000000123456789) == ExeKey(2049, 1835263, 138208, 1, 1712000000123456789) {
		t.Error("ExeKey ignores the sign of mtime")
	}
}
