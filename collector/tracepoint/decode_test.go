package tracepoint

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// testFormat parses testdata/format/<file>.
func testFormat(t testing.TB, file string) *Format {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "format", file))
	if err != nil {
		t.Fatal(err)
	}
	f, err := ParseFormat(b)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return f
}

func TestParseFormatOfThisKernel(t *testing.T) {
	f := testFormat(t, "sched_sched_process_exec")
	want := []Field{
		{Name: "common_type", Type: "unsigned short", Offset: 0, Size: 2},
		{Name: "common_flags", Type: "unsigned char", Offset: 2, Size: 1},
		{Name: "common_preempt_count", Type: "unsigned char", Offset: 3, Size: 1},
		{Name: "common_pid", Type: "int", Offset: 4, Size: 4, Signed: true},
		{Name: "filename", Type: "__data_loc char[]", Offset: 8, Size: 4, Loc: LocData},
		{Name: "pid", Type: "pid_t", Offset: 12, Size: 4, Signed: true},
		{Name: "old_pid", Type: "pid_t", Offset: 16, Size: 4, Signed: true},
	}
	if f.Name != "sched_process_exec" || f.ID == 0 {
		t.Errorf("name %q id %d", f.Name, f.ID)
	}
	if d := cmp.Diff(want, f.Fields); d != "" {
		t.Errorf("fields (-want +got):\n%s", d)
	}
	nt := testFormat(t, "task_task_newtask")
	comm, err := nt.Field("comm")
	if err != nil || comm.ArrayLen != 16 || comm.Size != 16 || comm.Type != "char" {
		t.Errorf("newtask comm: %+v, %v", comm, err)
	}
	sk := testFormat(t, "sock_inet_sock_set_state")
	if p, err := sk.Field("skaddr"); err != nil || p.Type != "const void *" || p.Size != 8 {
		t.Errorf("skaddr: %+v, %v", p, err)
	}
	if _, err := sk.Field("nope"); !errors.Is(err, ErrField) {
		t.Errorf("missing field: %v", err)
	}
}

func TestParseFormatRefuses(t *testing.T) {
	for name, in := range map[string]string{
		"empty":     "",
		"no id":     "name: x\nformat:\n\tfield:int a;\toffset:0;\tsize:4;\tsigned:1;\n",
		"bad id":    "name: x\nID: 99999999\n\tfield:int a;\toffset:0;\tsize:4;\tsigned:1;\n",
		"no fields": "name: x\nID: 1\n",
		"no offset": "name: x\nID: 1\n\tfield:int a;\tsize:4;\tsigned:1;\n",
		"neg size":  "name: x\nID: 1\n\tfield:int a;\toffset:0;\tsize:-4;\tsigned:1;\n",
		"bad array": "name: x\nID: 1\n\tfield:char a[x];\toffset:0;\tsize:4;\tsigned:1;\n",
		"loc size":  "name: x\nID: 1\n\tfield:__data_loc char[] a;\toffset:0;\tsize:8;\tsigned:0;\n",
		"no name":   "name: x\nID: 1\n\tfield:int ;\toffset:0;\tsize:4;\tsigned:1;\n",
	} {
		if f, err := ParseFormat([]byte(in)); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %+v, %v; want ErrFormat", name, f, err)
		}
	}
}

func TestFieldAccessors(t *testing.T) {
	raw := make([]byte, 24)
	binary.NativeEndian.PutUint32(raw[4:], 0xfffffffe)
	copy(raw[16:], "abc\x00zz")
	binary.NativeEndian.PutUint32(raw[8:], 16|6<<16) // data_loc: 6 bytes at 16
	binary.NativeEndian.PutUint32(raw[12:], 0|3<<16) // rel_loc: 3 bytes right after the field
	binary.NativeEndian.PutUint32(raw[12:], 0|3<<16)
	copy(raw[16:], "abc\x00zz")
	i := Field{Name: "i", Offset: 4, Size: 4, Signed: true}
	if v, err := i.Int(raw); err != nil || v != -2 {
		t.Errorf("Int = %d, %v", v, err)
	}
	u := Field{Name: "u", Offset: 4, Size: 4}
	if v, err := u.Int(raw); err != nil || v != 0xfffffffe {
		t.Errorf("unsigned Int = %d, %v", v, err)
	}
	dl := Field{Name: "d", Offset: 8, Size: 4, Loc: LocData}
	if b, err := dl.String(raw); err != nil || string(b) != "abc" {
		t.Errorf("data_loc String = %q, %v", b, err)
	}
	rl := Field{Name: "r", Offset: 12, Size: 4, Loc: LocRel}
	if b, err := rl.Bytes(raw); err != nil || string(b) != "abc" {
		t.Errorf("rel_loc Bytes = %q, %v", b, err)
	}
	far := Field{Name: "far", Offset: 22, Size: 4}
	if _, err := far.Uint(raw); !errors.Is(err, ErrField) {
		t.Errorf("field past the end: %v", err)
	}
	binary.NativeEndian.PutUint32(raw[8:], 20|60<<16)
	if _, err := dl.Bytes(raw); !errors.Is(err, ErrField) {
		t.Errorf("data_loc past the end: %v", err)
	}
}

// testSample parses testdata/sample/<name>.bin, captured from this kernel
// with the formats in testdata/format.
func testSample(t testing.TB, name string, l Layout) (Sample, []byte) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "sample", name+".bin"))
	if err != nil {
		t.Fatal(err)
	}
	var s Sample
	if err := ParseSample(b, func(uint16) Layout { return l }, &s); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return s, b
}

var execLayout = Layout{Regs: 1, Stack: true}

func TestParseCapturedSamples(t *testing.T) {
	exf := testFormat(t, "sched_sched_process_exec")
	s, _ := testSample(t, "exec", execLayout)
	if id, _ := s.TypeID(); id != exf.ID {
		t.Errorf("exec sample type %d, format id %d", id, exf.ID)
	}
	fn, _ := exf.Field("filename")
	name, err := fn.String(s.Raw)
	if err != nil || !bytes.HasPrefix(name, []byte("/")) || !bytes.Contains(name, []byte("true-")) {
		t.Errorf("filename %q, %v", name, err)
	}
	pidf, _ := exf.Field("pid")
	if pid, _ := pidf.Int(s.Raw); pid != int64(s.PID) {
		t.Errorf("pid field %d, sample pid %d", pid, s.PID)
	}
	if s.RegsABI != RegsABI64 || s.SP == 0 || len(s.Stack) == 0 {
		t.Errorf("regs abi %d sp %#x stack %d bytes", s.RegsABI, s.SP, len(s.Stack))
	}
	got, argc, err := ParseArgv(s.Stack, s.SP, s.RegsABI, nil)
	want := []byte("tp-test\x00two words\x00tab\there\x00nl\nx\x00\xff\xfe\x00\x00last\x00")
	if err != nil || argc != 7 || !bytes.Equal(got, want) {
		t.Errorf("argv %q (argc %d), %v; want %q", got, argc, err, want)
	}
	if bytes.Contains(got, []byte("env-must-not-leak")) {
		t.Error("argv holds the environment")
	}
	if !bytes.Contains(s.Stack, []byte("env-must-not-leak")) {
		t.Error("the captured dump holds no environment: the test above proves nothing")
	}

	ntf := testFormat(t, "task_task_newtask")
	n, _ := testSample(t, "newtask", Layout{})
	if id, _ := n.TypeID(); id != ntf.ID {
		t.Errorf("newtask sample type %d, format id %d", id, ntf.ID)
	}
	cf, _ := ntf.Field("clone_flags")
	if fl, err := cf.Uint(n.Raw); err != nil || fl&0x10000 != 0 { // CLONE_THREAD
		t.Errorf("newtask clone_flags %#x, %v: want a process", fl, err)
	}
	xf := testFormat(t, "sched_sched_process_exit")
	x, _ := testSample(t, "exit", Layout{})
	if id, _ := x.TypeID(); id != xf.ID {
		t.Errorf("exit sample type %d, format id %d", id, xf.ID)
	}
	xp, _ := xf.Field("pid")
	if pid, _ := xp.Int(x.Raw); pid != int64(s.PID) {
		t.Errorf("exit pid %d, exec pid %d", pid, s.PID)
	}
	if x.Time <= s.Time {
		t.Errorf("exit at %d before exec at %d", x.Time, s.Time)
	}
}

func TestParseArgvLimits(t *testing.T) {
	const sp = 0x7ffc0000
	stack := make([]byte, 64)
	binary.NativeEndian.PutUint64(stack[0:], 2)
	binary.NativeEndian.PutUint64(stack[8:], sp+32)
	binary.NativeEndian.PutUint64(stack[16:], sp+35)
	copy(stack[32:], "ab\x00cd\x00ENV=secret\x00")
	if got, argc, err := ParseArgv(stack, sp, RegsABI64, nil); err != nil || argc != 2 || string(got) != "ab\x00cd\x00" {
		t.Errorf("ParseArgv = %q, %d, %v", got, argc, err)
	}
	binary.NativeEndian.PutUint64(stack[16:], sp+4096)
	if got, _, err := ParseArgv(stack, sp, RegsABI64, nil); !errors.Is(err, ErrArgvMissing) || string(got) != "ab\x00" {
		t.Errorf("string beyond the dump: %q, %v", got, err)
	}
	binary.NativeEndian.PutUint64(stack[16:], sp-8)
	if _, _, err := ParseArgv(stack, sp, RegsABI64, nil); !errors.Is(err, ErrArgvMissing) {
		t.Errorf("string below sp: %v", err)
	}
	binary.NativeEndian.PutUint64(stack[16:], sp+32)
	if _, _, err := ParseArgv(stack, sp, RegsABI64, nil); !errors.Is(err, ErrArgvMissing) {
		t.Errorf("overlapping strings: %v", err)
	}
	binary.NativeEndian.PutUint64(stack[0:], 8)
	if _, argc, err := ParseArgv(stack, sp, RegsABI64, nil); !errors.Is(err, ErrArgvCut) || argc != 8 {
		t.Errorf("pointer table cut: %d, %v", argc, err)
	}
	binary.NativeEndian.PutUint64(stack[0:], 1<<40)
	if _, _, err := ParseArgv(stack, sp, RegsABI64, nil); !errors.Is(err, ErrArgvMissing) {
		t.Errorf("absurd argc: %v", err)
	}
	binary.NativeEndian.PutUint64(stack[0:], 1)
	binary.NativeEndian.PutUint64(stack[8:], sp+60)
	copy(stack[56:], "abcdefgh")
	if _, _, err := ParseArgv(stack, sp, RegsABI64, nil); !errors.Is(err, ErrArgvCut) {
		t.Errorf("unterminated string: %v", err)
	}
	if _, _, err := ParseArgv(stack, sp, RegsABINone, nil); !errors.Is(err, ErrArgvMissing) {
		t.Errorf("no registers: %v", err)
	}
	// 32-bit: 4-byte pointers.
	s32 := make([]byte, 32)
	binary.NativeEndian.PutUint32(s32[0:], 1)
	binary.NativeEndian.PutUint32(s32[4:], sp+12)
	copy(s32[12:], "i386\x00")
	if got, argc, err := ParseArgv(s32, sp, RegsABI32, nil); err != nil || argc != 1 || string(got) != "i386\x00" {
		t.Errorf("32-bit: %q, %d, %v", got, argc, err)
	}
}

func TestParseLostAndHeader(t *testing.T) {
	rec := make([]byte, headerLen+16+sampleIDLen)
	binary.NativeEndian.PutUint32(rec, recordLost)
	binary.NativeEndian.PutUint16(rec[6:], uint16(len(rec)))
	binary.NativeEndian.PutUint64(rec[headerLen+8:], 42)
	binary.NativeEndian.PutUint64(rec[headerLen+16+8:], 123456)
	if n, tm, err := ParseLost(rec); err != nil || n != 42 || tm != 123456 {
		t.Errorf("ParseLost = %d, %d, %v", n, tm, err)
	}
	if _, _, err := ParseLost(rec[:20]); !errors.Is(err, ErrRecord) {
		t.Errorf("short lost record: %v", err)
	}
	var s Sample
	if err := ParseSample(rec, func(uint16) Layout { return Layout{} }, &s); !errors.Is(err, ErrRecord) {
		t.Errorf("lost record as a sample: %v", err)
	}
	if _, _, err := ParseHeader([]byte{1, 0, 0, 0, 0, 0, 4, 0}); !errors.Is(err, ErrRecord) {
		t.Errorf("header of size 4: %v", err)
	}
}

func TestParseCPUList(t *testing.T) {
	for in, want := range map[string][]int{"0": {0}, "0-1": {0, 1}, "0-2,5,7-8": {0, 1, 2, 5, 7, 8}} {
		if got, err := ParseCPUList(in); err != nil || !cmp.Equal(got, want) {
			t.Errorf("ParseCPUList(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "a", "3-1", "-1", "0-99999999"} {
		if got, err := ParseCPUList(in); err == nil {
			t.Errorf("ParseCPUList(%q) = %v, want an error", in, got)
		}
	}
}

func FuzzParseFormat(f *testing.F) {
	ents, _ := os.ReadDir(filepath.Join("testdata", "format"))
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join("testdata", "format", e.Name()))
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fm, err := ParseFormat(b)
		if err != nil {
			return
		}
		raw := make([]byte, 64)
		for _, fd := range fm.Fields {
			fd.Uint(raw)
			fd.Int(raw)
			fd.String(raw)
		}
	})
}

func FuzzParseSample(f *testing.F) {
	for _, n := range []string{"exec", "newtask", "exit"} {
		b, _ := os.ReadFile(filepath.Join("testdata", "sample", n+".bin"))
		f.Add(b, n == "exec")
	}
	f.Fuzz(func(t *testing.T, b []byte, stack bool) {
		l := Layout{}
		if stack {
			l = execLayout
		}
		var s Sample
		if err := ParseSample(b, func(uint16) Layout { return l }, &s); err != nil {
			return
		}
		if len(s.Raw) > len(b) || len(s.Stack) > len(b) {
			t.Fatalf("slices longer than the record")
		}
		ParseArgv(s.Stack, s.SP, s.RegsABI, nil)
		ParseLost(b)
	})
}

func FuzzParseArgv(f *testing.F) {
	b, _ := os.ReadFile(filepath.Join("testdata", "sample", "exec.bin"))
	var s Sample
	if ParseSample(b, func(uint16) Layout { return execLayout }, &s) == nil {
		f.Add(s.Stack, s.SP, s.RegsABI)
	}
	f.Fuzz(func(t *testing.T, stack []byte, sp, abi uint64) {
		got, _, _ := ParseArgv(stack, sp, abi, nil)
		if len(got) > len(stack) {
			t.Fatalf("argv of %d bytes from a dump of %d", len(got), len(stack))
		}
	})
}

// BenchmarkDecode is the reader's per-sample decode on samples captured from
// this kernel: the header, the exec sample with its stack dump, its pid and
// filename fields and argv (appended to a reused buffer), and a fork. It
// must not allocate.
func BenchmarkDecode(b *testing.B) {
	exf, ntf := testFormat(b, "sched_sched_process_exec"), testFormat(b, "task_task_newtask")
	_, exec := testSample(b, "exec", execLayout)
	_, fork := testSample(b, "newtask", Layout{})
	pidf, _ := exf.Field("pid")
	fnf, _ := exf.Field("filename")
	chf, _ := ntf.Field("pid")
	clf, _ := ntf.Field("clone_flags")
	layout := func(id uint16) Layout {
		if id == exf.ID {
			return execLayout
		}
		return Layout{}
	}
	var s Sample
	var arena []byte
	b.ReportAllocs()
	b.SetBytes(int64(len(exec) + len(fork)))
	for b.Loop() {
		if _, _, err := ParseHeader(exec); err != nil {
			b.Fatal(err)
		}
		if err := ParseSample(exec, layout, &s); err != nil {
			b.Fatal(err)
		}
		pidf.Int(s.Raw)
		fn, _ := fnf.String(s.Raw)
		arena = append(arena[:0], fn...)
		var err error
		if arena, _, err = ParseArgv(s.Stack, s.SP, s.RegsABI, arena); err != nil {
			b.Fatal(err)
		}
		if err := ParseSample(fork, layout, &s); err != nil {
			b.Fatal(err)
		}
		chf.Int(s.Raw)
		clf.Uint(s.Raw)
	}
}
