package cnproc

import (
	"bytes"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/procfs"
)

// Namespace kinds in the order of procInfo.ns and of the ns_* columns.
var procNSNames = [...]string{"pid", "mnt", "net", "user", "uts", "ipc", "cgroup"}

// procInfo is what /proc said about one process at one moment. The have bits
// say which parts could be read; the rest is unknown (the process was gone).
type procInfo struct {
	have      uint32
	start     int64 // proc_start from stat (ns since boot, tick resolution)
	ppid      int32
	kthread   bool
	argvTrunc bool
	argvLate  bool // tracepoint capture: argv was read from /proc at a drain, not taken from the exec's stack dump
	exeNamed  bool // tracepoint capture: exe is the path execve was given, not /proc's (symlinks not resolved)
	comm      []byte
	tty       []byte
	exe       []byte
	argv      []byte
	cwd       []byte
	cgroup    []byte
	container []byte
	uid, euid uint32
	gid, egid uint32
	auid, sid uint32
	ns        [len(procNSNames)]event.Opt[uint32]
}

// procInfo.have bits; procReader.readInto takes them as what to read.
const (
	procHaveStat    uint32 = 1 << iota // start, ppid, comm, tty, kthread from stat
	procHaveStatus                     // uid, euid, gid, egid from status
	procHaveArgv                       // argv from cmdline
	procHaveExe                        // exe link
	procHaveCwd                        // cwd link
	procHaveLogin                      // loginuid (readInto: and sessionid if set)
	procHaveSession                    // sessionid
	procHaveCgroup                     // cgroup path (container derived by the table)
	procHaveNS                         // at least one ns link (ns[i].Valid says which)
	procHaveComm                       // comm (stat, or status Name)
	procHavePPid                       // ppid (stat, or status PPid)

	// procHaveAll is everything: snapshots, resyncs, FullEnrich.
	procHaveAll = procHaveStat | procHaveStatus | procHaveArgv | procHaveExe | procHaveCwd |
		procHaveLogin | procHaveCgroup | procHaveNS
)

// detach replaces in's byte slices, which may point into a reader's
// buffers, with copies, and derives the container id.
func (in *procInfo) detach() {
	clone := func(b []byte) []byte {
		if b == nil {
			return nil
		}
		return append([]byte{}, b...)
	}
	in.comm, in.exe, in.argv, in.cwd, in.cgroup = clone(in.comm), clone(in.exe), clone(in.argv), clone(in.cwd), clone(in.cgroup)
	in.container = nil
	if in.cgroup != nil {
		in.container = procfs.ContainerID(in.cgroup)
	}
}

// isELFLoaderPath reports whether an executable path is an ELF program
// interpreter (ld-linux-x86-64.so.2, ld-musl-*.so.1, ld.so…), which the
// kernel opens for execution after the binary itself.
func isELFLoaderPath(p []byte) bool {
	base := p
	if i := bytes.LastIndexByte(p, '/'); i >= 0 {
		base = p[i+1:]
	}
	return bytes.HasPrefix(base, []byte("ld-linux")) || bytes.HasPrefix(base, []byte("ld-musl")) ||
		bytes.HasPrefix(base, []byte("ld64.so")) || bytes.HasPrefix(base, []byte("ld.so"))
}

// execComm reports whether comm is what an exec of filename sets: the
// kernel names the task after the file's base name, cut to 15 bytes. A
// mismatch means /proc already shows a later exec of the same pid (or the
// program renamed itself, which then costs it its /proc argv, never a
// wrong one).
func execComm(comm, filename []byte) bool {
	base := filename[bytes.LastIndexByte(filename, '/')+1:]
	if len(base) > 15 {
		base = base[:15]
	}
	return bytes.Equal(comm, base)
}
