package spool

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/klauspost/compress/zstd"

	"github.com/pofr/pofr/internal/event"
)

// record builds one table's batch from rows.
func record[R any](t *event.Table[R], rows []R) arrow.RecordBatch {
	b := t.NewBuilder(nil)
	defer b.Release()
	for i := range rows {
		b.Append(&rows[i])
	}
	return b.NewRecord()
}

// hostileRecords returns a batch of hostile rows for every table, argv of
// the given proc row replaced by argv.
func hostileRecords(argv []byte) map[string]arrow.RecordBatch {
	procs, files, socks, gaps, accts := hostileRows()
	procs[0].Argv = argv
	return map[string]arrow.RecordBatch{
		event.TableProc: record(event.ProcTable, procs),
		event.TableFile: record(event.FileTable, files),
		event.TableSock: record(event.SockTable, socks),
		event.TableGap:  record(event.GapTable, gaps),
		event.TableAcct: record(event.AcctTable, accts),
		event.TableExe:  record(event.ExeTable, hostileExes()),
		event.TableDNS: record(event.DNSTable, []event.DNS{{TS: 5, Event: event.DNSResponse, Proto: "tcp", ClientAddr: []byte{127, 0, 0, 1},
			QName: []byte("\\xff\t.evil."), QType: event.Some[uint16](28), Answers: []byte("a\x00b")}, {TS: 6, Proto: "udp"}}),
		event.TableLogin: record(event.LoginTable, []event.Login{{TS: 6, Kind: event.LoginFailed, File: "btmp", User: []byte("r\x00ot")},
			{TS: 7, Kind: event.LoginLogin, File: "wtmp", PID: 1 << 30}}),
		event.TableCtr: record(event.CtrTable, []event.Container{{TS: 8, ID: []byte("0123"), Runtime: event.RuntimeDocker, Name: []byte("n\x00\t'")},
			{TS: 9, ID: []byte("4567"), PID: 1, Error: event.CtrNotFound}}),
	}
}

// arrowMember is the member as Arrow's IPC writer compresses it itself.
func arrowMember(t *testing.T, table string, rec arrow.RecordBatch) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(event.SchemaOf(table)), ipc.WithZstd())
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readMember reads a member with Arrow's own reader (its decompression).
func readMember(t *testing.T, data []byte) arrow.RecordBatch {
	t.Helper()
	r, err := ipc.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	if !r.Next() {
		t.Fatalf("no record batch: %v", r.Err())
	}
	rec := r.RecordBatch()
	rec.Retain()
	if r.Next() || r.Err() != nil {
		t.Fatalf("more than one record batch: %v", r.Err())
	}
	return rec
}

// TestMemberEncoderMatchesArrow: where every buffer fits one zstd block
// (128 KiB), the member encoder writes exactly the bytes of Arrow's own
// compressing writer, for every table; members of several segments from the
// same encoder stay intact until its next segment.
func TestMemberEncoderMatchesArrow(t *testing.T) {
	enc, err := newMemberEncoder()
	if err != nil {
		t.Fatal(err)
	}
	for round, n := range []int{1000, 10_000, 21_000} { // argv up to 126,000 bytes
		recs := hostileRecords(bytes.Repeat([]byte("sh\x00-c\x00"), n))
		enc.reset()
		got := map[string][]byte{}
		for _, table := range event.Tables {
			if got[table], err = enc.encode(event.SchemaOf(table), recs[table]); err != nil {
				t.Fatalf("%s: %v", table, err)
			}
		}
		for _, table := range event.Tables {
			if want := arrowMember(t, table, recs[table]); !bytes.Equal(got[table], want) {
				t.Errorf("round %d, %s: member encoder wrote %d bytes, Arrow's writer %d, not the same", round, table, len(got[table]), len(want))
			}
			lim := (&VerifyOptions{}).limits()
			budget := lim.decoded
			if rows, err := scanStream(got[table], table, lim, &budget); err != nil || rows != recs[table].NumRows() {
				t.Errorf("round %d, %s: scanStream = %d, %v", round, table, rows, err)
			}
			recs[table].Release()
		}
	}
}

// TestMemberEncoderLarge: buffers of more than one zstd block are where the
// member encoder's frames differ from Arrow's writer (one frame per buffer
// from EncodeAll: content size stated, a 1 MiB window); Arrow's reader reads
// them, and they are within what Verify accepts.
func TestMemberEncoderLarge(t *testing.T) {
	enc, err := newMemberEncoder()
	if err != nil {
		t.Fatal(err)
	}
	enc.reset()
	for _, size := range []int{200 << 10, 3 << 20} {
		argv := make([]byte, size)
		for i := range argv {
			argv[i] = byte(i*7 + i/1000)
		}
		recs := hostileRecords(argv)
		rec := recs[event.TableProc]
		got, err := enc.encode(event.ProcTable.Schema, rec)
		if err != nil {
			t.Fatal(err)
		}
		back := readMember(t, got)
		if !array.RecordEqual(rec, back) {
			t.Errorf("argv of %d bytes: Arrow reads back another batch", size)
		}
		back.Release()
		lim := (&VerifyOptions{}).limits()
		budget := lim.decoded
		if _, err := scanStream(got, event.TableProc, lim, &budget); err != nil {
			t.Errorf("argv of %d bytes: scanStream: %v", size, err)
		}
		// The frame of the argv values (with the 3 bytes of the last proc
		// row): stated content size, window at most memberZstdWindow.
		size += 3
		i := bytes.Index(got, binary.LittleEndian.AppendUint64(nil, uint64(size)))
		if i < 0 {
			t.Fatalf("argv of %d bytes: no buffer of that size", size)
		}
		var h zstd.Header
		if err := h.Decode(got[i+8:]); err != nil {
			t.Fatal(err)
		}
		if !h.HasFCS || h.FrameContentSize != uint64(size) || h.WindowSize > memberZstdWindow {
			t.Errorf("argv of %d bytes: frame header %+v", size, h)
		}
		for _, r := range recs {
			r.Release()
		}
	}
}

// TestMemberEncoderRefuses: what the encoder cannot rewrite is an error,
// not a wrong member.
func TestMemberEncoderRefuses(t *testing.T) {
	enc, err := newMemberEncoder()
	if err != nil {
		t.Fatal(err)
	}
	rec := hostileRecords(nil)[event.TableAcct]
	plain := member(t, event.AcctTable.Schema, []arrow.RecordBatch{rec})
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"compressed batch", member(t, event.AcctTable.Schema, []arrow.RecordBatch{rec}, ipc.WithZstd())},
		{"no continuation marker", append([]byte{0, 0, 0, 0}, plain[4:]...)},
		{"bytes after the end", append(bytes.Clone(plain), 1)},
	} {
		enc.reset()
		enc.state, enc.nhdr = packHeader, 0
		if _, err := enc.Write(c.data); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
	// Written in pieces of any size, the stream comes out the same.
	enc.reset()
	want, err := enc.encode(event.AcctTable.Schema, rec)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []int{1, 3, 8, 13, 100} {
		enc.reset()
		enc.state, enc.nhdr = packHeader, 0
		for p := plain; len(p) > 0; {
			k := min(step, len(p))
			if _, err := enc.Write(p[:k]); err != nil {
				t.Fatalf("pieces of %d: %v", step, err)
			}
			p = p[k:]
		}
		if enc.state != packDone || !bytes.Equal(enc.out, want) {
			t.Errorf("pieces of %d: another stream", step)
		}
	}
}
