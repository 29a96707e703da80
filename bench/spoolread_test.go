package bench

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/spool"
)

// TestReadSpool writes a spool with the real writer and reads it back.
func TestReadSpool(t *testing.T) {
	dir := t.TempDir()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	w, err := spool.Open(dir, spool.Options{HostID: "local", BootID: "boot", Key: key, MaxSegmentAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Now().UnixNano()
	w.AppendProc(&event.Proc{TS: ts, Event: event.ProcExec, PID: 10, PPID: 9, Argv: []byte("/x/life\x00pofrbench-t-1\x005000"), Exe: []byte("/x/life")})
	w.AppendProc(&event.Proc{TS: ts + 1, Event: event.ProcExec, PID: 11, PPID: 9, Argv: []byte("/bin/true")})
	w.AppendProc(&event.Proc{TS: ts + 2, Event: event.ProcExit, PID: 11, Flags: event.ProcFlagGone})
	w.AppendSock(&event.Sock{TS: ts + 3, Event: event.SockClose, Proto: "tcp", Family: 4, LocalPort: 40000, RemotePort: 9000, PID: event.Some[int32](88)})
	w.AppendSock(&event.Sock{TS: ts + 4, Event: event.SockClose, Proto: "udp", Family: 6, LocalPort: 40001, RemotePort: 9001})
	w.AppendFile(&event.File{TS: ts + 5, LastTS: ts + 5, Count: 1, PID: 7, Op: event.FileRename, Path: []byte("/d/churn-3.tmp"), NewPath: []byte("/d/churn-3.dat")})
	w.AppendFile(&event.File{TS: ts + 6, LastTS: ts + 6, Count: 2, PID: 7, Op: event.FileOpen, Path: []byte("/etc/passwd")})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "not-a-segment.pofr"), []byte("junk"), 0o600)

	got, err := ReadSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Segments < 1 || got.Bytes <= 0 || got.Rows < 7 {
		t.Errorf("%d segments, %d bytes, %d rows; want ≥ 1, > 0, ≥ 7", got.Segments, got.Bytes, got.Rows)
	}
	wantProcs := []ProcRow{
		{TS: ts, Event: event.ProcExec, PID: 10, PPID: 9, HasArgv: true, HasExe: true, Marker: "pofrbench-t-1"},
		{TS: ts + 1, Event: event.ProcExec, PID: 11, PPID: 9, HasArgv: true},
		{TS: ts + 2, Event: event.ProcExit, PID: 11, Flags: event.ProcFlagGone},
	}
	if diff := cmp.Diff(wantProcs, got.Procs); diff != "" {
		t.Errorf("procs (-want +got):\n%s", diff)
	}
	wantSocks := []SockRow{
		{TS: ts + 3, Event: event.SockClose, Key: SockKey{"tcp", 4, 40000, 9000}, PID: 88},
		{TS: ts + 4, Event: event.SockClose, Key: SockKey{"udp", 6, 40001, 9001}},
	}
	if diff := cmp.Diff(wantSocks, got.Socks); diff != "" {
		t.Errorf("socks (-want +got):\n%s", diff)
	}
	wantFiles := []FileRow{{TS: ts + 5, Op: event.FileRename, PID: 7, Name: "churn-3.tmp", NewName: "churn-3.dat", Aggregate: 1}}
	if diff := cmp.Diff(wantFiles, got.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
}
