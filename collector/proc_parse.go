package collector

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	"github.com/pofr/pofr/internal/event"
)

// errProcFile reports a /proc file whose content does not parse.
var errProcFile = errors.New("collector: malformed /proc file")

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

// procInfo.have bits.
const (
	procHaveStat uint32 = 1 << iota
	procHaveStatus
	procHaveArgv
	procHaveExe
	procHaveCwd
	procHaveLogin
	procHaveSession
	procHaveCgroup
)

// procStatFields is what pofr uses of /proc/PID/stat.
type procStatFields struct {
	comm      []byte
	ppid      int32
	ttyNr     uint32
	flags     uint32
	startTick uint64
}

// procPFKthread is PF_KTHREAD in the stat flags field.
const procPFKthread = 0x00200000

// parseProcStat parses /proc/PID/stat. comm (field 2) may hold spaces and
// parentheses, so the fields after it are found from the last ')'.
func parseProcStat(b []byte) (procStatFields, error) {
	var s procStatFields
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open {
		return s, fmt.Errorf("%w: stat without (comm)", errProcFile)
	}
	s.comm = b[open+1 : closing]
	rest := b[closing+1:]
	// Fields from 3 (state) on, 1-based numbering as in proc(5).
	field := 3
	for len(rest) > 0 && field <= 22 {
		for len(rest) > 0 && rest[0] == ' ' {
			rest = rest[1:]
		}
		end := bytes.IndexAny(rest, " \n")
		if end < 0 {
			end = len(rest)
		}
		f := rest[:end]
		rest = rest[end:]
		var err error
		switch field {
		case 4:
			var v int64
			v, err = strconv.ParseInt(string(f), 10, 32)
			s.ppid = int32(v)
		case 7:
			var v int64
			v, err = strconv.ParseInt(string(f), 10, 64)
			s.ttyNr = uint32(v)
		case 9:
			var v uint64
			v, err = strconv.ParseUint(string(f), 10, 32)
			s.flags = uint32(v)
		case 22:
			s.startTick, err = strconv.ParseUint(string(f), 10, 64)
		}
		if err != nil {
			return s, fmt.Errorf("%w: stat field %d %q", errProcFile, field, f)
		}
		field++
	}
	if field <= 22 {
		return s, fmt.Errorf("%w: stat has %d fields", errProcFile, field-1)
	}
	return s, nil
}

// procTTYName names a tty_nr from stat: pts/N, ttyN, ttySN, or major:minor for
// other devices; nil for no controlling terminal.
func procTTYName(nr uint32) []byte {
	if nr == 0 {
		return nil
	}
	major := (nr >> 8) & 0xfff
	minor := (nr & 0xff) | ((nr >> 12) & 0xfff00)
	switch {
	case major >= 136 && major <= 143:
		return fmt.Appendf(nil, "pts/%d", (major-136)*256+minor)
	case major == 4 && minor < 64:
		return fmt.Appendf(nil, "tty%d", minor)
	case major == 4:
		return fmt.Appendf(nil, "ttyS%d", minor-64)
	case major == 5 && minor == 1:
		return []byte("console")
	}
	return fmt.Appendf(nil, "%d:%d", major, minor)
}

// parseProcStatusIDs returns the real and effective uid and gid from
// /proc/PID/status.
func parseProcStatusIDs(b []byte) (uid, euid, gid, egid uint32, err error) {
	var gotU, gotG bool
	for len(b) > 0 && !(gotU && gotG) {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		var r, e *uint32
		switch {
		case bytes.HasPrefix(line, []byte("Uid:")):
			r, e, gotU = &uid, &euid, true
		case bytes.HasPrefix(line, []byte("Gid:")):
			r, e, gotG = &gid, &egid, true
		default:
			continue
		}
		f := bytes.Fields(line[4:])
		if len(f) < 2 {
			return 0, 0, 0, 0, fmt.Errorf("%w: status line %q", errProcFile, line)
		}
		rv, err1 := strconv.ParseUint(string(f[0]), 10, 32)
		ev, err2 := strconv.ParseUint(string(f[1]), 10, 32)
		if err1 != nil || err2 != nil {
			return 0, 0, 0, 0, fmt.Errorf("%w: status line %q", errProcFile, line)
		}
		*r, *e = uint32(rv), uint32(ev)
	}
	if !gotU || !gotG {
		return 0, 0, 0, 0, fmt.Errorf("%w: status without Uid/Gid", errProcFile)
	}
	return uid, euid, gid, egid, nil
}

// parseProcID parses /proc/PID/loginuid or sessionid: a decimal id, where
// 4294967295 means unset (event.NoID).
func parseProcID(b []byte) (uint32, error) {
	v, err := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 32)
	if err != nil {
		return event.NoID, fmt.Errorf("%w: id %q", errProcFile, b)
	}
	return uint32(v), nil
}

// parseProcCgroup returns the cgroup v2 path from /proc/PID/cgroup (the "0::"
// line); on a v1-only host, the name=systemd hierarchy or else the first line.
func parseProcCgroup(b []byte) []byte {
	var first, systemd []byte
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		// hierarchy-ID:controllers:path; the path may contain ':'.
		i := bytes.IndexByte(line, ':')
		if i < 0 {
			continue
		}
		j := bytes.IndexByte(line[i+1:], ':')
		if j < 0 {
			continue
		}
		id, ctrl, path := line[:i], line[i+1:i+1+j], line[i+2+j:]
		if string(id) == "0" && len(ctrl) == 0 {
			return path
		}
		if string(ctrl) == "name=systemd" {
			systemd = path
		}
		if first == nil {
			first = path
		}
	}
	if systemd != nil {
		return systemd
	}
	return first
}

// cgroupContainerID derives a container id from a cgroup path: a 64-hex-digit id
// in a path element, bare (/docker/<id>, /kubepods/…/<id>) or wrapped as by
// systemd drivers (docker-<id>.scope, cri-containerd-<id>.scope,
// crio-<id>.scope, libpod-<id>.scope, containerd-<id>.scope), or an LXC
// container name (/lxc/<name>, /lxc.payload.<name>). The element nearest the
// leaf wins. It returns nil when the path names no container.
func cgroupContainerID(cg []byte) []byte {
	elems := bytes.Split(cg, []byte("/"))
	for i := len(elems) - 1; i >= 0; i-- {
		e := elems[i]
		if id := cgroupHexID(e); id != nil {
			return id
		}
		e = bytes.TrimSuffix(e, []byte(".scope"))
		if j := bytes.LastIndexByte(e, '-'); j >= 0 {
			if id := cgroupHexID(e[j+1:]); id != nil {
				return id
			}
		}
		if name, ok := bytes.CutPrefix(e, []byte("lxc.payload.")); ok && len(name) > 0 {
			return append([]byte(nil), name...)
		}
		if i > 0 && string(elems[i-1]) == "lxc" && len(e) > 0 {
			return append([]byte(nil), e...)
		}
	}
	return nil
}

// cgroupHexID returns a copy of e if it is a 64-digit lower-case hex id.
func cgroupHexID(e []byte) []byte {
	if len(e) != 64 {
		return nil
	}
	for _, c := range e {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return nil
		}
	}
	return append([]byte(nil), e...)
}

// parseProcNSLink parses a namespace link target such as "net:[4026531840]".
func parseProcNSLink(b []byte) (uint32, bool) {
	i := bytes.IndexByte(b, '[')
	if i < 0 || len(b) < i+2 || b[len(b)-1] != ']' {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b[i+1:len(b)-1]), 10, 32)
	if err != nil {
		return 0, false
	}
	return uint32(v), true
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
