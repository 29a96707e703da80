package fanotify

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pofr/pofr/internal/testutil"
)

// fanRecord builds one fid info record (with a NUL-terminated name when
// name is not nil), padded to 4 bytes as the kernel does.
func fanRecord(typ byte, fsid [2]int32, htype int32, handle, name []byte) []byte {
	var b []byte
	b = append(b, typ, 0, 0, 0)
	b = binary.NativeEndian.AppendUint32(b, uint32(fsid[0]))
	b = binary.NativeEndian.AppendUint32(b, uint32(fsid[1]))
	b = binary.NativeEndian.AppendUint32(b, uint32(len(handle)))
	b = binary.NativeEndian.AppendUint32(b, uint32(htype))
	b = append(b, handle...)
	if name != nil {
		b = append(b, name...)
		b = append(b, 0)
	}
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	binary.NativeEndian.PutUint16(b[2:], uint16(len(b)))
	return b
}

// fanMeta builds an event: metadata followed by records.
func fanMeta(mask uint64, pid int32, recs ...[]byte) []byte {
	b := make([]byte, fanMetadataLen)
	b[4] = fanMetadataVersion
	binary.NativeEndian.PutUint16(b[6:], fanMetadataLen)
	binary.NativeEndian.PutUint64(b[8:], mask)
	binary.NativeEndian.PutUint32(b[16:], ^uint32(0)) // FAN_NOFD
	binary.NativeEndian.PutUint32(b[20:], uint32(pid))
	for _, r := range recs {
		b = append(b, r...)
	}
	binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
	return b
}

type decodedEvent struct {
	Mask          uint64
	PID           int32
	FID           fanFID
	Dir           fanFID
	Name          string
	OldDir        fanFID
	Old           string
	NewDir        fanFID
	New           string
	HasPID        bool
	PIDFD, FDDesc int32
}

func decodeAll(t *testing.T, b []byte) ([]decodedEvent, error) {
	t.Helper()
	var out []decodedEvent
	err := decodeFanotify(b, new(fanEvent), func(ev *fanEvent) {
		out = append(out, decodedEvent{Mask: ev.Mask, PID: ev.PID, FID: ev.FID, Dir: ev.Name.Dir, Name: string(ev.Name.Name),
			OldDir: ev.Old.Dir, Old: string(ev.Old.Name), NewDir: ev.New.Dir, New: string(ev.New.Name),
			HasPID: ev.HasPID, PIDFD: ev.PIDFD, FDDesc: ev.FD})
	})
	return out, err
}

func TestDecodeFanotify(t *testing.T) {
	fs := [2]int32{7, -9}
	dirH := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	objH := []byte{9, 0, 0, 0, 1, 0, 0, 0}
	name := []byte("a b\n\xff")
	pidfd := []byte{fanInfoPIDFD, 0, 8, 0, 42, 0, 0, 0}
	buf := append(fanMeta(fanOpen|fanOpenExec, 1234,
		fanRecord(fanInfoDFIDName, fs, 1, dirH, name), fanRecord(fanInfoFID, fs, 1, objH, nil), pidfd),
		fanMeta(fanRename|fanOnDir, 99,
			fanRecord(fanInfoOldDFIDName, fs, 1, dirH, []byte("old")),
			fanRecord(fanInfoNewDFIDName, fs, 2, objH, []byte("new")),
			[]byte{200, 0, 8, 0, 1, 2, 3, 4}, // an unknown record type is skipped
		)...)
	buf = append(buf, fanMeta(fanQOverflow, 0)...)
	got, err := decodeAll(t, buf)
	if err != nil {
		t.Fatal(err)
	}
	want := []decodedEvent{
		{Mask: fanOpen | fanOpenExec, PID: 1234, FDDesc: -1, FID: fanFID{fs, 1, objH}, Dir: fanFID{fs, 1, dirH}, Name: string(name), HasPID: true, PIDFD: 42},
		{Mask: fanRename | fanOnDir, PID: 99, FDDesc: -1, OldDir: fanFID{fs, 1, dirH}, Old: "old", NewDir: fanFID{fs, 2, objH}, New: "new"},
		{Mask: fanQOverflow, FDDesc: -1},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("decode (-want +got):\n%s", d)
	}
	if ino, ok := handleInode(&got[0].FID); !ok || ino != 9 {
		t.Errorf("handleInode(ext4 handle) = %d, %v, want 9, true", ino, ok)
	}
}

func TestDecodeFanotifyRefusesCorrupt(t *testing.T) {
	fs := [2]int32{1, 2}
	good := fanMeta(fanOpen, 1, fanRecord(fanInfoDFIDName, fs, 1, []byte{1, 2, 3, 4}, []byte("x")))
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for name, b := range map[string][]byte{
		"short":        good[:10],
		"version":      mut(func(b []byte) []byte { b[4] = 2; return b }),
		"event_len":    mut(func(b []byte) []byte { binary.NativeEndian.PutUint32(b, uint32(len(b)+1)); return b }),
		"metadata_len": mut(func(b []byte) []byte { binary.NativeEndian.PutUint16(b[6:], 8); return b }),
		"info_len":     mut(func(b []byte) []byte { binary.NativeEndian.PutUint16(b[26:], 200); return b }),
		"handle_bytes": mut(func(b []byte) []byte { binary.NativeEndian.PutUint32(b[36:], 1000); return b }),
		"no NUL": mut(func(b []byte) []byte {
			for i := 48; i < len(b); i++ {
				b[i] = 'x'
			}
			return b
		}),
		"tiny event_len": mut(func(b []byte) []byte { binary.NativeEndian.PutUint32(b, 0); return b }),
	} {
		if _, err := decodeAll(t, b); !errors.Is(err, ErrFanotifyCorrupt) {
			t.Errorf("%s: err %v, want ErrFanotifyCorrupt", name, err)
		}
	}
}

// TestDecodeFanotifyCaptured decodes the buffers captured from the kernel
// (go test -run TestPrivFileOps -capture-fanotify, as root) and checks that
// they hold the event kinds the source relies on.
func TestDecodeFanotifyCaptured(t *testing.T) {
	files := testutil.ReadFiles(t, "testdata/*.bin")
	if len(files) == 0 {
		t.Fatal("no captured buffers in testdata")
	}
	var seen uint64
	var renames, names int
	for _, f := range files {
		evs, err := decodeAll(t, f.Data)
		if err != nil {
			t.Errorf("%s: %v", f.Path, err)
		}
		for _, ev := range evs {
			seen |= ev.Mask
			if ev.Mask&fanRename != 0 && ev.Old != "" && ev.New != "" && ev.OldDir.Handle != nil && ev.NewDir.Handle != nil {
				renames++
			}
			if ev.Dir.Handle != nil && ev.Name != "" {
				names++
			}
		}
	}
	for _, m := range []uint64{fanOpen, fanOpenExec, fanCloseWrite, fanCreate, fanDelete, fanRename} {
		if seen&m == 0 {
			t.Errorf("captured buffers hold no event with mask bit %#x", m)
		}
	}
	if renames == 0 || names == 0 {
		t.Errorf("captured buffers: %d renames with both names, %d dir+name records; want some of each", renames, names)
	}
}

func FuzzDecodeFanotify(f *testing.F) {
	testutil.AddSeeds(f, "testdata/*.bin")
	f.Add(fanMeta(fanQOverflow, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		total := 0
		err := decodeFanotify(b, new(fanEvent), func(ev *fanEvent) {
			for _, n := range [][]byte{ev.Name.Name, ev.Old.Name, ev.New.Name} {
				if bytes.IndexByte(n, 0) >= 0 {
					t.Fatalf("name %q holds a NUL", n)
				}
			}
			total++
		})
		if err == nil && len(b) > 0 && total == 0 {
			t.Fatalf("%d bytes decoded without error and without events", len(b))
		}
		if err != nil && !errors.Is(err, ErrFanotifyCorrupt) {
			t.Fatalf("error %v is not ErrFanotifyCorrupt", err)
		}
	})
}
