package cnproc

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
		in.container = cgroupContainerID(in.cgroup)
	}
}

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

// procStatusFields is what the exec hot path uses of /proc/PID/status.
type procStatusFields struct {
	name      []byte // escaped comm
	ppid      int32
	uid, euid uint32
	gid, egid uint32
}

// parseProcStatusHead parses the Name, PPid, Uid and Gid lines at the head
// of /proc/PID/status and stops at the Gid line; b may be cut after it.
func parseProcStatusHead(b []byte) (procStatusFields, error) {
	var h procStatusFields
	var got uint8
	for len(b) > 0 && got != 15 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break // a cut line
		}
		line := b[:i]
		b = b[i+1:]
		k := bytes.IndexByte(line, ':')
		if k < 0 {
			continue
		}
		key, val := line[:k], line[k+1:]
		switch string(key) {
		case "Name":
			h.name = bytes.TrimPrefix(val, []byte("\t"))
			got |= 1
		case "PPid":
			v, ok := procAtou(bytes.TrimSpace(val))
			if !ok || v > 1<<31-1 {
				return h, fmt.Errorf("%w: status line %q", errProcFile, line)
			}
			h.ppid = int32(v)
			got |= 2
		case "Uid", "Gid":
			r, rest, ok1 := procNextUint(val)
			e, _, ok2 := procNextUint(rest)
			if !ok1 || !ok2 {
				return h, fmt.Errorf("%w: status line %q", errProcFile, line)
			}
			if key[0] == 'U' {
				h.uid, h.euid = r, e
				got |= 4
			} else {
				h.gid, h.egid = r, e
				got |= 8
			}
		}
	}
	if got != 15 {
		return h, fmt.Errorf("%w: status head without Name, PPid, Uid and Gid", errProcFile)
	}
	return h, nil
}

// procAtou parses a decimal uint32 without allocating.
func procAtou(b []byte) (uint32, bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	if v > 1<<32-1 {
		return 0, false
	}
	return uint32(v), true
}

// procNextUint parses the next blank-separated decimal uint32 of b.
func procNextUint(b []byte) (uint32, []byte, bool) {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	i := 0
	for i < len(b) && b[i] != ' ' && b[i] != '\t' {
		i++
	}
	v, ok := procAtou(b[:i])
	return v, b[i:], ok
}

// procUnescapeComm appends the comm of a status Name line to dst: the
// kernel escapes only '\n' and '\\' there (as \n and \\).
func procUnescapeComm(dst, name []byte) ([]byte, bool) {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '\\' && i+1 < len(name) {
			switch name[i+1] {
			case 'n':
				c, i = '\n', i+1
			case '\\':
				i++
			}
		}
		if len(dst) == cap(dst) {
			return dst, false
		}
		dst = append(dst, c)
	}
	return dst, true
}

// parseProcID parses /proc/PID/loginuid or sessionid: a decimal id, where
// 4294967295 means unset (event.NoID).
func parseProcID(b []byte) (uint32, error) {
	v, ok := procAtou(bytes.TrimSpace(b))
	if !ok {
		return event.NoID, fmt.Errorf("%w: id %q", errProcFile, b)
	}
	return v, nil
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
	return procAtou(b[i+1 : len(b)-1])
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
