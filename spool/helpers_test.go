package spool

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/pofr/pofr/internal/event"
)

// testKey is a fixed signing key, so failures reproduce.
var testKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

var testPub = testKey.Public().(ed25519.PublicKey)

const testHost = "h-0001"

// clock is a settable clock for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 11, 25, 19, 2, 53, 123456789, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testOptions returns writer options with a fixed key and clock; the
// background sealer never fires by age (one hour), so tests seal explicitly.
func testOptions(c *clock) Options {
	return Options{HostID: testHost, BootID: "6d0f1c3e-0000-4000-8000-000000000001", Key: testKey,
		MaxSegmentAge: time.Hour, Now: c.Now, Hostname: "web1", Version: "test"}
}

func openWriter(t *testing.T, dir string, opts Options) *Writer {
	t.Helper()
	w, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return w
}

// abandon stops w as kill -9 would: no final seal, no state write; the lock
// is released as the kernel would release it.
func (w *Writer) abandon() {
	w.mu.Lock()
	w.cur = nil
	w.mu.Unlock()
	close(w.done)
	w.wg.Wait()
	w.lock.Close()
}

// closeOne closes w and returns the bytes of the one segment it left in dir.
func closeOne(t testing.TB, w *Writer, dir string) []byte {
	t.Helper()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	infos, err := List(dir)
	if err != nil || len(infos) != 1 {
		t.Fatalf("List = %v, %v; want one segment", infos, err)
	}
	b, err := os.ReadFile(infos[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// verifyDir verifies every segment in dir in order, checking the chain from
// the first one, and returns them (the caller releases them).
func verifyDir(t *testing.T, dir string) []*Segment {
	t.Helper()
	infos, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []*Segment
	var prev *string
	for _, in := range infos {
		b, err := os.ReadFile(in.Path)
		if err != nil {
			t.Fatal(err)
		}
		seg, err := VerifyBytes(b, VerifyOptions{PublicKey: testPub, HostID: testHost, PrevDigest: prev})
		if err != nil {
			t.Fatalf("verify %s: %v", in.Name, err)
		}
		if got := seg.Name(); got != in.Name {
			t.Errorf("file %s: content names %s", in.Name, got)
		}
		d := seg.Digest
		prev = &d
		out = append(out, seg)
		t.Cleanup(seg.Release)
	}
	return out
}

func readAll(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hostile values shared by the round-trip tests.
var (
	bigArgv = append([]byte("sh\x00-c\x00echo 'a\tb'\n\"q\" \\N ### \xff\xfe\x00"), bytes.Repeat([]byte{'x'}, 128<<10)...)
	oddPath = []byte("/tmp/a\tb\nc\x00d\"e'f\\g###\xff\xc0\x80/\u202e/é")
)

func hostileRows() ([]event.Proc, []event.File, []event.Sock, []event.Gap, []event.Account) {
	procs := []event.Proc{
		{TS: 1764097373123456789, Event: event.ProcExec, PID: 4242, TID: 4243, PPID: 1,
			ProcStart: 123_450_000_000, ParentStart: event.Some[int64](10_000_000),
			UID: 1000, EUID: 0, GID: event.NoID, EGID: 0, AUID: event.NoID, SessionID: 7,
			TTY: []byte("pts/0"), Comm: []byte("a\tb\nc\x00\xff"), Exe: []byte("/usr/bin/\xff odd"),
			Argv: bigArgv, Cwd: []byte{}, ExitCode: event.Some[int32](3), ExitSignal: event.Opt[int32]{},
			TracerPID: event.Some[int32](0), Cgroup: []byte("/system.slice/docker-abc.scope"), ContainerID: []byte("abc"),
			NSPid: event.Some[uint32](4026531836), NSMnt: event.Some[uint32](0), NSNet: event.Some[uint32](4026531840),
			NSUser: event.Some[uint32](1), NSUts: event.Some[uint32](2), NSIpc: event.Some[uint32](3), NSCgroup: event.Some[uint32](^uint32(0) - 1),
			Flags: event.ProcFlagArgvTruncated | event.ProcFlagSelf},
		// Everything unknown: nulls everywhere.
		{TS: 1764097373123456790, Event: event.ProcFork, PID: 2, TID: 2, UID: event.NoID, EUID: event.NoID,
			GID: event.NoID, EGID: event.NoID, AUID: event.NoID, SessionID: event.NoID},
		// Empty (not null) bytes everywhere.
		{TS: 1764097373123456791, Event: event.ProcExit, PID: -1, TID: 1 << 30, PPID: -5, ProcStart: -1,
			TTY: []byte{}, Comm: []byte{}, Exe: []byte{}, Argv: []byte{}, Cwd: []byte{}, Cgroup: []byte{}, ContainerID: []byte{},
			ExitSignal: event.Some[int32](9), Flags: ^uint32(0)},
		// The same values again, so dictionaries repeat.
		{TS: 1764097373123456792, Event: event.ProcExec, PID: 4244, TID: 4244, Comm: []byte("a\tb\nc\x00\xff"),
			Exe: []byte("/usr/bin/\xff odd"), Argv: []byte("\x00\x00\x00"), Cwd: oddPath,
			UID: event.NoID, EUID: event.NoID, GID: event.NoID, EGID: event.NoID, AUID: 0, SessionID: 0},
	}
	files := []event.File{
		{TS: 5, LastTS: 9, Count: 10000, PID: 3, ProcStart: event.Some[int64](77), UID: 0, Op: event.FileRename,
			Path: oddPath, NewPath: []byte("/tmp/\xff"), Inode: event.Some[uint64](^uint64(0)), Dev: event.Some[uint64](2049), Flags: event.FileFlagDir},
		{TS: 6, LastTS: 6, Count: 1, PID: 4, UID: event.NoID, Op: event.FileWrite, Path: []byte{}, NewPath: nil},
		{TS: 7, LastTS: 8, Count: ^uint32(0), PID: 5, UID: 1, Op: event.FileOpen, Path: oddPath, NewPath: []byte{}},
	}
	socks := []event.Sock{
		{TS: 6, Event: event.SockClose, Proto: "tcp", Family: 6, State: "CLOSE", Direction: event.DirOut,
			LocalAddr: make([]byte, 16), LocalPort: 4000, RemoteAddr: []byte{0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, RemotePort: 65535,
			Cookie: 1 << 40, UID: event.NoID, PID: event.Some[int32](9), ProcStart: event.Some[int64](1), Netns: event.Some[uint64](4026531840),
			BytesSent: event.Some[uint64](1024), BytesRecv: event.Some[uint64](0), FirstTS: event.Some[int64](2), Flags: event.SockFlagFromDestroy},
		{TS: 7, Event: event.SockListen, Proto: "udp", Family: 4, State: "CLOSE", LocalAddr: []byte{127, 0, 0, 1},
			RemoteAddr: []byte{0, 0, 0, 0}, UID: 0, Flags: event.SockFlagOwnerUnknown},
	}
	gaps := []event.Gap{
		{FromTS: 1, ToTS: 2, Source: event.SourceProc, Reason: "ENOBUFS on cn_proc socket"},
		{FromTS: 3, ToTS: 3, Source: event.SourceFile, Lost: event.Some[int64](0), Reason: "tab\there \"quoted\" \x00 ###"},
	}
	accts := []event.Account{
		{TS: 1, Kind: event.AcctUser, ID: 1000, Name: []byte("al\tice\n\xff")},
		{TS: 1, Kind: event.AcctGroup, ID: 0, Name: []byte{}},
	}
	return procs, files, socks, gaps, accts
}

// hostileExes are exe rows with extreme values, a hostile path and a
// skipped (null) hash.
func hostileExes() []event.Executable {
	sum := make([]byte, 32)
	for i := range sum {
		sum[i] = byte(255 - i)
	}
	return []event.Executable{
		{TS: 4, LastTS: 9, Count: ^uint32(0), PID: -1, Dev: ^uint64(0), Inode: 1 << 63, Size: 1<<63 - 1,
			MTimeNS: -1, CTimeNS: 1 << 62, SHA256: sum, How: event.ExeByHandle, Path: oddPath},
		{TS: 5, LastTS: 5, Count: 1, PID: 7, Size: 1 << 40, How: event.ExeByProc, Skip: event.ExeSkipTooLarge, Path: []byte("/tmp/\t\n\\\x00\xff")},
	}
}

// sealFiles appends rows file rows on path at the clock's time, seals them
// and advances the clock by a second.
func sealFiles(t *testing.T, w *Writer, c *clock, rows int, path string) {
	t.Helper()
	for i := range rows {
		w.AppendFile(&event.File{TS: c.Now().UnixNano() + int64(i), LastTS: c.Now().UnixNano() + int64(i), Op: event.FileWrite, Path: []byte(path)})
	}
	if err := w.Seal(); err != nil {
		t.Fatal(err)
	}
	c.Add(time.Second)
}
