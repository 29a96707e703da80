package fanotify

import (
	"strings"

	"github.com/pofr/pofr/internal/procfs"
)

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
func fanMarkable(m *procfs.Mount) bool {
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
