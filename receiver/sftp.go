package receiver

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pkg/sftp"

	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/wire"
)

// Errors the SFTP handlers return; pkg/sftp turns them into status codes.
var (
	errDenied = sftp.ErrSSHFxPermissionDenied
	// ErrTooLarge reports an upload beyond Options.MaxSegmentBytes.
	ErrTooLarge = errors.New("receiver: file larger than the segment size limit")
	// ErrExists reports a rename onto a segment name already in the inbox.
	ErrExists = errors.New("receiver: segment already exists")
)

// serveSFTP runs the write-only drop box for hostID on ch.
func (s *Server) serveSFTP(log *slog.Logger, ch io.ReadWriteCloser, hostID string) uint32 {
	inbox := s.opts.StateDir.Host(hostID).Inbox
	if err := os.MkdirAll(inbox, 0o700); err != nil {
		log.Error("open inbox", "host", hostID, "err", err)
		return 1
	}
	root, err := os.OpenRoot(inbox)
	if err != nil {
		log.Error("open inbox", "host", hostID, "err", err)
		return 1
	}
	defer root.Close()
	d := &dropBox{s: s, log: log, host: hostID, root: root}
	h := sftp.Handlers{FileGet: d, FilePut: d, FileCmd: d, FileList: d}
	rs := sftp.NewRequestServer(ch, h)
	defer rs.Close()
	if err := rs.Serve(); err != nil && !errors.Is(err, io.EOF) {
		log.Debug("sftp session ended", "host", hostID, "err", err)
	}
	return 0
}

// dropBox implements the pkg/sftp request handlers for one host's inbox. The
// inbox is the root "/" of the session. Every client path is reduced to a
// validated segment name of the host (wire.ParseUploadName) before it
// reaches the file system, and then only through an os.Root on the inbox,
// which refuses to leave it whatever links it finds.
type dropBox struct {
	s    *Server
	log  *slog.Logger
	host string
	root *os.Root
	open atomic.Int32
}

// active reports whether the host may still upload (it may have been revoked
// since it logged in).
func (d *dropBox) active() bool {
	h, err := d.s.reg.Host(d.host)
	return err == nil && h.Status == registry.StatusActive
}

// Fileread refuses every read.
func (d *dropBox) Fileread(*sftp.Request) (io.ReaderAt, error) { return nil, errDenied }

// Filewrite opens the temporary name of a segment for writing.
func (d *dropBox) Filewrite(r *sftp.Request) (io.WriterAt, error) {
	final, part, err := wire.ParseUploadName(r.Filepath, d.host)
	if err != nil || !part {
		return nil, errDenied
	}
	if !d.active() {
		return nil, errDenied
	}
	if d.open.Add(1) > maxOpenFiles {
		d.open.Add(-1)
		return nil, sftp.ErrSSHFxFailure
	}
	// Always a new file: the name is unlinked first, so that no handle can
	// reach the inode of a segment delivered under that name (if its
	// temporary name could not be removed at the rename). The host's lock
	// orders this with its renames.
	unlock := d.s.lockHost(d.host)
	defer unlock()
	if fi, err := d.root.Lstat(wire.PartName(final)); err == nil && !fi.Mode().IsRegular() {
		d.open.Add(-1)
		return nil, errDenied // planted by someone else: neither followed nor removed
	}
	if err := d.root.Remove(wire.PartName(final)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		d.open.Add(-1)
		d.log.Debug("open upload", "host", d.host, "name", final, "err", err)
		return nil, sftp.ErrSSHFxFailure
	}
	f, err := d.root.OpenFile(wire.PartName(final), os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		d.open.Add(-1)
		d.log.Debug("open upload", "host", d.host, "name", final, "err", err)
		return nil, sftp.ErrSSHFxFailure
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		d.open.Add(-1)
		return nil, errDenied
	}
	u := &upload{d: d, f: f, name: wire.PartName(final), max: d.s.opts.MaxSegmentBytes}
	d.s.uploadsAdd(d.host, u)
	return u, nil
}

// upload is one open temporary file.
type upload struct {
	d      *dropBox
	f      *os.File
	name   string
	max    int64
	mu     sync.Mutex
	failed bool
	closed bool
	// delivered is set when the file was renamed to its final name while
	// this handle was open: the handle is closed then, so that nothing can
	// change a delivered segment.
	delivered bool
}

// errWrite is what a client sees of a failed write or close; the error
// itself (which names the server's paths) goes to the log only.
var errWrite = errors.New("receiver: write failed; upload discarded")

// errDelivered reports a write through a handle whose file was renamed to
// its final name meanwhile.
var errDelivered = errors.New("receiver: segment already delivered; handle closed")

// WriteAt writes within the size limit. Beyond it, or after any failed
// write, the upload fails and its file is removed at close.
func (u *upload) WriteAt(p []byte, off int64) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case u.delivered:
		return 0, errDelivered
	case u.closed || u.failed:
		return 0, errWrite
	case off < 0 || off > u.max-int64(len(p)): // never off+len: it can overflow
		u.failed = true
		return 0, ErrTooLarge
	}
	n, err := u.f.WriteAt(p, off)
	u.d.s.bytes.Add(int64(n))
	if err != nil {
		u.failed = true
		u.d.log.Warn("write upload", "host", u.d.host, "name", u.name, "err", err)
		return n, errWrite
	}
	return n, nil
}

// Close makes the file durable, or removes it after a failure. The client
// sees no server path in its errors.
func (u *upload) Close() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.delivered {
		return nil
	}
	if u.closed {
		return nil
	}
	err := u.closeLocked()
	if u.failed || err != nil {
		u.d.root.Remove(u.name)
		if err != nil {
			u.d.log.Warn("close upload", "host", u.d.host, "name", u.name, "err", err)
			return errWrite
		}
		return ErrTooLarge
	}
	return nil
}

// closeLocked syncs and closes the file and gives back its slot (u.mu held).
func (u *upload) closeLocked() error {
	u.closed = true
	u.d.s.uploadsRemove(u.d.host, u)
	u.d.open.Add(-1)
	err := u.f.Sync()
	if cerr := u.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// deliver closes the handle because its file is being renamed to its final
// name: later writes through it fail. It reports false when the upload
// failed (the rename must not deliver it).
func (u *upload) deliver() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return !u.failed
	}
	u.delivered = true
	if err := u.closeLocked(); err != nil {
		u.d.log.Warn("close upload at rename", "host", u.d.host, "name", u.name, "err", err)
		u.failed = true
	}
	return !u.failed
}

// TransferError is called when the session ends with the file open.
func (u *upload) TransferError(error) {
	u.mu.Lock()
	u.failed = true
	u.mu.Unlock()
}

// Filecmd allows Rename and PosixRename of a temporary name to its final
// name (never over an existing file), Remove of a temporary name, and
// Setstat as a no-op on a valid name. Everything else is refused.
func (d *dropBox) Filecmd(r *sftp.Request) error {
	switch r.Method {
	case "Rename", "PosixRename":
		return d.rename(r.Filepath, r.Target)
	case "Remove":
		final, part, err := wire.ParseUploadName(r.Filepath, d.host)
		if err != nil || !part {
			return errDenied
		}
		if err := d.root.Remove(wire.PartName(final)); err != nil {
			return os.ErrNotExist
		}
		return nil
	case "Setstat":
		if _, _, err := wire.ParseUploadName(r.Filepath, d.host); err != nil {
			return errDenied
		}
		return nil
	default:
		return errDenied
	}
}

// PosixRename is Rename: both refuse to replace an existing segment.
func (d *dropBox) PosixRename(r *sftp.Request) error { return d.rename(r.Filepath, r.Target) }

func (d *dropBox) rename(from, to string) error {
	src, part, err := wire.ParseUploadName(from, d.host)
	if err != nil || !part {
		return errDenied
	}
	dst, dpart, err := wire.ParseUploadName(to, d.host)
	if err != nil || dpart || dst != src {
		return errDenied
	}
	if !d.active() {
		return errDenied
	}
	unlock := d.s.lockHost(d.host)
	defer unlock()
	// Every handle still open on the file, in any session of the host, is
	// closed first: once delivered, a segment cannot change.
	for _, u := range d.s.uploadsOf(d.host, wire.PartName(src)) {
		if !u.deliver() {
			d.root.Remove(wire.PartName(src))
			return errWrite
		}
	}
	fi, err := d.root.Lstat(wire.PartName(src))
	if err != nil || !fi.Mode().IsRegular() {
		return os.ErrNotExist
	}
	if fi.Size() > d.s.opts.MaxSegmentBytes {
		return ErrTooLarge
	}
	// link then unlink: unlike rename(2), link never replaces dst.
	if err := d.root.Link(wire.PartName(src), dst); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("rename %s: %w", dst, ErrExists)
		}
		d.log.Debug("rename upload", "host", d.host, "name", dst, "err", err)
		return sftp.ErrSSHFxFailure
	}
	if err := d.root.Remove(wire.PartName(src)); err != nil {
		d.log.Warn("remove uploaded temporary file", "host", d.host, "name", src, "err", err)
	}
	if dir, err := d.root.Open("."); err == nil {
		dir.Sync()
		dir.Close()
	}
	d.s.uploads.Add(1)
	d.log.Debug("segment received", "host", d.host, "name", dst, "bytes", fi.Size())
	return nil
}

// Filelist answers Stat and Lstat of the inbox root and of the host's own
// segment names; listing a directory and reading links are refused.
func (d *dropBox) Filelist(r *sftp.Request) (sftp.ListerAt, error) {
	switch r.Method {
	case "Stat", "Lstat":
	default:
		return nil, errDenied
	}
	if r.Filepath == "/" || r.Filepath == "." || r.Filepath == "" {
		return listerAt{rootInfo{}}, nil
	}
	final, part, err := wire.ParseUploadName(r.Filepath, d.host)
	if err != nil {
		return nil, errDenied
	}
	name := final
	if part {
		name = wire.PartName(final)
	}
	fi, err := d.root.Lstat(name)
	if err != nil || !fi.Mode().IsRegular() {
		return nil, os.ErrNotExist
	}
	return listerAt{fi}, nil
}

// Lstat is Stat: the handlers never follow links.
func (d *dropBox) Lstat(r *sftp.Request) (sftp.ListerAt, error) { return d.Filelist(r) }

// RealPath resolves within the virtual root without touching the disk.
func (d *dropBox) RealPath(p string) (string, error) {
	return path.Clean("/" + p), nil
}

type listerAt []os.FileInfo

func (l listerAt) ListAt(f []os.FileInfo, off int64) (int, error) {
	if off >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(f, l[off:])
	if n < len(f) {
		return n, io.EOF
	}
	return n, nil
}

// rootInfo describes the inbox root without revealing its contents.
type rootInfo struct{}

func (rootInfo) Name() string       { return "/" }
func (rootInfo) Size() int64        { return 0 }
func (rootInfo) Mode() os.FileMode  { return os.ModeDir | 0o300 }
func (rootInfo) ModTime() time.Time { return time.Time{} }
func (rootInfo) IsDir() bool        { return true }
func (rootInfo) Sys() any           { return nil }
