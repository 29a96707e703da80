package spool

import (
	"archive/tar"
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/google/go-cmp/cmp"

	"github.com/pofr/pofr/internal/event"
)

var sentinels = []error{ErrCorrupt, ErrBadSignature, ErrChainBroken, ErrWrongHost, ErrTooLarge, ErrTooLong, ErrUnsupportedVersion}

// sealed returns the bytes of one segment written by a Writer with the
// given rows appended (hostile rows if full, a small mix otherwise).
func sealed(t testing.TB, full bool) []byte {
	t.Helper()
	dir := t.TempDir()
	w, err := Open(dir, testOptions(newClock()))
	if err != nil {
		t.Fatal(err)
	}
	procs, files, socks, gaps, accts := hostileRows()
	if !full {
		procs[0].Argv = []byte("sh\x00-c\x00true\x00")
		procs, files, socks, accts = procs[:2], files[:1], socks[:1], nil
	}
	event.AppendAll(w, procs, files, socks, gaps, accts)
	return closeOne(t, w, dir)
}

// parts splits a valid segment into its manifest, signature and members.
func parts(t testing.TB, b []byte) (*Manifest, []byte, []byte, []rawMember) {
	t.Helper()
	ms, err := tarScan(b, (&VerifyOptions{}).limits())
	if err != nil {
		t.Fatal(err)
	}
	m, err := parseManifest(ms[0].data)
	if err != nil {
		t.Fatal(err)
	}
	return m, ms[0].data, ms[1].data, ms[2:]
}

// assemble writes a tar of canonical members.
func assemble(mtime int64, names []string, data [][]byte) []byte {
	var buf bytes.Buffer
	tw := &tarWriter{w: &buf, mtime: mtime}
	for i, n := range names {
		tw.member(n, data[i])
	}
	tw.close()
	return buf.Bytes()
}

// resign builds a segment from a manifest (whose member list is recomputed
// from members) signed with key.
func resign(t testing.TB, m *Manifest, key ed25519.PrivateKey, members []rawMember) []byte {
	t.Helper()
	var rows []int64
	for _, rm := range members {
		n, err := scanStream(rm.data, "", (&VerifyOptions{}).limits(), new(int64(1<<40)))
		if err != nil {
			t.Fatalf("%s: %v", rm.name, err)
		}
		rows = append(rows, n)
	}
	return resignRows(t, m, key, members, rows)
}

// resignRows is resign with the row counts to claim for each member.
func resignRows(t testing.TB, m *Manifest, key ed25519.PrivateKey, members []rawMember, rows []int64) []byte {
	t.Helper()
	m.Members = nil
	for i, rm := range members {
		table := strings.TrimSuffix(rm.name, ".arrow")
		m.Members = append(m.Members, Member{Name: rm.name, Table: table, Rows: rows[i], Bytes: int64(len(rm.data)), SHA256: Digest(rm.data)})
	}
	mb, err := encodeManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	return signRaw(m.Created.Unix(), mb, key, members)
}

// signRaw builds a segment around the given manifest bytes.
func signRaw(mtime int64, manifest []byte, key ed25519.PrivateKey, members []rawMember) []byte {
	names := []string{ManifestName, SigName}
	data := [][]byte{manifest, ed25519.Sign(key, manifest)}
	for _, rm := range members {
		names = append(names, rm.name)
		data = append(data, rm.data)
	}
	return assemble(mtime, names, data)
}

func verifyErr(b []byte, opts VerifyOptions) error {
	s, err := VerifyBytes(b, opts)
	if s != nil {
		s.Release()
	}
	return err
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got error %v, want %v", what, err, want)
	}
}

func TestVerifyValid(t *testing.T) {
	b := sealed(t, true)
	if err := verifyErr(b, VerifyOptions{PublicKey: testPub, HostID: testHost}); err != nil {
		t.Fatalf("valid segment refused: %v", err)
	}
}

// TestBitFlips flips one bit at every byte of a segment (and every bit of
// the first blocks: headers, manifest, signature): every flip must be
// refused with one of the sentinel errors.
func TestBitFlips(t *testing.T) {
	b := sealed(t, false)
	opts := VerifyOptions{PublicKey: testPub, HostID: testHost}
	if err := verifyErr(b, opts); err != nil {
		t.Fatalf("valid segment refused: %v", err)
	}
	mut := make([]byte, len(b))
	flips := 0
	for i := range b {
		bits := []int{i % 8}
		if i < 4*blockSize {
			bits = []int{0, 1, 2, 3, 4, 5, 6, 7}
		}
		for _, bit := range bits {
			copy(mut, b)
			mut[i] ^= 1 << bit
			flips++
			err := verifyErr(mut, opts)
			if err == nil {
				t.Fatalf("flip of bit %d at byte %d of %d accepted", bit, i, len(b))
			}
			if !isSentinel(err) {
				t.Fatalf("flip of bit %d at byte %d: error %v wraps no sentinel", bit, i, err)
			}
		}
	}
	t.Logf("%d flips in %d bytes, all refused", flips, len(b))
}

func isSentinel(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// TestTruncated: every prefix of a segment is refused as corrupt, and so is
// a reader shorter than the size it is said to have.
func TestTruncated(t *testing.T) {
	b := sealed(t, false)
	for n := range len(b) {
		wantErr(t, fmt.Sprintf("prefix of %d bytes", n), verifyErr(b[:n], VerifyOptions{PublicKey: testPub}), ErrCorrupt)
	}
	_, err := Verify(bytes.NewReader(b[:len(b)-100]), int64(len(b)), VerifyOptions{})
	wantErr(t, "short reader", err, ErrCorrupt)
	_, _, err = ReadManifest(bytes.NewReader(b[:700]), 700)
	wantErr(t, "ReadManifest of a prefix", err, ErrCorrupt)
}

func TestReadManifest(t *testing.T) {
	b := sealed(t, false)
	m, digest, err := ReadManifest(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	s, err := VerifyBytes(b, VerifyOptions{PublicKey: testPub})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	if diff := cmp.Diff(&s.Manifest, m); diff != "" {
		t.Errorf("ReadManifest differs from Verify (-verify +read):\n%s", diff)
	}
	if digest != s.Digest {
		t.Errorf("ReadManifest digest %s, Verify digest %s", digest, s.Digest)
	}
}

func TestSignature(t *testing.T) {
	b := sealed(t, false)
	m, mb, _, members := parts(t, b)
	otherKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	otherPub := otherKey.Public().(ed25519.PublicKey)

	wantErr(t, "wrong public key", verifyErr(b, VerifyOptions{PublicKey: otherPub}), ErrBadSignature)
	wantErr(t, "short public key", verifyErr(b, VerifyOptions{PublicKey: testPub[:31]}), ErrBadSignature)

	forged := signRaw(m.Created.Unix(), mb, otherKey, members)
	wantErr(t, "signed by another key", verifyErr(forged, VerifyOptions{PublicKey: testPub}), ErrBadSignature)
	if err := verifyErr(forged, VerifyOptions{PublicKey: otherPub}); err != nil {
		t.Errorf("forged segment refused with the forger's key (the test would prove nothing): %v", err)
	}

	m.Seq = 99
	m.PrevDigest = strings.Repeat("a", 64)
	wantErr(t, "altered manifest re-signed by another key", verifyErr(resign(t, m, otherKey, members), VerifyOptions{PublicKey: testPub}), ErrBadSignature)

	zeroSig := assemble(m.Created.Unix(), []string{ManifestName, SigName, members[0].name, members[1].name, members[2].name, members[3].name},
		[][]byte{mb, make([]byte, 64), members[0].data, members[1].data, members[2].data, members[3].data})
	wantErr(t, "zero signature", verifyErr(zeroSig, VerifyOptions{PublicKey: testPub}), ErrBadSignature)
	if err := verifyErr(zeroSig, VerifyOptions{}); err != nil {
		t.Errorf("without a key the signature is not checked, got %v", err)
	}
}

func TestWrongHost(t *testing.T) {
	b := sealed(t, false)
	wantErr(t, "other host", verifyErr(b, VerifyOptions{PublicKey: testPub, HostID: "h-0002"}), ErrWrongHost)
}

func TestChainBroken(t *testing.T) {
	b := sealed(t, false)
	prev := strings.Repeat("0", 64)
	s, err := VerifyBytes(b, VerifyOptions{PublicKey: testPub, PrevDigest: &prev})
	wantErr(t, "prev digest mismatch", err, ErrChainBroken)
	if s == nil {
		t.Fatal("ErrChainBroken without the segment")
	}
	defer s.Release()
	if got, want := s.Manifest.Seq, uint64(1); got != want {
		t.Errorf("seq = %d, want %d", got, want)
	}
	empty := ""
	if err := verifyErr(b, VerifyOptions{PublicKey: testPub, PrevDigest: &empty}); err != nil {
		t.Errorf("first segment with prev \"\": %v", err)
	}
}

// TestManifestStrict alters the manifest text (and re-signs it with the
// right key, so only the format rules can refuse it).
func TestManifestStrict(t *testing.T) {
	b := sealed(t, false)
	m, mb, _, members := parts(t, b)
	s := string(mb)
	cases := []struct {
		name string
		text string
		want error
	}{
		{"version 2", strings.Replace(s, `"version":1`, `"version":2`, 1), ErrUnsupportedVersion},
		{"other format", strings.Replace(s, `"pofr-segment"`, `"pofr-segmenT"`, 1), ErrCorrupt},
		{"unknown field", strings.Replace(s, `"version":1,`, `"version":1,"extra":1,`, 1), ErrCorrupt},
		{"duplicate field", strings.Replace(s, `"seq":1,`, `"seq":1,"seq":1,`, 1), ErrCorrupt},
		{"whitespace", strings.Replace(s, `"seq":1,`, `"seq": 1,`, 1), ErrCorrupt},
		{"no newline", strings.TrimSuffix(s, "\n"), ErrCorrupt},
		{"trailing data", s + "{}", ErrCorrupt},
		{"field order", strings.Replace(s, `{"format":"pofr-segment","version":1,`, `{"version":1,"format":"pofr-segment",`, 1), ErrCorrupt},
		{"bad host id", strings.Replace(s, `"h-0001"`, `"../etc"`, 1), ErrCorrupt},
		{"seq 0", strings.Replace(s, `"seq":1,`, `"seq":0,`, 1), ErrCorrupt},
		{"boot_id not ASCII", regexp.MustCompile(`"boot_id":"[^"]*"`).ReplaceAllString(s, `"boot_id":"boöt"`), ErrCorrupt},
		{"boot_id control", regexp.MustCompile(`"boot_id":"[^"]*"`).ReplaceAllString(s, `"boot_id":"b\u0001"`), ErrCorrupt},
		{"seq 2 without prev", strings.Replace(s, `"seq":1,`, `"seq":2,`, 1), ErrCorrupt},
		{"local time", strings.Replace(s, `Z","min_ts"`, `+01:00","min_ts"`, 1), ErrCorrupt},
		{"min after max", strings.Replace(s, fmt.Sprintf(`"min_ts":%d`, m.MinTS), `"min_ts":9223372036854775807`, 1), ErrCorrupt},
		{"time range", strings.Replace(s, fmt.Sprintf(`"min_ts":%d`, m.MinTS), fmt.Sprintf(`"min_ts":%d`, m.MinTS-1), 1), ErrCorrupt},
		{"rows", strings.Replace(s, `"rows":2`, `"rows":3`, 1), ErrCorrupt},
		{"bytes", strings.Replace(s, fmt.Sprintf(`"bytes":%d`, members[0].Size()), fmt.Sprintf(`"bytes":%d`, members[0].Size()+1), 1), ErrCorrupt},
		{"digest", strings.Replace(s, Digest(members[1].data), strings.Repeat("0", 64), 1), ErrCorrupt},
		{"member renamed", strings.Replace(s, `"name":"file.arrow"`, `"name":"../file.arrow"`, 1), ErrCorrupt},
		{"member table swapped", strings.Replace(s, `"table":"file"`, `"table":"sock"`, 1), ErrCorrupt},
		{"not json", "\x00" + s[1:], ErrCorrupt},
	}
	for _, c := range cases {
		if c.text == s {
			t.Fatalf("%s: the replacement did not apply", c.name)
		}
		got := verifyErr(signRaw(m.Created.Unix(), []byte(c.text), testKey, members), VerifyOptions{PublicKey: testPub})
		wantErr(t, c.name, got, c.want)
	}
	// The unaltered manifest re-signed the same way is accepted.
	if err := verifyErr(signRaw(m.Created.Unix(), mb, testKey, members), VerifyOptions{PublicKey: testPub}); err != nil {
		t.Errorf("unaltered manifest: %v", err)
	}
}

func (r rawMember) Size() int { return len(r.data) }

// TestTarStrict alters the container around a valid manifest and members.
func TestTarStrict(t *testing.T) {
	b := sealed(t, false)
	m, mb, sig, members := parts(t, b)
	mtime := m.Created.Unix()
	names := []string{ManifestName, SigName}
	data := [][]byte{mb, sig}
	for _, rm := range members {
		names = append(names, rm.name)
		data = append(data, rm.data)
	}
	opts := VerifyOptions{PublicKey: testPub}
	with := func(n []string, d [][]byte) []byte { return assemble(mtime, n, d) }
	if err := verifyErr(with(names, data), opts); err != nil {
		t.Fatalf("reassembled segment refused: %v", err)
	}
	ins := func(i int, name string, d []byte) ([]string, [][]byte) {
		n := append(append(append([]string{}, names[:i]...), name), names[i:]...)
		dd := append(append(append([][]byte{}, data[:i]...), d), data[i:]...)
		return n, dd
	}
	n, d := ins(len(names), "notes.txt", []byte("hi"))
	wantErr(t, "extra member", verifyErr(with(n, d), opts), ErrCorrupt)
	n, d = ins(len(names), members[0].name, members[0].data)
	wantErr(t, "duplicate member", verifyErr(with(n, d), opts), ErrCorrupt)
	n, d = ins(2, "../../etc/passwd", []byte("x"))
	wantErr(t, "path member", verifyErr(with(n, d), opts), ErrCorrupt)
	swapped := append([]string{}, names...)
	swapped[0], swapped[1] = swapped[1], swapped[0]
	swappedData := append([][]byte{}, data...)
	swappedData[0], swappedData[1] = swappedData[1], swappedData[0]
	wantErr(t, "signature first", verifyErr(with(swapped, swappedData), opts), ErrCorrupt)
	wantErr(t, "manifest only", verifyErr(with(names[:2], data[:2]), opts), ErrCorrupt)

	valid := with(names, data)
	wantErr(t, "trailing garbage", verifyErr(append(append([]byte{}, valid...), "x"...), opts), ErrCorrupt)
	wantErr(t, "extra zero block", verifyErr(append(append([]byte{}, valid...), make([]byte, blockSize)...), opts), ErrCorrupt)
	wantErr(t, "no end marker", verifyErr(valid[:len(valid)-2*blockSize], opts), ErrCorrupt)

	alter := func(what string, off int, f func(h []byte), want error) {
		t.Helper()
		c := append([]byte{}, valid...)
		f(c[off : off+blockSize])
		// Fix the checksum, so that only the altered field can be refused.
		copy(c[off+148:off+156], "        ")
		var sum int64
		for _, x := range c[off : off+blockSize] {
			sum += int64(x)
		}
		copy(c[off+148:off+156], fmt.Sprintf("%06o\x00 ", sum))
		wantErr(t, what, verifyErr(c, opts), want)
	}
	alter("symlink", 0, func(h []byte) { h[156] = '2' }, ErrCorrupt)
	alter("mode 0755", 0, func(h []byte) { copy(h[100:], "0000755") }, ErrCorrupt)
	alter("owner name", int(members[1].off), func(h []byte) { copy(h[265:], "root") }, ErrCorrupt)
	alter("other mtime", int(members[0].off), func(h []byte) { h[146] ^= 1 }, ErrCorrupt)
	alter("gnu magic", 0, func(h []byte) { copy(h[257:], "ustar  \x00") }, ErrCorrupt)
	alter("size with spaces", 0, func(h []byte) { h[124] = ' ' }, ErrCorrupt)
	alter("huge size", 0, func(h []byte) { copy(h[124:], "77777777777") }, ErrTooLarge)

	c := append([]byte{}, valid...)
	c[blockSize+len(mb)] = 1 // padding after the manifest
	wantErr(t, "padding not zero", verifyErr(c, opts), ErrCorrupt)
}

func TestLimits(t *testing.T) {
	b := sealed(t, true)
	opts := VerifyOptions{PublicKey: testPub}
	wantErr(t, "MaxSize", verifyErr(b, VerifyOptions{MaxSize: int64(len(b)) - 1}), ErrTooLarge)
	wantErr(t, "MaxMemberSize", verifyErr(b, VerifyOptions{MaxMemberSize: 1024}), ErrTooLarge)
	wantErr(t, "MaxRows", verifyErr(b, VerifyOptions{MaxRows: 2}), ErrTooLarge)
	wantErr(t, "MaxDecoded", verifyErr(b, VerifyOptions{MaxDecoded: 100 << 10}), ErrTooLarge)
	opts.MaxSize, opts.MaxRows, opts.MaxDecoded = int64(len(b)), 4, 200<<10
	if err := verifyErr(b, opts); err != nil {
		t.Errorf("limits just large enough: %v", err)
	}
}

// member builds an Arrow member for table from rec with the given writer
// options.
func member(t *testing.T, schema *arrow.Schema, recs []arrow.RecordBatch, opts ...ipc.Option) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, append([]ipc.Option{ipc.WithSchema(schema)}, opts...)...)
	for _, rec := range recs {
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// acctRecord builds an acct batch of two rows from raw parts, so that a
// test can make it invalid: kind is dictionary indices into ["user",
// "group"]; name has the given offsets into nameData.
func acctRecord(kindIdx []int32, nameOffsets []int32, nameData []byte) arrow.RecordBatch {
	mem := memory.DefaultAllocator
	ts := array.NewTimestampBuilder(mem, &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"})
	ts.AppendValues([]arrow.Timestamp{1, 2}, nil)
	tsArr := ts.NewArray()
	idx := array.NewInt32Builder(mem)
	idx.AppendValues(kindIdx, nil)
	idxArr := idx.NewArray()
	dictB := array.NewStringBuilder(mem)
	dictB.AppendValues([]string{"user", "group"}, nil)
	dictArr := dictB.NewArray()
	kind := array.NewDictionaryArray(event.AcctTable.Schema.Field(1).Type.(*arrow.DictionaryType), idxArr, dictArr)
	id := array.NewUint32Builder(mem)
	id.AppendValues([]uint32{0, 1}, nil)
	idArr := id.NewArray()
	offs := memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(nameOffsets))
	name := array.NewBinaryData(array.NewData(arrow.BinaryTypes.Binary, len(nameOffsets)-1,
		[]*memory.Buffer{nil, offs, memory.NewBufferBytes(nameData)}, nil, 0, 0))
	return array.NewRecordBatch(event.AcctTable.Schema, []arrow.Array{tsArr, kind, idArr, name}, 2)
}

// patched encodes the valid acct batch with its buffers stored raw (still
// under the ZSTD codec, as Arrow allows for incompressible buffers) and
// replaces the bytes old, which must occur once, by new.
func patched(t *testing.T, old, new []byte) []byte {
	t.Helper()
	good := acctRecord([]int32{0, 1}, []int32{0, 3, 5}, []byte("bobal"))
	b := member(t, event.AcctTable.Schema, []arrow.RecordBatch{good}, ipc.WithZstd(), ipc.WithMinSpaceSavings(0.99))
	if bytes.Count(b, old) != 1 {
		t.Fatalf("pattern %x occurs %d times in the member", old, bytes.Count(b, old))
	}
	return bytes.Replace(b, old, new, 1)
}

// TestHostileArrow signs segments (with the right key) whose Arrow member is
// invalid in ways only Arrow-level checks can see.
func TestHostileArrow(t *testing.T) {
	b := sealed(t, false)
	m, _, _, _ := parts(t, b)
	m.MinTS, m.MaxTS = 1, 2
	seg := func(data []byte) []byte {
		return resignRows(t, m, testKey, []rawMember{{name: "acct.arrow", data: data}}, []int64{2})
	}
	opts := VerifyOptions{PublicKey: testPub}
	good := acctRecord([]int32{0, 1}, []int32{0, 3, 5}, []byte("bobal"))
	if err := verifyErr(seg(member(t, event.AcctTable.Schema, []arrow.RecordBatch{good}, ipc.WithZstd())), opts); err != nil {
		t.Fatalf("valid crafted member refused (the cases below would prove nothing): %v", err)
	}
	if err := verifyErr(seg(patched(t, []byte("bobal"), []byte("bobal"))), opts); err != nil {
		t.Fatalf("valid member with raw buffers refused: %v", err)
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"dictionary index out of range", member(t, event.AcctTable.Schema, []arrow.RecordBatch{acctRecord([]int32{0, 7}, []int32{0, 3, 5}, []byte("bobal"))}, ipc.WithZstd())},
		{"negative dictionary index", member(t, event.AcctTable.Schema, []arrow.RecordBatch{acctRecord([]int32{-1, 0}, []int32{0, 3, 5}, []byte("bobal"))}, ipc.WithZstd())},
		{"offsets decrease", member(t, event.AcctTable.Schema, []arrow.RecordBatch{acctRecord([]int32{0, 1}, []int32{0, 4, 2}, []byte("bobal"))}, ipc.WithZstd())},
		{"offsets past data", patched(t, []byte{0, 0, 0, 0, 3, 0, 0, 0, 5, 0, 0, 0}, []byte{0, 0, 0, 0, 3, 0, 0, 0, 50, 0, 0, 0})},
		{"negative offset", patched(t, []byte{0, 0, 0, 0, 3, 0, 0, 0, 5, 0, 0, 0}, []byte{0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 5, 0, 0, 0})},
		{"two record batches", member(t, event.AcctTable.Schema, []arrow.RecordBatch{good, good}, ipc.WithZstd())},
		{"not compressed", member(t, event.AcctTable.Schema, []arrow.RecordBatch{good})},
		{"lz4", member(t, event.AcctTable.Schema, []arrow.RecordBatch{good}, ipc.WithLZ4())},
	}
	for _, c := range cases {
		wantErr(t, c.name, verifyErr(seg(c.data), opts), ErrCorrupt)
	}
	// Another table's schema in the acct member.
	files := event.FileTable.NewBuilder(nil)
	files.Append(&event.File{TS: 1, LastTS: 2})
	files.Append(&event.File{TS: 1, LastTS: 2})
	rec := files.NewRecord()
	wantErr(t, "file schema in acct.arrow", verifyErr(seg(member(t, event.FileTable.Schema, []arrow.RecordBatch{rec}, ipc.WithZstd())), opts), ErrCorrupt)
}

// TestPlainArrowReader opens the members with the standard tar reader and
// Arrow's own IPC reader, as any consumer would, without this package.
func TestPlainArrowReader(t *testing.T) {
	b := sealed(t, true)
	tr := tar.NewReader(bytes.NewReader(b))
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if !strings.HasSuffix(h.Name, ".arrow") {
			continue
		}
		r, err := ipc.NewReader(tr)
		if err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
		if !r.Next() {
			t.Fatalf("%s: no record batch: %v", h.Name, r.Err())
		}
		table := strings.TrimSuffix(h.Name, ".arrow")
		if err := checkSchema(table, r.RecordBatch().Schema()); err != nil {
			t.Errorf("%s: %v", h.Name, err)
		}
		r.Release()
	}
	want := []string{ManifestName, SigName, "proc.arrow", "file.arrow", "sock.arrow", "gap.arrow", "acct.arrow"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("members (-want +got):\n%s", diff)
	}
}

// TestPyArrow reads every member with pyarrow when it is installed.
func TestPyArrow(t *testing.T) {
	if exec.Command("python3", "-c", "import pyarrow").Run() != nil {
		t.Skip("python3 with pyarrow not installed")
	}
	path := filepath.Join(t.TempDir(), "seg.pofr")
	if err := os.WriteFile(path, sealed(t, true), 0o600); err != nil {
		t.Fatal(err)
	}
	script := `
import sys, tarfile, pyarrow.ipc as ipc
with tarfile.open(sys.argv[1]) as tf:
    for m in tf.getmembers():
        if m.name.endswith(".arrow"):
            t = ipc.open_stream(tf.extractfile(m).read()).read_all()
            print(m.name, t.num_rows)
`
	out, err := exec.Command("python3", "-c", script, path).CombinedOutput()
	if err != nil {
		t.Fatalf("pyarrow: %v\n%s", err, out)
	}
	want := "proc.arrow 4\nfile.arrow 3\nsock.arrow 2\ngap.arrow 2\nacct.arrow 2\n"
	if got := string(out); got != want {
		t.Errorf("pyarrow read:\n%s\nwant:\n%s", got, want)
	}
}

// TestMaxValueBytes: a value longer than the caller's limit for its column,
// in a dictionary (exe) or a plain binary column (argv), is refused with
// ErrTooLong before anything is decompressed (Admit is never called), and
// Admit sees the decoded size of a segment within the limits.
func TestMaxValueBytes(t *testing.T) {
	dir := t.TempDir()
	w := openWriter(t, dir, testOptions(newClock()))
	exe := bytes.Repeat([]byte("/usr/bin/"), (1<<20)/9)
	argv := bytes.Repeat([]byte("x\x00"), 50<<10)
	w.AppendProc(&event.Proc{TS: 1, Event: event.ProcExec, PID: 1, TID: 1, Exe: exe})
	w.AppendProc(&event.Proc{TS: 2, Event: event.ProcExec, PID: 2, TID: 2, Argv: argv, Exe: []byte("/bin/sh")})
	b := closeOne(t, w, dir)
	limits := func(exeMax, argvMax int64) func(table, column string) int64 {
		return func(table, column string) int64 {
			switch {
			case table == event.TableProc && column == "exe":
				return exeMax
			case table == event.TableProc && column == "argv":
				return argvMax
			case column == "comm":
				return 16
			}
			return 0
		}
	}
	for _, c := range []struct {
		name            string
		exeMax, argvMax int64
		want            error
	}{
		{"exe in a dictionary", 4096, 0, ErrTooLong},
		{"argv", 0, 32 << 10, ErrTooLong}, // two rows may hold 64 KiB; they hold 100
		{"both within", int64(len(exe)), int64(len(argv)), nil},
	} {
		var admitted int64 = -1
		seg, err := VerifyBytes(b, VerifyOptions{PublicKey: testPub, MaxValueBytes: limits(c.exeMax, c.argvMax),
			Admit: func(n int64) error { admitted = n; return nil }})
		if !errors.Is(err, c.want) || (c.want == nil && err != nil) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
			continue
		}
		if c.want != nil {
			if admitted != -1 {
				t.Errorf("%s: Admit(%d) was called before the refusal", c.name, admitted)
			}
			continue
		}
		seg.Release()
		if admitted < int64(len(exe)+len(argv)) {
			t.Errorf("%s: Admit(%d), want at least the %d bytes of the two values", c.name, admitted, len(exe)+len(argv))
		}
	}
	// An error from Admit stops Verify and comes back as is.
	stop := errors.New("no room")
	if _, err := VerifyBytes(b, VerifyOptions{PublicKey: testPub, Admit: func(int64) error { return stop }}); !errors.Is(err, stop) {
		t.Errorf("Admit refusing: got %v, want %v", err, stop)
	}
}
