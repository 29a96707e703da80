package cnproc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pofr/pofr/internal/testutil"
)

// procTestFrame builds one cn_proc datagram: nlmsghdr, cn_msg, proc_event
// with the given kind, time and union words (32-bit each).
func procTestFrame(what uint32, ts uint64, words ...uint32) []byte {
	le := binary.NativeEndian
	body := make([]byte, 24)
	for i, w := range words {
		le.PutUint32(body[i*4:], w)
	}
	ev := make([]byte, procEvHdrLen, procEvHdrLen+len(body))
	le.PutUint32(ev[0:4], what)
	le.PutUint32(ev[4:8], 1)
	le.PutUint64(ev[8:16], ts)
	ev = append(ev, body...)
	b := make([]byte, cnNlmsgHdrLen+cnMsgHdrLen, cnNlmsgHdrLen+cnMsgHdrLen+len(ev))
	b = append(b, ev...)
	le.PutUint32(b[0:4], uint32(len(b)))
	le.PutUint16(b[4:6], cnNlmsgDone)
	m := b[cnNlmsgHdrLen:]
	le.PutUint32(m[0:4], cnIdxProc)
	le.PutUint32(m[4:8], cnValProc)
	le.PutUint32(m[8:12], 7)
	le.PutUint16(m[16:18], uint16(len(ev)))
	return b
}

func TestDecodeProcEventsKinds(t *testing.T) {
	comm := [16]byte{'n', 'e', 'w', '-', 'n', 'a', 'm', 'e'}
	cw := func(i int) uint32 { return binary.NativeEndian.Uint32(comm[i*4:]) }
	tests := []struct {
		name  string
		frame []byte
		want  procMsg
	}{
		{"ack", procTestFrame(procEventNone, 5, 0), procMsg{What: procEventNone, TS: 5}},
		{"fork", procTestFrame(procEventFork, 10, 100, 100, 200, 200),
			procMsg{What: procEventFork, TS: 10, ParentPID: 100, ParentTGID: 100, PID: 200, TGID: 200}},
		{"thread", procTestFrame(procEventFork, 11, 100, 100, 201, 100),
			procMsg{What: procEventFork, TS: 11, ParentPID: 100, ParentTGID: 100, PID: 201, TGID: 100}},
		{"exec", procTestFrame(procEventExec, 12, 200, 200), procMsg{What: procEventExec, TS: 12, PID: 200, TGID: 200}},
		{"uid", procTestFrame(procEventUID, 13, 200, 200, 1000, 0),
			procMsg{What: procEventUID, TS: 13, PID: 200, TGID: 200, RID: 1000, EID: 0}},
		{"gid", procTestFrame(procEventGID, 14, 200, 200, 50, 51),
			procMsg{What: procEventGID, TS: 14, PID: 200, TGID: 200, RID: 50, EID: 51}},
		{"sid", procTestFrame(procEventSID, 15, 200, 200), procMsg{What: procEventSID, TS: 15, PID: 200, TGID: 200}},
		{"ptrace", procTestFrame(procEventPtrace, 16, 200, 200, 300, 300),
			procMsg{What: procEventPtrace, TS: 16, PID: 200, TGID: 200, TracerPID: 300, TracerTGID: 300}},
		{"comm", procTestFrame(procEventComm, 17, 200, 200, cw(0), cw(1), cw(2), cw(3)),
			procMsg{What: procEventComm, TS: 17, PID: 200, TGID: 200, Comm: comm}},
		{"coredump", procTestFrame(procEventCoredump, 18, 200, 200, 100, 100),
			procMsg{What: procEventCoredump, TS: 18, PID: 200, TGID: 200, ParentPID: 100, ParentTGID: 100}},
		{"exit", procTestFrame(procEventExit, 19, 200, 200, 3<<8, 17, 1, 1),
			procMsg{What: procEventExit, TS: 19, PID: 200, TGID: 200, ExitCode: 3 << 8, ExitSignal: 17, ParentPID: 1, ParentTGID: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeProcEvents(tc.frame, nil)
			if err != nil {
				t.Fatal(err)
			}
			tc.want.CPU, tc.want.Seq = 1, 7
			if diff := cmp.Diff([]procMsg{tc.want}, got); diff != "" {
				t.Errorf("decode (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeProcEventsMany(t *testing.T) {
	// Two messages in one datagram, and an unknown kind that must be skipped.
	a := procTestFrame(procEventExec, 1, 5, 5)
	u := procTestFrame(0x400, 2, 6, 6)
	b := procTestFrame(procEventSID, 3, 7, 7)
	got, err := decodeProcEvents(append(append(append([]byte(nil), a...), u...), b...), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].PID != 5 || got[1].PID != 7 {
		t.Errorf("got %+v, want exec of 5 then sid of 7", got)
	}
}

func TestDecodeProcEventsMalformed(t *testing.T) {
	good := procTestFrame(procEventExit, 1, 1, 1, 0, 17, 1, 1)
	le := binary.NativeEndian
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	tests := map[string][]byte{
		"short header":   good[:10],
		"length too big": mut(func(b []byte) []byte { le.PutUint32(b[0:4], 500); return b }),
		"length small":   mut(func(b []byte) []byte { le.PutUint32(b[0:4], 8); return b }),
		"short cn_msg":   mut(func(b []byte) []byte { le.PutUint32(b[0:4], 30); return b[:30] }),
		"payload > msg":  mut(func(b []byte) []byte { le.PutUint16(b[32:34], 200); return b }),
		"short event":    mut(func(b []byte) []byte { le.PutUint16(b[32:34], 20); return b }),
		"netlink error":  mut(func(b []byte) []byte { le.PutUint16(b[4:6], 2); return b }),
	}
	for name, frame := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := decodeProcEvents(frame, nil); !errors.Is(err, errProcFrame) {
				t.Errorf("err = %v, want errProcFrame", err)
			}
		})
	}
	// Another connector index is not ours: skipped, not an error.
	other := mut(func(b []byte) []byte { le.PutUint32(b[16:20], 2); return b })
	if got, err := decodeProcEvents(other, nil); err != nil || len(got) != 0 {
		t.Errorf("other connector: got %v, %v; want nothing, nil", got, err)
	}
}

// TestDecodeProcEventsCaptured decodes the frames captured from the kernel
// (TestPrivProcRecordFrames -proc.record): each file holds one datagram of
// the kind its name says.
func TestDecodeProcEventsCaptured(t *testing.T) {
	files := testutil.ReadFiles(t, filepath.Join("testdata", "*.bin"))
	if len(files) == 0 {
		t.Fatal("no frames in testdata")
	}
	kinds := map[string]uint32{}
	for w, n := range procKindNames {
		kinds[n] = w
	}
	kinds["thread"] = procEventFork
	seen := map[string]bool{}
	for _, file := range files {
		f := file.Path
		msgs, err := decodeProcEvents(file.Data, nil)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		name, _, _ := strings.Cut(filepath.Base(f), "-")
		if len(msgs) != 1 || msgs[0].What != kinds[name] {
			t.Errorf("%s: got %+v, want one %s event", f, msgs, name)
			continue
		}
		m := msgs[0]
		seen[name] = true
		switch name {
		case "thread":
			if m.PID == m.TGID {
				t.Errorf("%s: thread fork with pid == tgid %d", f, m.PID)
			}
		case "none":
		default:
			if m.TGID <= 0 || m.TS == 0 {
				t.Errorf("%s: implausible %+v", f, m)
			}
		}
	}
	for name := range kinds {
		if !seen[name] {
			t.Errorf("no captured frame of kind %s", name)
		}
	}
}

func FuzzDecodeProcEvents(f *testing.F) {
	testutil.AddSeeds(f, filepath.Join("testdata", "*.bin"))
	f.Add(procTestFrame(procEventExit, 1, 1, 1, 9, 17, 1, 1))
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		msgs, err := decodeProcEvents(b, nil)
		if !bytes.Equal(in, b) {
			t.Fatal("decoder modified its input")
		}
		if err != nil && !errors.Is(err, errProcFrame) {
			t.Fatalf("error %v does not wrap errProcFrame", err)
		}
		for _, m := range msgs {
			if _, ok := procEventBody(m.What); !ok {
				t.Fatalf("decoded unknown kind %#x", m.What)
			}
		}
		again, _ := decodeProcEvents(b, nil)
		if !cmp.Equal(msgs, again) {
			t.Fatal("decoding is not deterministic")
		}
	})
}

func BenchmarkDecodeProcEvents(b *testing.B) {
	frame := procTestFrame(procEventExit, 1, 1, 1, 0, 17, 1, 1)
	out := make([]procMsg, 0, 4)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		out, _ = decodeProcEvents(frame, out[:0])
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
}

func TestProcWaitStatus(t *testing.T) {
	type res struct {
		Code   int32
		CodeOK bool
		Sig    int32
		SigOK  bool
	}
	for ws, want := range map[uint32]res{
		0:          {0, true, 0, false},
		3 << 8:     {3, true, 0, false},
		9:          {0, false, 9, true},
		11 | 0x80:  {0, false, 11, true}, // core dumped
		255 << 8:   {255, true, 0, false},
		15 | 1<<16: {0, false, 15, true},
	} {
		c, cok, s, sok := procWaitStatus(ws)
		if got := (res{c, cok, s, sok}); got != want {
			t.Errorf("procWaitStatus(%#x) = %+v, want %+v", ws, got, want)
		}
	}
}
