package fanotify

import (
	"bytes"
	"strconv"
	"strings"
)

// fanMount is one line of /proc/self/mountinfo, reduced to what the file
// source needs to place a FAN_MARK_FILESYSTEM mark.
type fanMount struct {
	Major, Minor uint32
	Root         string // path of the mount's root within its file system
	Point        string // mount point, unescaped
	FSType       string
}

// parseMountinfo parses /proc/self/mountinfo (proc(5)). Malformed lines are
// skipped: the kernel writes this file, but a file system type or mount point
// must not make the whole scan fail.
func parseMountinfo(b []byte) []fanMount {
	var out []fanMount
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
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
		out = append(out, fanMount{
			Major: uint32(ma), Minor: uint32(mi),
			Root:   unescapeMount(f[3]),
			Point:  unescapeMount(f[4]),
			FSType: f[sep+1],
		})
	}
	return out
}

// unescapeMount undoes the octal escapes (\040 space, \011 tab, \012 newline,
// \134 backslash) the kernel writes in mountinfo paths.
func unescapeMount(s string) string {
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

// fanVirtualFS lists the file system types the file source never marks:
// kernel interfaces whose "files" are not data (proc, sysfs, cgroup, …),
// device nodes (devtmpfs: every process opens /dev/null) and file systems
// without file handles. tmpfs is recorded (/tmp, /run, /dev/shm: attackers
// stage files there), except when mounted under /proc or /sys.
var fanVirtualFS = map[string]bool{
	"proc": true, "sysfs": true, "cgroup": true, "cgroup2": true, "devpts": true, "mqueue": true,
	"debugfs": true, "tracefs": true, "securityfs": true, "bpf": true, "pstore": true, "configfs": true,
	"fusectl": true, "autofs": true, "binfmt_misc": true, "hugetlbfs": true, "nsfs": true, "devtmpfs": true,
	"efivarfs": true, "rpc_pipefs": true, "nfsd": true, "selinuxfs": true, "pipefs": true, "sockfs": true,
	"ramfs": true, "rootfs": true, "overlay-internal": true, "fuse.gvfsd-fuse": true, "fuse.portal": true,
}

// fanMarkable reports whether the file source marks the file system of m.
func fanMarkable(m *fanMount) bool {
	if fanVirtualFS[m.FSType] {
		return false
	}
	for _, p := range []string{"/proc", "/sys"} {
		if m.Point == p || strings.HasPrefix(m.Point, p+"/") {
			return false
		}
	}
	return true
}
