package cnproc

import (
	"encoding/binary"
	"testing"
)

func TestProcSubscribeFilterFrame(t *testing.T) {
	b := procSubscribeFilterFrame(procCnMcastListen, procTPEvents)
	le := binary.NativeEndian
	if int(le.Uint32(b)) != len(b) || len(b) != cnNlmsgHdrLen+cnMsgHdrLen+8 {
		t.Fatalf("frame of %d bytes says %d", len(b), le.Uint32(b))
	}
	m := b[cnNlmsgHdrLen:]
	if le.Uint32(m) != cnIdxProc || le.Uint16(m[16:]) != 8 || le.Uint32(m[20:]) != procCnMcastListen {
		t.Errorf("header %x", m[:24])
	}
	if ev := le.Uint32(m[24:]); ev != procTPEvents || ev&(procEventFork|procEventExec) != 0 {
		t.Errorf("event mask %#x, want %#x without fork and exec", ev, procTPEvents)
	}
}

func TestKernelAtLeast(t *testing.T) {
	for rel, want := range map[string]bool{"6.6.0": true, "6.18.44-fc-v1147": true, "6.5.13": false, "5.15.0-91-generic": false,
		"7.0": true, "garbage": false} {
		if got := kernelAtLeast(rel, 6, 6); got != want {
			t.Errorf("kernelAtLeast(%q, 6, 6) = %v, want %v", rel, got, want)
		}
	}
}

func TestMergeByTime(t *testing.T) {
	mk := func(ts ...uint64) []tpItem {
		var out []tpItem
		for _, x := range ts {
			out = append(out, tpItem{msg: procMsg{TS: x}})
		}
		return out
	}
	got := mergeByTime(nil, mk(1, 4, 6), mk(2, 3, 7))
	for i, want := range []uint64{1, 2, 3, 4, 6, 7} {
		if got[i].msg.TS != want {
			t.Fatalf("merged %v", got)
		}
	}
}
