package procfs

import (
	"fmt"
	"os"
	"strconv"

	prom "github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// DefaultRoot is where procfs is mounted.
const DefaultRoot = "/proc"

// FS is a procfs mount: the real one, or a fixture tree in tests.
type FS struct {
	root string
}

// New returns the procfs mounted at root; "" means DefaultRoot.
func New(root string) FS {
	if root == "" {
		root = DefaultRoot
	}
	return FS{root: root}
}

// Root returns the mount point.
func (fs FS) Root() string { return fs.root }

// Path returns root/name.
func (fs FS) Path(name string) string { return fs.root + "/" + name }

// PIDPath returns root/PID/name (root/PID if name is empty).
func (fs FS) PIDPath(pid int32, name string) string {
	p := fs.root + "/" + strconv.Itoa(int(pid))
	if name != "" {
		p += "/" + name
	}
	return p
}

// PIDs lists the processes (thread group ids) under the root.
func (fs FS) PIDs() ([]int32, error) {
	pfs, err := prom.NewFS(fs.root)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", fs.root, err)
	}
	procs, err := pfs.AllProcs()
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", fs.root, err)
	}
	pids := make([]int32, 0, len(procs))
	for _, p := range procs {
		if p.PID > 0 && p.PID <= 1<<31-1 {
			pids = append(pids, int32(p.PID))
		}
	}
	return pids, nil
}

// Start returns the proc_start of pid (see StartFromTicks) from its stat
// file: the cold-path read, for a process no table knows.
func (fs FS) Start(pid int32) (int64, error) {
	pfs, err := prom.NewFS(fs.root)
	if err != nil {
		return 0, fmt.Errorf("read start of pid %d: %w", pid, err)
	}
	p, err := pfs.Proc(int(pid))
	if err != nil {
		return 0, fmt.Errorf("read start of pid %d: %w", pid, err)
	}
	st, err := p.Stat()
	if err != nil {
		return 0, fmt.Errorf("read start of pid %d: %w", pid, err)
	}
	return StartFromTicks(st.Starttime), nil
}

// FDs calls fn with the name of each file descriptor of pid and the target
// of its link (socket:[N], /a/path, pipe:[N] …), until fn returns false.
// target points into buf, which must be large enough for the longest
// target wanted (longer ones are cut to len(buf)); it is valid until fn
// returns. It fails if the fd directory cannot be read (the process is
// gone, or a kernel thread); unreadable links are skipped.
func (fs FS) FDs(pid int32, buf []byte, fn func(fd string, target []byte) bool) error {
	dfd, err := unix.Open(fs.PIDPath(pid, "fd"), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open fds of pid %d: %w", pid, err)
	}
	d := os.NewFile(uintptr(dfd), "fd")
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("list fds of pid %d: %w", pid, err)
	}
	for _, n := range names {
		l, err := unix.Readlinkat(dfd, n, buf)
		if err != nil || l <= 0 {
			continue
		}
		if !fn(n, buf[:l]) {
			break
		}
	}
	return nil
}

// NetNS returns the nsfs inode of pid's network namespace.
func (fs FS) NetNS(pid int32) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(fs.PIDPath(pid, "ns/net"), &st); err != nil {
		return 0, fmt.Errorf("network namespace of pid %d: %w", pid, err)
	}
	return st.Ino, nil
}
