package procfs

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/pofr/pofr/internal/event"
)

// ErrMalformed reports a /proc file whose content does not parse.
var ErrMalformed = errors.New("procfs: malformed /proc file")

// TicksPerSecond is USER_HZ, the unit of /proc/PID/stat starttime. It is 100
// on every Linux architecture pofr supports.
const TicksPerSecond = 100

// TickNS is one clock tick in ns: the resolution of proc_start.
const TickNS = int64(1e9 / TicksPerSecond)

// StartFromTicks converts a /proc/PID/stat starttime (clock ticks since boot)
// to proc_start (ns since boot), the second half of a process's key.
func StartFromTicks(ticks uint64) int64 { return int64(ticks) * TickNS }

// PFKthread is PF_KTHREAD in the stat flags field.
const PFKthread = 0x00200000

// Stat is what pofr uses of /proc/PID/stat.
type Stat struct {
	Comm       []byte // points into the parsed bytes
	PPID       int32
	TTYNr      uint32
	Flags      uint32
	StartTicks uint64
}

// ParseStat parses /proc/PID/stat. comm (field 2) may hold spaces and
// parentheses, so the fields after it are found from the last ')'. It does
// not allocate.
func ParseStat(b []byte) (Stat, error) {
	var s Stat
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open {
		return s, fmt.Errorf("%w: stat without (comm)", ErrMalformed)
	}
	s.Comm = b[open+1 : closing]
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
		ok := true
		switch field {
		case 4:
			var v uint64
			v, ok = parseSigned(f, 1<<31-1)
			s.PPID = int32(v)
		case 7:
			var v uint64
			v, ok = parseSigned(f, 1<<63-1)
			s.TTYNr = uint32(v)
		case 9:
			var v uint32
			v, ok = ParseUint32(f)
			s.Flags = v
		case 22:
			s.StartTicks, ok = ParseDecimal(f)
		}
		if !ok {
			return s, fmt.Errorf("%w: stat field %d %q", ErrMalformed, field, f)
		}
		field++
	}
	if field <= 22 {
		return s, fmt.Errorf("%w: stat has %d fields", ErrMalformed, field-1)
	}
	return s, nil
}

// parseSigned parses an optionally negative decimal whose magnitude is at
// most max, and returns it as the two's complement bits of an int64.
func parseSigned(b []byte, max uint64) (uint64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg || len(b) > 0 && b[0] == '+' {
		b = b[1:]
	}
	v, ok := ParseDecimal(b)
	if !ok || v > max+1 || (!neg && v > max) {
		return 0, false
	}
	if neg {
		return uint64(-int64(v)), true
	}
	return v, true
}

// TTYName names a tty_nr from stat: pts/N, ttyN, ttySN, or major:minor for
// other devices; nil for no controlling terminal.
func TTYName(nr uint32) []byte {
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

// StatusHead is what the exec hot path uses of /proc/PID/status.
type StatusHead struct {
	Name      []byte // escaped comm (see UnescapeComm); points into the parsed bytes
	PPID      int32
	UID, EUID uint32
	GID, EGID uint32
}

// ParseStatusHead parses the Name, PPid, Uid and Gid lines at the head of
// /proc/PID/status and stops at the Gid line; b may be cut after it. It does
// not allocate.
func ParseStatusHead(b []byte) (StatusHead, error) {
	var h StatusHead
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
			h.Name = bytes.TrimPrefix(val, []byte("\t"))
			got |= 1
		case "PPid":
			v, ok := ParseUint32(bytes.TrimSpace(val))
			if !ok || v > 1<<31-1 {
				return h, fmt.Errorf("%w: status line %q", ErrMalformed, line)
			}
			h.PPID = int32(v)
			got |= 2
		case "Uid", "Gid":
			r, e, ok := parseIDPair(val)
			if !ok {
				return h, fmt.Errorf("%w: status line %q", ErrMalformed, line)
			}
			if key[0] == 'U' {
				h.UID, h.EUID = r, e
				got |= 4
			} else {
				h.GID, h.EGID = r, e
				got |= 8
			}
		}
	}
	if got != 15 {
		return h, fmt.Errorf("%w: status head without Name, PPid, Uid and Gid", ErrMalformed)
	}
	return h, nil
}

// ParseStatusIDs returns the real and effective uid and gid from a whole
// /proc/PID/status, wherever the lines are.
func ParseStatusIDs(b []byte) (uid, euid, gid, egid uint32, err error) {
	var gotU, gotG bool
	for len(b) > 0 && !(gotU && gotG) {
		line, rest, _ := bytes.Cut(b, []byte{'\n'})
		b = rest
		var r, e *uint32
		switch {
		case bytes.HasPrefix(line, []byte("Uid:")):
			r, e, gotU = &uid, &euid, true
		case bytes.HasPrefix(line, []byte("Gid:")):
			r, e, gotG = &gid, &egid, true
		default:
			continue
		}
		rv, ev, ok := parseIDPair(line[4:])
		if !ok {
			return 0, 0, 0, 0, fmt.Errorf("%w: status line %q", ErrMalformed, line)
		}
		*r, *e = rv, ev
	}
	if !gotU || !gotG {
		return 0, 0, 0, 0, fmt.Errorf("%w: status without Uid/Gid", ErrMalformed)
	}
	return uid, euid, gid, egid, nil
}

// parseIDPair parses the first two blank-separated numbers of a status Uid
// or Gid value (real and effective).
func parseIDPair(b []byte) (r, e uint32, ok bool) {
	r, rest, ok1 := nextUint32(b)
	e, _, ok2 := nextUint32(rest)
	return r, e, ok1 && ok2
}

// ParseDecimal parses an unsigned decimal of 1 to 19 digits without
// allocating: the one number parser of /proc files, /proc/net and fd links.
func ParseDecimal(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

// ParseUint32 parses a decimal uint32 without allocating.
func ParseUint32(b []byte) (uint32, bool) {
	if len(b) > 10 {
		return 0, false
	}
	v, ok := ParseDecimal(b)
	if !ok || v > 1<<32-1 {
		return 0, false
	}
	return uint32(v), true
}

// nextUint32 parses the next blank-separated decimal uint32 of b.
func nextUint32(b []byte) (uint32, []byte, bool) {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	i := 0
	for i < len(b) && b[i] != ' ' && b[i] != '\t' {
		i++
	}
	v, ok := ParseUint32(b[:i])
	return v, b[i:], ok
}

// UnescapeComm appends the comm of a status Name line to dst without
// growing it (false if it does not fit): the kernel escapes only '\n' and
// '\\' there (as \n and \\).
func UnescapeComm(dst, name []byte) ([]byte, bool) {
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

// ParseID parses /proc/PID/loginuid or sessionid: a decimal id, where
// 4294967295 means unset (event.NoID).
func ParseID(b []byte) (uint32, error) {
	v, ok := ParseUint32(bytes.TrimSpace(b))
	if !ok {
		return event.NoID, fmt.Errorf("%w: id %q", ErrMalformed, b)
	}
	return v, nil
}

// ParseCgroup returns the cgroup v2 path from /proc/PID/cgroup (the "0::"
// line); on a v1-only host, the name=systemd hierarchy or else the first
// line. The path points into b.
func ParseCgroup(b []byte) []byte {
	var first, systemd []byte
	for len(b) > 0 {
		line, rest, _ := bytes.Cut(b, []byte{'\n'})
		b = rest
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

// ContainerID derives a container id from a cgroup path: a 64-hex-digit id
// in a path element, bare (/docker/<id>, /kubepods/…/<id>) or wrapped as by
// systemd drivers (docker-<id>.scope, cri-containerd-<id>.scope,
// crio-<id>.scope, libpod-<id>.scope, containerd-<id>.scope), or an LXC
// container name (/lxc/<name>, /lxc.payload.<name>). The element nearest the
// leaf wins. It returns a copy, or nil when the path names no container.
func ContainerID(cg []byte) []byte {
	elems := bytes.Split(cg, []byte("/"))
	for i := len(elems) - 1; i >= 0; i-- {
		e := elems[i]
		if id := hexID(e); id != nil {
			return id
		}
		e = bytes.TrimSuffix(e, []byte(".scope"))
		if j := bytes.LastIndexByte(e, '-'); j >= 0 {
			if id := hexID(e[j+1:]); id != nil {
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

// hexID returns a copy of e if it is a hex container id (IsHexID).
func hexID(e []byte) []byte {
	if !IsHexID(e) {
		return nil
	}
	return append([]byte(nil), e...)
}

// IsHexID reports whether id is 64 lower-case hex digits: a container id as
// Docker, containerd, CRI-O and Podman name it in the cgroup path. Such an
// id is safe as a path element.
func IsHexID(id []byte) bool {
	if len(id) != 64 {
		return false
	}
	for _, c := range id {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// ParseNSLink parses a namespace link target such as "net:[4026531840]".
func ParseNSLink(b []byte) (uint32, bool) {
	i := bytes.IndexByte(b, '[')
	if i < 0 || len(b) < i+2 || b[len(b)-1] != ']' {
		return 0, false
	}
	return ParseUint32(b[i+1 : len(b)-1])
}
