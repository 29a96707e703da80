// Package durable writes files so that they survive a crash once the call
// returns: a reader sees either the old file or the whole new one. The
// collector, the uplink, the receiver, the registry and the loader share it,
// and ReadPrivate, which reads a secret file only its owner may read or change.
// ReplaceFile is the same atomic replacement without the fsyncs, for files
// that need not survive a crash.
package durable

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
)

// WriteFile writes data to path with mode perm: temporary file in the same
// directory, fsync, rename over path, fsync of the directory.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return write(path, perm, os.Rename, true, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// ReplaceFile is WriteFile without the fsyncs: a reader still sees the old
// file or the whole new one, but after a crash either may be there, or an
// empty file. For files rewritten every few seconds that describe a running
// process (the collector's status and metrics), stale after a crash
// whatever their bytes.
func ReplaceFile(path string, data []byte, perm os.FileMode) error {
	return write(path, perm, os.Rename, false, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// CreateFile is WriteFile for a file that must not exist yet: a hard link,
// unlike a rename, never replaces path; if path exists it fails with an
// error wrapping os.ErrExist.
func CreateFile(path string, data []byte, perm os.FileMode) error {
	return write(path, perm, os.Link, true, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// CopyFile is WriteFile with the contents of the file src.
func CopyFile(path, src string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return write(path, perm, os.Rename, true, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

// write fills a temporary file next to path with fill, fsyncs it (sync),
// gives it the name path with place (rename or link) and fsyncs the
// directory (sync).
func write(path string, perm os.FileMode, place func(tmp, path string) error, sync bool, fill func(io.Writer) error) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := fill(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := place(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if !sync {
		return nil
	}
	if err := SyncDir(dir); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// SyncDir fsyncs a directory, making the renames and removals in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// ReadPrivate reads at most limit bytes of a secret file (a key, a
// password), refusing, as ssh does a private key, one that group or others
// may read or change, or that belongs to neither this user nor root: such
// a file's secret is no longer the owner's alone.
func ReadPrivate(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if runtime.GOOS != "windows" {
		if err := checkPrivate(path, fi, os.Geteuid()); err != nil {
			return nil, err
		}
	}
	return io.ReadAll(io.LimitReader(f, limit))
}

// checkPrivate is ReadPrivate's check of a secret file's mode and owner
// for a process of effective uid euid; the error names the fix.
func checkPrivate(path string, fi os.FileInfo, euid int) error {
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("mode %04o lets group or others read or change it; chmod 600 %s", perm, path)
	}
	if uid, ok := fileOwner(fi); ok && uid != euid && uid != 0 {
		return fmt.Errorf("owned by uid %d, neither this user (uid %d) nor root; chown %d %s", uid, euid, euid, path)
	}
	return nil
}
