package servertest

import (
	"bytes"

	"github.com/pofr/pofr/internal/event"
)

// hostileBytes returns one of every kind of value that has broken loaders:
// separators, escapes, NUL, quotes, SQL, \N and NULL as text, invalid UTF-8,
// every byte value, 128 KiB of argv, empty versus null.
func hostileBytes() [][]byte {
	var all []byte
	for c := 0; c < 256; c++ {
		all = append(all, byte(c))
	}
	return [][]byte{
		[]byte("a\tb"), []byte("line1\nline2\r\n"), []byte(`back\slash\`), []byte("nul\x00in\x00the\x00middle\x00"),
		[]byte(`'"` + "`"), []byte(`\N`), []byte("NULL"), []byte("\xff\xfe\xc3\x28 invalid utf-8"),
		[]byte("'; DROP TABLE proc_events; --"), []byte("###"), all, {}, []byte(`\`), []byte("\\\t\\n"),
	}
}

// HostileRows returns rows of every table whose values have broken loaders
// (see hostileBytes), from base (ns) on.
func HostileRows(base int64) ([]event.Proc, []event.File, []event.Sock, []event.Gap, []event.Account) {
	hb := hostileBytes()
	bigArgv := append([]byte("sh\x00-c\x00"), bytes.Repeat([]byte("x\t\n\\\x00'"), (128<<10)/6+1)...)
	var procs []event.Proc
	for i, v := range hb {
		procs = append(procs, event.Proc{
			TS: base + int64(i)*1_000_000_007, Event: event.ProcExec, PID: int32(1000 + i), TID: int32(1000 + i), PPID: 1,
			ProcStart: int64(i) * 10_000_000, ParentStart: event.Some[int64](7),
			UID: uint32(i), EUID: event.NoID, GID: 0, EGID: 4294967294, AUID: event.NoID, SessionID: uint32(i),
			TTY: v, Comm: v, Exe: append([]byte("/usr/bin/"), v...), Argv: v, Cwd: v,
			ExitCode: event.Some(int32(-i)), ExitSignal: event.Opt[int32]{}, TracerPID: event.Some[int32](0),
			Cgroup: v, ContainerID: v, NSPid: event.Some[uint32](4026531836), NSMnt: event.Some[uint32](0), Flags: uint32(i) | 1<<31,
		})
	}
	procs = append(procs,
		event.Proc{TS: base - 1, Event: event.ProcFork, PID: 1, TID: 1, ProcStart: -5, UID: event.NoID, EUID: event.NoID, GID: event.NoID,
			EGID: event.NoID, AUID: event.NoID, SessionID: event.NoID, Argv: bigArgv, Flags: event.ProcFlagArgvTruncated},
		event.Proc{TS: base + 999, Event: event.ProcExit, PID: 2147483647, TID: -2147483648, PPID: 0, ProcStart: 9223372036854775807,
			UID: 4294967294, EUID: 0, GID: 0, EGID: 0, AUID: 0, SessionID: 0, ExitCode: event.Some[int32](255), ExitSignal: event.Some[int32](9)},
	)
	var files []event.File
	for i, v := range hb {
		files = append(files, event.File{TS: base + int64(i), LastTS: base + int64(i)*1000 + 5000, Count: uint32(i) + 1, PID: int32(i),
			ProcStart: event.Some(int64(i)), UID: uint32(i), Op: event.FileRename, Path: v, NewPath: append([]byte("/new/"), v...),
			Inode: event.Some(uint64(1) << 63), Dev: event.Some[uint64](2049), Flags: event.FileFlagDir})
	}
	files = append(files, event.File{TS: base, LastTS: base, Count: 4294967295, PID: 3, UID: event.NoID, Op: event.FileOpen, Path: []byte("/tmp/x")})
	socks := []event.Sock{
		{TS: base, Event: event.SockClose, Proto: "tcp", Family: 6, State: "CLOSE", Direction: event.DirOut,
			LocalAddr: bytes.Repeat([]byte{0x0a}, 16), LocalPort: 65535, RemoteAddr: []byte{9, 0, '\t', '\n'}, RemotePort: 443,
			Inode: event.Some[uint64](12345), Cookie: 1<<64 - 1, UID: 1000, PID: event.Some[int32](42), ProcStart: event.Some[int64](99),
			Netns: event.Some[uint64](4026531840), BytesSent: event.Some[uint64](1 << 40), BytesRecv: event.Some[uint64](0),
			FirstTS: event.Some(base - 5_000_000_000), Flags: event.SockFlagFromDestroy},
		{TS: base + 1, Event: event.SockListen, Proto: "udp", Family: 4, State: "CLOSE", LocalAddr: []byte{0, 0, 0, 0},
			RemoteAddr: []byte{0, 0, 0, 0}, Cookie: 0, UID: event.NoID, Flags: event.SockFlagOwnerUnknown},
	}
	gaps := []event.Gap{
		{FromTS: base - 10, ToTS: base, Source: event.SourceProc, Lost: event.Some[int64](12), Reason: "ENOBUFS on cn_proc socket"},
		{FromTS: base, ToTS: base + 1, Source: event.SourceSpool, Reason: "quota \t\n\\N '; DROP TABLE gaps; -- é"},
	}
	accts := []event.Account{
		{TS: base, Kind: event.AcctUser, ID: 1000, Name: []byte("al\tice\x00\\N")},
		{TS: base, Kind: event.AcctGroup, ID: 4294967295, Name: []byte{}},
		{TS: base, Kind: event.AcctGroup, ID: 5},
	}
	return procs, files, socks, gaps, accts
}

// HostileExes are exe rows with every hostile path, extreme numbers and a
// skipped (null) hash.
func HostileExes(base int64) []event.Executable {
	var out []event.Executable
	for i, v := range hostileBytes() {
		sum := bytes.Repeat([]byte{byte(i), '\t', '\n', '\\', 0}, 7)[:32]
		out = append(out, event.Executable{TS: base + int64(i), LastTS: base + int64(i)*1000, Count: uint32(i) + 1, PID: int32(-i),
			Dev: 1<<64 - 1, Inode: uint64(i), Size: int64(i) << 40, MTimeNS: -int64(i), CTimeNS: 1<<63 - 1, SHA256: sum,
			How: event.ExeByHandle, Path: v})
	}
	return append(out, event.Executable{TS: base, LastTS: base, Count: 1, PID: 1, Size: 1 << 62, How: event.ExeByProc, Skip: event.ExeSkipTooLarge})
}

// HostileLogins are login rows with hostile bytes in every text field, cut to
// their utmp field sizes, and extreme numbers.
func HostileLogins(base int64) []event.Login {
	cut := func(b []byte, n int) []byte { return b[:min(len(b), n)] }
	var out []event.Login
	for i, v := range hostileBytes() {
		out = append(out, event.Login{TS: base + int64(i)*1000, Kind: event.LoginFailed, File: "btmp", UTType: int32(i) - 1,
			PID: int32(-i), TTY: cut(v, 32), UTID: cut(v, 4), User: cut(v, 32), RemoteHost: cut(v, 256),
			RemoteAddr: []byte{192, 0, 2, byte(i)}, Session: -1 << 31})
	}
	return append(out, event.Login{TS: base, Kind: event.LoginLogin, File: "wtmp", UTType: 7, PID: 1<<31 - 1,
		RemoteAddr: bytes.Repeat([]byte{0xfe}, 16)})
}

// HostileContainers are ctr rows with hostile bytes in every text field, cut
// to their column sizes, and a not-found row with every field null.
func HostileContainers(base int64) []event.Container {
	cut := func(b []byte, n int) []byte { return b[:min(len(b), n)] }
	var out []event.Container
	for i, v := range hostileBytes() {
		out = append(out, event.Container{TS: base + int64(i)*1000, ID: cut(v, 1024), PID: int32(-i), Runtime: event.RuntimeContainerd,
			Name: cut(v, 1024), Image: v, Pod: cut(v, 1024), Namespace: cut(v, 1024), Source: v})
	}
	return append(out, event.Container{TS: base, ID: bytes.Repeat([]byte("f"), 64), PID: 1<<31 - 1, Error: event.CtrNotFound})
}
