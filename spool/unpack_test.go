package spool

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"

	"github.com/pofr/pofr/internal/event"
)

// readUnpacked reads what unpackMember made of data with Arrow's reader,
// turning a panic into an error as decodeArrow does.
func readUnpacked(data []byte, lim *limits) (rec arrow.RecordBatch, err error) {
	u, err := unpackMember(data, lim)
	if err != nil {
		return nil, err
	}
	var r *ipc.Reader
	defer func() {
		if p := recover(); p != nil {
			rec, err = nil, fmt.Errorf("arrow: %v", p)
		}
		if r != nil {
			r.Release()
		}
	}()
	if r, err = ipc.NewReaderFromMessageReader(u); err != nil {
		return nil, err
	}
	if !r.Next() {
		return nil, fmt.Errorf("no record batch: %v", r.Err())
	}
	rec = r.RecordBatch()
	rec.Retain()
	return rec, nil
}

// TestUnpackRoundTrip: members of every table, as the member encoder and
// as Arrow's own writer compress them (per block and streamed, buffers
// stored raw), unpack to the batches they hold.
func TestUnpackRoundTrip(t *testing.T) {
	enc, err := newMemberEncoder()
	if err != nil {
		t.Fatal(err)
	}
	enc.reset()
	big := bytes.Repeat([]byte("x\x00"), 150<<10) // more than one zstd block
	for _, argv := range [][]byte{[]byte("sh\x00"), big} {
		recs := hostileRecords(argv)
		for _, table := range event.Tables {
			rec := recs[table]
			ours, err := enc.encode(event.SchemaOf(table), rec)
			if err != nil {
				t.Fatal(err)
			}
			for name, data := range map[string][]byte{
				"member encoder": ours,
				"arrow zstd":     member(t, event.SchemaOf(table), []arrow.RecordBatch{rec}, ipc.WithZstd()),
				"arrow raw":      member(t, event.SchemaOf(table), []arrow.RecordBatch{rec}, ipc.WithZstd(), ipc.WithMinSpaceSavings(1)),
			} {
				got, err := readUnpacked(data, (&VerifyOptions{}).limits())
				if err != nil {
					t.Errorf("%s, %s, argv %d bytes: %v", table, name, len(argv), err)
					continue
				}
				if !array.RecordEqual(rec, got) {
					t.Errorf("%s, %s, argv %d bytes: another batch came back", table, name, len(argv))
				}
				if err := array.ValidateRecordFull(got); err != nil {
					t.Errorf("%s, %s: %v", table, name, err)
				}
				got.Release()
			}
			rec.Release()
		}
	}
}

// TestUnpackHostile: what unpackMember refuses on its own, without
// scanStream before it.
func TestUnpackHostile(t *testing.T) {
	// Arrow's writer streams a buffer of more than one block into a frame
	// that does not state its size: only the size before it says how much
	// it decodes to.
	argv := bytes.Repeat([]byte("y\x00"), 100<<10)
	rec := hostileRecords(argv)[event.TableProc]
	streamed := member(t, event.ProcTable.Schema, []arrow.RecordBatch{rec}, ipc.WithZstd())
	size := binary.LittleEndian.AppendUint64(nil, uint64(len(argv)+3))
	if bytes.Count(streamed, size) != 1 {
		t.Fatalf("the argv buffer's size occurs %d times", bytes.Count(streamed, size))
	}
	resize := func(d int) []byte {
		return bytes.Replace(streamed, size, binary.LittleEndian.AppendUint64(nil, uint64(len(argv)+3+d)), 1)
	}
	if _, err := readUnpacked(streamed, (&VerifyOptions{}).limits()); err != nil {
		t.Fatalf("the unchanged member: %v", err)
	}
	small := sealed(t, false)
	_, _, _, members := parts(t, small)
	proc := members[0].data
	frame := bytes.Index(proc, []byte{0x28, 0xb5, 0x2f, 0xfd})
	misdeclared := bytes.Clone(proc)
	binary.LittleEndian.PutUint64(misdeclared[frame-8:], binary.LittleEndian.Uint64(proc[frame-8:])+1)
	for _, c := range []struct {
		name   string
		data   []byte
		budget int64
		want   error
	}{
		{"declares a byte more than its frame holds", resize(1), DefaultMaxDecoded, nil},
		{"declares a byte less than its frame holds", resize(-1), DefaultMaxDecoded, nil},
		{"declares a gigabyte", resize(1 << 30), DefaultMaxDecoded, ErrTooLarge},
		{"over the budget", streamed, int64(len(argv)), ErrTooLarge},
		{"declares another size than its frame states", misdeclared, DefaultMaxDecoded, nil},
		{"bytes after the end", append(bytes.Clone(proc), 0), DefaultMaxDecoded, nil},
		{"no end-of-stream marker", proc[:len(proc)-8], DefaultMaxDecoded, nil},
		{"empty", nil, DefaultMaxDecoded, nil},
	} {
		_, err := readUnpacked(c.data, (&VerifyOptions{MaxDecoded: c.budget}).limits())
		if err == nil {
			t.Errorf("%s: accepted", c.name)
		} else if c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	for n := range len(proc) {
		if _, err := unpackMember(proc[:n], (&VerifyOptions{}).limits()); err == nil {
			t.Errorf("truncated to %d of %d bytes: accepted", n, len(proc))
		}
	}
}

// TestVerifyDecodersShared: concurrent Verify calls share the pooled
// decoders without mixing up their buffers.
func TestVerifyDecodersShared(t *testing.T) {
	b := sealed(t, true)
	errs := make(chan error, 8)
	for range cap(errs) {
		go func() {
			var err error
			for range 5 {
				var s *Segment
				if s, err = VerifyBytes(b, VerifyOptions{PublicKey: testPub}); err != nil {
					break
				}
				var procs []event.Proc
				procs, err = s.Procs()
				if err == nil && !bytes.Equal(procs[0].Argv, bigArgv) {
					err = errors.New("argv of the first row differs")
				}
				s.Release()
			}
			errs <- err
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
