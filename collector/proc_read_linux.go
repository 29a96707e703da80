package collector

import (
	"fmt"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Names under /proc/PID, NUL-terminated for the raw syscalls below.
var (
	nameCmdline   = []byte("cmdline\x00")
	nameExe       = []byte("exe\x00")
	nameStat      = []byte("stat\x00")
	nameCwd       = []byte("cwd\x00")
	nameStatus    = []byte("status\x00")
	nameLoginuid  = []byte("loginuid\x00")
	nameSessionid = []byte("sessionid\x00")
	nameCgroup    = []byte("cgroup\x00")
	nameNS        = func() [len(procNSNames)][]byte {
		var n [len(procNSNames)][]byte
		for i, s := range procNSNames {
			n[i] = []byte("ns/" + s + "\x00")
		}
		return n
	}()
)

// procReader reads /proc/PID files relative to a pre-opened procfs directory
// with openat and reused buffers: no path strings, no allocation beyond the
// bytes it keeps. One goroutine uses one procReader.
type procReader struct {
	root    int // dirfd of the procfs mount
	argvMax int
	buf     []byte // scratch for stat, status, cgroup, links
	argv    []byte // argvMax+1 bytes, to tell a cut argv
	path    []byte // "<pid>" or "<pid>/stat", NUL-terminated
}

func newProcReader(root int, argvMax int) *procReader {
	return &procReader{root: root, argvMax: argvMax, buf: make([]byte, 16<<10),
		argv: make([]byte, argvMax+1), path: make([]byte, 0, 32)}
}

// pidPath sets r.path to "<pid><suffix>\0" and returns a pointer to it.
func (r *procReader) pidPath(pid int32, suffix string) *byte {
	r.path = strconv.AppendInt(r.path[:0], int64(pid), 10)
	r.path = append(r.path, suffix...)
	r.path = append(r.path, 0)
	return &r.path[0]
}

func procOpenat(dfd int, name *byte, flags int) (int, error) {
	fd, _, e := unix.Syscall6(unix.SYS_OPENAT, uintptr(dfd), uintptr(unsafe.Pointer(name)),
		uintptr(flags|unix.O_CLOEXEC), 0, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}

func procReadlinkat(dfd int, name *byte, buf []byte) (int, error) {
	n, _, e := unix.Syscall6(unix.SYS_READLINKAT, uintptr(dfd), uintptr(unsafe.Pointer(name)),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// procReadFileAt reads the file name under dfd into buf (until EOF or buf is
// full) and returns the byte count.
func procReadFileAt(dfd int, name *byte, buf []byte) (int, error) {
	fd, err := procOpenat(dfd, name, unix.O_RDONLY)
	if err != nil {
		return 0, err
	}
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			unix.Close(fd)
			return n, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	unix.Close(fd)
	return n, nil
}

// readStat reads only /proc/PID/stat: start, ppid, comm, tty. It is the
// cheap read done on fork and by /proc scans.
func (r *procReader) readStat(pid int32) (*procInfo, error) {
	in := &procInfo{}
	n, err := procReadFileAt(r.root, r.pidPath(pid, "/stat"), r.buf)
	if err != nil {
		return nil, fmt.Errorf("read /proc/%d/stat: %w", pid, err)
	}
	if err := in.setStat(r.buf[:n]); err != nil {
		return nil, fmt.Errorf("read /proc/%d/stat: %w", pid, err)
	}
	return in, nil
}

func (in *procInfo) setStat(b []byte) error {
	s, err := parseProcStat(b)
	if err != nil {
		return err
	}
	in.have |= procHaveStat
	in.start = StartFromTicks(s.startTick)
	in.ppid = s.ppid
	in.kthread = s.flags&procPFKthread != 0
	in.comm = append([]byte(nil), s.comm...)
	in.tty = procTTYName(s.ttyNr)
	return nil
}

// readFull reads everything pofr records about pid, most perishable first:
// cmdline and exe vanish with the process's mm at exit, stat lasts until it
// is reaped. It fails only if the process is gone entirely; otherwise the
// have bits say what was read.
func (r *procReader) readFull(pid int32) (*procInfo, error) {
	dfd, err := procOpenat(r.root, r.pidPath(pid, ""), unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, fmt.Errorf("open /proc/%d: %w", pid, err)
	}
	defer unix.Close(dfd)
	in := &procInfo{uid: ^uint32(0), euid: ^uint32(0), gid: ^uint32(0), egid: ^uint32(0),
		auid: ^uint32(0), sid: ^uint32(0)}

	if n, err := procReadFileAt(dfd, &nameCmdline[0], r.argv); err == nil && n > 0 {
		in.have |= procHaveArgv
		if n > r.argvMax {
			n, in.argvTrunc = r.argvMax, true
		}
		in.argv = append([]byte(nil), r.argv[:n]...)
	}
	if n, err := procReadlinkat(dfd, &nameExe[0], r.buf); err == nil {
		in.have |= procHaveExe
		in.exe = append([]byte(nil), r.buf[:n]...)
	}
	if n, err := procReadFileAt(dfd, &nameStat[0], r.buf); err == nil {
		if in.setStat(r.buf[:n]) != nil {
			in.have &^= procHaveStat
		}
	}
	if in.have&procHaveStat == 0 {
		return in, nil // reaped: nothing else will read
	}
	if n, err := procReadlinkat(dfd, &nameCwd[0], r.buf); err == nil {
		in.have |= procHaveCwd
		in.cwd = append([]byte(nil), r.buf[:n]...)
	}
	if n, err := procReadFileAt(dfd, &nameStatus[0], r.buf); err == nil {
		if u, eu, g, eg, err := parseProcStatusIDs(r.buf[:n]); err == nil {
			in.have |= procHaveStatus
			in.uid, in.euid, in.gid, in.egid = u, eu, g, eg
		}
	}
	if n, err := procReadFileAt(dfd, &nameLoginuid[0], r.buf); err == nil {
		if v, err := parseProcID(r.buf[:n]); err == nil {
			in.have |= procHaveLogin
			in.auid = v
		}
	}
	if n, err := procReadFileAt(dfd, &nameSessionid[0], r.buf); err == nil {
		if v, err := parseProcID(r.buf[:n]); err == nil {
			in.have |= procHaveSession
			in.sid = v
		}
	}
	if n, err := procReadFileAt(dfd, &nameCgroup[0], r.buf); err == nil && n > 0 {
		in.have |= procHaveCgroup
		if cg := parseProcCgroup(r.buf[:n]); cg != nil {
			in.cgroup = append([]byte(nil), cg...)
			in.container = cgroupContainerID(cg)
		}
	}
	for i := range nameNS {
		if n, err := procReadlinkat(dfd, &nameNS[i][0], r.buf); err == nil {
			if v, ok := parseProcNSLink(r.buf[:n]); ok {
				in.ns[i].V, in.ns[i].Valid = v, true
			}
		}
	}
	return in, nil
}

// listPIDs returns the pids in the procfs directory.
func procListPIDs(root string) ([]int32, error) {
	f, err := os.Open(root)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", root, err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", root, err)
	}
	pids := make([]int32, 0, len(names))
	for _, n := range names {
		if v, err := strconv.ParseInt(n, 10, 32); err == nil && v > 0 {
			pids = append(pids, int32(v))
		}
	}
	return pids, nil
}
