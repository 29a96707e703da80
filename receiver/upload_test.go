package receiver

import (
	"bytes"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pofr/pofr/wire"
)

// TestSFTPHandleClosedAtRename: a handle opened on a temporary file before
// it was renamed to its final name, in the same or another session, cannot
// change the delivered segment.
func TestSFTPHandleClosedAtRename(t *testing.T) {
	f := start(t, nil)
	a1 := f.sftpAs(t, "host-a")
	a2 := f.sftpAs(t, "host-a")
	name := seg("host-a", 1)
	part := wire.PartName(name)
	inbox := f.state.Host("host-a").Inbox

	late, err := a2.OpenFile(part, os.O_WRONLY|os.O_CREATE)
	if err != nil {
		t.Fatal(err)
	}
	w, err := a1.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("the evidence as sealed")
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	// Renamed with both handles still open.
	if err := a1.PosixRename(part, name); err != nil {
		t.Fatalf("rename: %v", err)
	}
	if _, err := w.WriteAt([]byte("FORGED"), 0); err == nil {
		t.Error("write through the renaming session's handle after the rename succeeded")
	} else if strings.Contains(err.Error(), f.state.String()) {
		t.Errorf("error reveals the server's path: %v", err)
	}
	if _, err := late.WriteAt([]byte("FORGED"), 0); err == nil {
		t.Error("write through another session's handle after the rename succeeded")
	}
	late.Close()
	w.Close()
	if b, err := os.ReadFile(filepath.Join(inbox, name)); err != nil || !bytes.Equal(b, data) {
		t.Errorf("delivered segment = %q, %v; want %q", b, err, data)
	}
	// The slots of both handles are free again.
	for i := range maxOpenFiles {
		h, err := a1.OpenFile(wire.PartName(seg("host-a", 10+i)), os.O_WRONLY|os.O_CREATE)
		if err != nil {
			t.Fatalf("open handle %d after the rename: %v", i, err)
		}
		defer h.Close()
	}
}

// TestSFTPWriteAtOverflow: a write at offset 2^63-1 must not pass the size
// check by overflowing; it fails the upload, which is never delivered, and
// no error names a server path.
func TestSFTPWriteAtOverflow(t *testing.T) {
	f := start(t, nil)
	a := f.sftpAs(t, "host-a")
	name := seg("host-a", 1)
	part := wire.PartName(name)
	w, err := a.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("start")); err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{math.MaxInt64, math.MaxInt64 - 8} {
		if _, err := w.WriteAt([]byte("0123456789abcdef"), off); err == nil {
			t.Errorf("write at offset %d succeeded", off)
		} else if strings.Contains(err.Error(), f.state.String()) {
			t.Errorf("error reveals the server's path: %v", err)
		}
	}
	if err := w.Close(); err == nil {
		t.Error("close after a failed write succeeded")
	}
	if err := a.PosixRename(part, name); err == nil {
		t.Error("rename of a failed upload succeeded")
	}
	if _, err := os.Stat(filepath.Join(f.state.Host("host-a").Inbox, name)); err == nil {
		t.Error("failed upload delivered")
	}
}

// TestUploadFailedWriteFailsUpload: an error of the file system on a write
// fails the upload: later writes are refused, close reports it and removes
// the file, and the client's error names no server path.
func TestUploadFailedWriteFailsUpload(t *testing.T) {
	dir := t.TempDir()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	s := &Server{opts: Options{MaxSegmentBytes: 1 << 20}, openUploads: map[string]map[*upload]struct{}{}}
	d := &dropBox{s: s, log: slog.New(slog.DiscardHandler), host: "host-a", root: root}
	name := wire.PartName(seg("host-a", 1))
	if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// A read-only descriptor: every write fails with EBADF.
	ro, err := root.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	d.open.Add(1)
	u := &upload{d: d, f: ro, name: name, max: s.opts.MaxSegmentBytes}
	s.uploadsAdd("host-a", u)
	if _, err := u.WriteAt([]byte("x"), 0); err == nil {
		t.Fatal("write to a read-only descriptor succeeded")
	} else if strings.Contains(err.Error(), dir) {
		t.Errorf("write error reveals the server's path: %v", err)
	}
	if err := u.Close(); err == nil {
		t.Error("close after a failed write succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
		t.Error("file of the failed upload kept")
	}
	if n := d.open.Load(); n != 0 {
		t.Errorf("open handles = %d after close, want 0", n)
	}
}

var _ io.WriterAt = (*upload)(nil)

// TestSFTPPartLinkedToDelivered: if the temporary name of a delivered
// segment is still a link to it (its removal at the rename failed), opening
// that name for writing makes a new file: the delivered segment is neither
// truncated nor changed.
func TestSFTPPartLinkedToDelivered(t *testing.T) {
	f := start(t, nil)
	a := f.sftpAs(t, "host-a")
	name := seg("host-a", 1)
	inbox := f.state.Host("host-a").Inbox
	data := []byte("delivered evidence")
	if err := put(a, name, data); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(inbox, name), filepath.Join(inbox, wire.PartName(name))); err != nil {
		t.Fatal(err)
	}
	w, err := a.OpenFile(wire.PartName(name), os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("FORGED"))
	w.Close()
	if b, err := os.ReadFile(filepath.Join(inbox, name)); err != nil || !bytes.Equal(b, data) {
		t.Errorf("delivered segment = %q, %v; want %q", b, err, data)
	}
}
