package cnproc

import (
	"fmt"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/pofr/pofr/internal/procfs"
)

// Names under /proc/PID.
var procNSFiles = func() [len(procNSNames)]string {
	var n [len(procNSNames)]string
	for i, s := range procNSNames {
		n[i] = "ns/" + s
	}
	return n
}()

// procStatusHead is how much of /proc/PID/status the hot path reads: the
// Name, PPid, Uid and Gid lines come within its first ~300 bytes (Name is at
// most 15 bytes, escaped at most 30; the numbers are at most 10 digits).
const procStatusHead = 512

// procReader reads /proc/PID files relative to a pre-opened procfs directory
// with openat on "PID/name" paths built in a reused buffer, into reused
// buffers: readInto allocates nothing, and the slices it returns in a
// procInfo point into the reader's buffers until its next call. One
// goroutine uses one procReader.
type procReader struct {
	root    int // dirfd of the procfs mount
	argvMax int
	argv    []byte // argvMax+1 bytes, to tell a cut argv
	exe     []byte
	cwd     []byte
	cgroup  []byte
	status  []byte
	stat    []byte
	small   []byte // loginuid, sessionid, ns links
	comm    [64]byte
	path    []byte // "<pid>/<name>\0"
}

func newProcReader(root int, argvMax int) *procReader {
	return &procReader{root: root, argvMax: argvMax, argv: make([]byte, argvMax+1),
		exe: make([]byte, unix.PathMax), cwd: make([]byte, unix.PathMax), cgroup: make([]byte, 8<<10),
		status: make([]byte, 4<<10), stat: make([]byte, 1<<10), small: make([]byte, 128),
		path: make([]byte, 0, 64)}
}

// pidPath sets r.path to "<pid>/<name>\0" and returns a pointer to it; an
// empty name gives "<pid>\0".
func (r *procReader) pidPath(pid int32, name string) *byte {
	r.path = strconv.AppendInt(r.path[:0], int64(pid), 10)
	if name != "" {
		r.path = append(r.path, '/')
		r.path = append(r.path, name...)
	}
	r.path = append(r.path, 0)
	return &r.path[0]
}

// The /proc reads are raw syscalls: they never block for long, and a
// goroutine in the runtime's syscall state hands sysmon a P to retake, which
// costs the reader thread a handoff (and sysmon 50 wakeups at 20 µs) each
// time another goroutine is runnable (docs/design.md, "One drain for every
// queue").
func procOpenat(dfd int, name *byte, flags int) (int, error) {
	fd, _, e := unix.RawSyscall6(unix.SYS_OPENAT, uintptr(dfd), uintptr(unsafe.Pointer(name)),
		uintptr(flags|unix.O_CLOEXEC), 0, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}

func procReadlinkat(dfd int, name *byte, buf []byte) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_READLINKAT, uintptr(dfd), uintptr(unsafe.Pointer(name)),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// procReadFileAt reads the file name under dfd into buf and returns the byte
// count. It stops at EOF, when buf is full, or at the first short read: the
// /proc files read here (seq_file single_open files and cmdline) hand out
// all they have in one read when it fits, so a short read is the end and
// the read(2) that would return 0 is saved.
func procReadFileAt(dfd int, name *byte, buf []byte) (int, error) {
	fd, err := procOpenat(dfd, name, unix.O_RDONLY)
	if err != nil {
		return 0, err
	}
	n := 0
	for n < len(buf) {
		m, err := procReadRaw(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			procCloseRaw(fd)
			return n, err
		}
		n += m
		if m == 0 || n < len(buf) {
			break
		}
	}
	procCloseRaw(fd)
	return n, nil
}

func procCloseRaw(fd int) {
	unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
}

// readInto reads the parts of /proc/PID that want selects (procHave* bits;
// procHaveLogin also reads sessionid when loginuid is set) into in, most
// perishable first: cmdline and exe vanish with the process's mm at exit,
// status and stat last until it is reaped. in is reset first; its byte
// slices point into r's buffers. It stops early when the pid is gone; the
// have bits say what was read.
func (r *procReader) readInto(pid int32, want uint32, in *procInfo) {
	*in = procInfo{uid: ^uint32(0), euid: ^uint32(0), gid: ^uint32(0), egid: ^uint32(0),
		auid: ^uint32(0), sid: ^uint32(0)}
	if want&procHaveArgv != 0 {
		n, err := procReadFileAt(r.root, r.pidPath(pid, "cmdline"), r.argv)
		if err == unix.ENOENT || err == unix.ESRCH {
			return // reaped: nothing else will read
		}
		if err == nil && n > 0 {
			in.have |= procHaveArgv
			if n > r.argvMax {
				n, in.argvTrunc = r.argvMax, true
			}
			in.argv = r.argv[:n]
		}
	}
	if want&procHaveExe != 0 {
		if n, err := procReadlinkat(r.root, r.pidPath(pid, "exe"), r.exe); err == nil {
			in.have |= procHaveExe
			in.exe = r.exe[:n]
		}
	}
	if want&procHaveStat != 0 {
		n, err := procReadFileAt(r.root, r.pidPath(pid, "stat"), r.stat)
		if err != nil || in.setStat(r.stat[:n]) != nil {
			return // reaped
		}
	}
	if want&procHaveCwd != 0 {
		if n, err := procReadlinkat(r.root, r.pidPath(pid, "cwd"), r.cwd); err == nil {
			in.have |= procHaveCwd
			in.cwd = r.cwd[:n]
		}
	}
	if want&procHaveStatus != 0 {
		if n, err := procReadFileAt(r.root, r.pidPath(pid, "status"), r.status[:procStatusHead]); err == nil {
			if h, err := procfs.ParseStatusHead(r.status[:n]); err == nil {
				in.have |= procHaveStatus | procHavePPid
				in.uid, in.euid, in.gid, in.egid, in.ppid = h.UID, h.EUID, h.GID, h.EGID, h.PPID
				if c, ok := procfs.UnescapeComm(r.comm[:0], h.Name); ok {
					in.have |= procHaveComm
					in.comm = c
				}
			} else if n == procStatusHead {
				// Not in the head (cannot happen with today's layout): read it all.
				if n, err := procReadFileAt(r.root, r.pidPath(pid, "status"), r.status); err == nil {
					if u, eu, g, eg, err := procfs.ParseStatusIDs(r.status[:n]); err == nil {
						in.have |= procHaveStatus
						in.uid, in.euid, in.gid, in.egid = u, eu, g, eg
					}
				}
			}
		}
	}
	if want&procHaveLogin != 0 {
		if n, err := procReadFileAt(r.root, r.pidPath(pid, "loginuid"), r.small); err == nil {
			if v, err := procfs.ParseID(r.small[:n]); err == nil {
				in.have |= procHaveLogin
				in.auid = v
			}
		}
		// The kernel sets sessionid together with loginuid; an unset
		// loginuid has an unset sessionid (audit_set_loginuid).
		if in.have&procHaveLogin != 0 && in.auid == ^uint32(0) {
			in.have |= procHaveSession
		} else if n, err := procReadFileAt(r.root, r.pidPath(pid, "sessionid"), r.small); err == nil {
			if v, err := procfs.ParseID(r.small[:n]); err == nil {
				in.have |= procHaveSession
				in.sid = v
			}
		}
	}
	if want&procHaveCgroup != 0 {
		if n, err := procReadFileAt(r.root, r.pidPath(pid, "cgroup"), r.cgroup); err == nil && n > 0 {
			in.have |= procHaveCgroup
			in.cgroup = procfs.ParseCgroup(r.cgroup[:n])
		}
	}
	if want&procHaveNS != 0 {
		for i := range procNSFiles {
			if n, err := procReadlinkat(r.root, r.pidPath(pid, procNSFiles[i]), r.small); err == nil {
				if v, ok := procfs.ParseNSLink(r.small[:n]); ok {
					in.ns[i].V, in.ns[i].Valid = v, true
					in.have |= procHaveNS
				}
			}
		}
	}
}

// setStat fills the stat parts of in; comm points into b.
func (in *procInfo) setStat(b []byte) error {
	s, err := procfs.ParseStat(b)
	if err != nil {
		return err
	}
	in.have |= procHaveStat | procHaveComm | procHavePPid
	in.start = procfs.StartFromTicks(s.StartTicks)
	in.ppid = s.PPID
	in.kthread = s.Flags&procfs.PFKthread != 0
	in.comm = s.Comm
	in.tty = procfs.TTYName(s.TTYNr)
	return nil
}

// readStat reads only /proc/PID/stat (start, ppid, comm, tty) into a new
// procInfo that owns its bytes: the cold-path read of /proc scans and of
// events about a pid the table does not know.
func (r *procReader) readStat(pid int32) (*procInfo, error) {
	in := &procInfo{}
	n, err := procReadFileAt(r.root, r.pidPath(pid, "stat"), r.stat)
	if err != nil {
		return nil, fmt.Errorf("read /proc/%d/stat: %w", pid, err)
	}
	if err := in.setStat(r.stat[:n]); err != nil {
		return nil, fmt.Errorf("read /proc/%d/stat: %w", pid, err)
	}
	in.comm = append([]byte(nil), in.comm...)
	return in, nil
}

// readFull reads everything pofr records about pid into a new procInfo
// that owns its bytes. It fails only if the process is gone entirely;
// otherwise the have bits say what was read.
func (r *procReader) readFull(pid int32) (*procInfo, error) {
	in := &procInfo{}
	r.readInto(pid, procHaveAll, in)
	if in.have&procHaveStat == 0 {
		return nil, fmt.Errorf("read /proc/%d: %w", pid, unix.ESRCH)
	}
	in.detach()
	return in, nil
}
