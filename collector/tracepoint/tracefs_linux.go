package tracepoint

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/pofr/pofr/internal/procfs"
	"golang.org/x/sys/unix"
)

// ErrNoTracefs reports that tracefs could not be found or mounted.
var ErrNoTracefs = errors.New("tracepoint: tracefs unavailable")

// FS is an open tracefs instance: the one mounted on the host, or, when
// none is, a private one that is attached nowhere (fsopen/fsmount), so no
// other process sees a mount appear.
type FS struct {
	root int // dirfd of the tracefs root
	// Where names where the root came from: a mount point, or "private".
	Where string
}

// OpenFS finds tracefs: a tracefs mount in /proc/self/mountinfo, else a
// private instance (needs CAP_SYS_ADMIN). The error wraps ErrNoTracefs.
func OpenFS() (*FS, error) {
	var tried []string
	if mnts, err := tracefsMounts("/proc/self/mountinfo"); err == nil {
		for _, m := range mnts {
			fd, err := unix.Open(m, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err == nil {
				var ev int
				if ev, err = unix.Openat(fd, "events", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
					unix.Close(ev)
					return &FS{root: fd, Where: m}, nil
				}
				unix.Close(fd)
			}
			tried = append(tried, fmt.Sprintf("%s: %v", m, err))
		}
	}
	fd, err := privateTracefs()
	if err == nil {
		return &FS{root: fd, Where: "private"}, nil
	}
	tried = append(tried, err.Error())
	return nil, fmt.Errorf("%w: %s", ErrNoTracefs, strings.Join(tried, "; "))
}

// privateTracefs creates a tracefs instance attached to no mount point.
func privateTracefs() (int, error) {
	fsfd, err := unix.Fsopen("tracefs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("fsopen tracefs: %w", err)
	}
	defer unix.Close(fsfd)
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return -1, fmt.Errorf("fsconfig create tracefs: %w", err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOEXEC|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
	if err != nil {
		return -1, fmt.Errorf("fsmount tracefs: %w", err)
	}
	return mfd, nil
}

// tracefsMounts lists the mount points of tracefs in a mountinfo file.
func tracefsMounts(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseTracefsMounts(f)
}

// parseTracefsMounts returns the mount points whose file system type is
// tracefs in a mountinfo file.
func parseTracefsMounts(r io.Reader) ([]string, error) {
	b, err := io.ReadAll(io.LimitReader(r, 16<<20))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range procfs.ParseMountinfo(b) {
		if m.FSType == "tracefs" {
			out = append(out, m.Point)
		}
	}
	return out, nil
}

// Close releases the tracefs root (a private instance goes away with it).
func (fs *FS) Close() error { return unix.Close(fs.root) }

// event reads the format of the event named "sys:name", as Options.Events
// and Options.Doorbell name them; its errors wrap ErrEvent.
func (fs *FS) event(sysName string) (*Format, error) {
	sys, name, found := strings.Cut(sysName, ":")
	if !found {
		return nil, fmt.Errorf("%w: %q: want sys:name", ErrEvent, sysName)
	}
	f, err := fs.Format(sys, name)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEvent, err)
	}
	return f, nil
}

// Format reads and parses events/<sys>/<name>/format.
func (fs *FS) Format(sys, name string) (*Format, error) {
	b, err := fs.ReadFormat(sys, name)
	if err != nil {
		return nil, err
	}
	f, err := ParseFormat(b)
	if err != nil {
		return nil, fmt.Errorf("tracepoint %s:%s: %w", sys, name, err)
	}
	return f, nil
}

// ReadFormat returns the bytes of events/<sys>/<name>/format.
func (fs *FS) ReadFormat(sys, name string) ([]byte, error) {
	if !validName(sys) || !validName(name) {
		return nil, fmt.Errorf("tracepoint %q:%q: bad name", sys, name)
	}
	fd, err := unix.Openat(fs.root, "events/"+sys+"/"+name+"/format", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("tracepoint %s:%s: open format: %w", sys, name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFormatBytes+1))
	if err != nil {
		return nil, fmt.Errorf("tracepoint %s:%s: read format: %w", sys, name, err)
	}
	return b, nil
}

// validName accepts tracefs system and event names.
func validName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}
