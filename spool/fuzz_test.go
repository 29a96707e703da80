package spool

import (
	"bytes"
	"crypto/ed25519"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/pofr/pofr/internal/event"
)

// fuzzLimits keep every input's memory small: no input may make the reader
// allocate more than these allow (plus the input itself).
// Column limits as a loader sets them (exe 4 KiB, argv 64 KiB, comm 1 KiB)
// are on too, so the per-column check of the framing scan is fuzzed.
var fuzzLimits = VerifyOptions{MaxSize: 1 << 20, MaxRows: 1 << 14, MaxDecoded: 16 << 20,
	MaxValueBytes: func(table, column string) int64 {
		return map[string]int64{"exe": 4096, "argv": 64 << 10, "comm": 1024}[column]
	}}

// FuzzVerify feeds whole segments to Verify, with and without the key. It
// must never panic, and every refusal must wrap a sentinel error. Mutations
// rarely get past the signature; FuzzMember covers the Arrow decoding behind
// it, as a host whose key was stolen could sign anything.
func FuzzVerify(f *testing.F) {
	valid := sealed(f, false)
	f.Add(valid)
	f.Add(sealed(f, true))
	f.Add(valid[:len(valid)/2])
	f.Add(valid[:len(valid)-blockSize])
	for _, i := range []int{0, 124, 156, blockSize + 10, 2 * blockSize, len(valid) - 3*blockSize} {
		b := append([]byte{}, valid...)
		b[i] ^= 0x40
		f.Add(b)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, key := range []ed25519.PublicKey{testPub, nil} {
			opts := fuzzLimits
			opts.PublicKey = key
			s, err := VerifyBytes(b, opts)
			if err != nil {
				if !isSentinel(err) {
					t.Fatalf("error wraps no sentinel: %v", err)
				}
				continue
			}
			exercise(t, s)
		}
		_, _, err := ReadManifest(bytes.NewReader(b), int64(len(b)))
		if err != nil && !isSentinel(err) {
			t.Fatalf("ReadManifest: error wraps no sentinel: %v", err)
		}
	})
}

// FuzzMember feeds one Arrow member of the chosen table to the member
// decoder, as Verify does after the signature and digests matched.
func FuzzMember(f *testing.F) {
	_, _, _, members := parts(f, sealed(f, true))
	for _, rm := range members {
		f.Add(uint8(indexOf(event.Tables, rm.name[:len(rm.name)-len(".arrow")])), rm.data)
	}
	f.Fuzz(func(t *testing.T, table uint8, data []byte) {
		tbl := event.Tables[int(table)%len(event.Tables)]
		lim := fuzzLimits.limits()
		budget := lim.decoded
		rows, err := scanStream(data, tbl, lim, &budget)
		if err != nil {
			return
		}
		budget = lim.decoded
		rec, err := decodeMember(data, Member{Name: MemberName(tbl), Table: tbl, Rows: rows}, lim, &budget)
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		s := &Segment{recs: map[string]arrow.RecordBatch{tbl: rec}}
		s.Manifest.HostID = testHost
		exercise(t, s)
	})
}

// exercise decodes every table of a segment that verified and releases it.
func exercise(t *testing.T, s *Segment) {
	t.Helper()
	defer s.Release()
	for _, err := range []error{
		second(s.Procs()), second(s.Files()), second(s.Socks()), second(s.Gaps()), second(s.Accounts()),
	} {
		if err != nil {
			t.Fatalf("verified segment does not decode: %v", err)
		}
	}
}

func second[T any](_ T, err error) error { return err }

// FuzzUnpack feeds members straight to unpackMember, without scanStream's
// checks before it: it must never panic nor decode more than its budget,
// and Arrow's reader must read what it returns (or refuse it) inside the
// recover that decodeArrow has too.
func FuzzUnpack(f *testing.F) {
	_, _, _, members := parts(f, sealed(f, true))
	for _, rm := range members {
		f.Add(rm.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		lim := fuzzLimits.limits()
		budget := lim.decoded
		u, err := unpackMember(data, lim)
		if err != nil {
			return
		}
		var decoded int64
		for _, m := range u.msgs {
			decoded += m.BodyLen()
		}
		u.Release()
		if decoded > budget+8*int64(len(data)) { // each buffer padded to 8 bytes
			t.Fatalf("decoded %d bytes, budget %d", decoded, budget)
		}
		if rec, err := readUnpacked(data, lim); err == nil {
			if array.ValidateRecordFull(rec) == nil {
				for _, col := range rec.Columns() {
					_ = col.String()
				}
			}
			rec.Release()
		}
	})
}
