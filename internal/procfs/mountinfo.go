package procfs

import (
	"bytes"
	"strconv"
	"strings"
)

// Mount is one line of /proc/PID/mountinfo, reduced to what the collector
// uses: the device, the mount's root within its file system, where it is
// mounted and the file system type.
type Mount struct {
	Major, Minor uint32
	Root         string // path of the mount's root within its file system, unescaped
	Point        string // mount point, unescaped
	FSType       string
}

// ParseMountinfo parses /proc/PID/mountinfo (proc(5)). Malformed lines are
// skipped: the kernel writes this file, but one odd file system type or
// mount point must not make the whole table unreadable.
func ParseMountinfo(b []byte) []Mount {
	var out []Mount
	for len(b) > 0 {
		line, rest, _ := bytes.Cut(b, []byte{'\n'})
		b = rest
		f := strings.Fields(string(line))
		// id parent major:minor root point options [optional…] - fstype source superoptions
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+1 >= len(f) {
			continue
		}
		maj, min, ok := strings.Cut(f[2], ":")
		if !ok {
			continue
		}
		ma, err1 := strconv.ParseUint(maj, 10, 32)
		mi, err2 := strconv.ParseUint(min, 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, Mount{
			Major: uint32(ma), Minor: uint32(mi),
			Root:   UnescapeMount(f[3]),
			Point:  UnescapeMount(f[4]),
			FSType: f[sep+1],
		})
	}
	return out
}

// UnescapeMount undoes the octal escapes (\040 space, \011 tab, \012
// newline, \134 backslash) the kernel writes in mountinfo paths.
func UnescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
