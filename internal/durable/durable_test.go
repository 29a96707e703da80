package durable

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteFileReplacesAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.json")
	for _, data := range []string{"old", "new"} {
		if err := WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "new" {
		t.Fatalf("read back %q, %v; want new", b, err)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("%d entries in the directory, want only the file", len(ents))
	}
	if err := WriteFile(filepath.Join(dir, "missing", "f"), nil, 0o600); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}

func TestCreateFileNeverReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key")
	if err := CreateFile(p, []byte("first"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CreateFile(p, []byte("second"), 0o600); !errors.Is(err, os.ErrExist) {
		t.Errorf("CreateFile over an existing file: %v, want ErrExist", err)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "first" {
		t.Errorf("read back %q, %v; want first", b, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%d entries in the directory, want only the file", len(ents))
	}
}

func TestCopyFile(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	if err := os.WriteFile(src, []byte("segment bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CopyFile(dst, src, 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(dst); err != nil || string(b) != "segment bytes" {
		t.Errorf("copy holds %q, %v; want the source's bytes", b, err)
	}
	if fi, _ := os.Stat(dst); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if err := CopyFile(filepath.Join(dir, "dst2"), filepath.Join(dir, "missing"), 0o600); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("copy of a missing file: %v, want ErrNotExist", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("%d entries in the directory, want src and dst", len(ents))
	}
}

// TestReadPrivateMode: a secret file its group or others may read or
// change is refused with its mode and the fix; 0600 and 0400 are read.
func TestReadPrivateMode(t *testing.T) {
	dir := t.TempDir()
	for _, mode := range []os.FileMode{0o600, 0o400, 0o644, 0o640, 0o604, 0o620, 0o602} {
		p := filepath.Join(dir, fmt.Sprintf("m%o", mode))
		if err := os.WriteFile(p, []byte("secret"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		b, err := ReadPrivate(p, 64)
		if mode&0o077 == 0 {
			if err != nil || string(b) != "secret" {
				t.Errorf("mode %04o: %q, %v, want the secret", mode, b, err)
			}
			continue
		}
		want := fmt.Sprintf("mode %04o lets group or others read or change it; chmod 600 %s", mode, p)
		if err == nil || err.Error() != want {
			t.Errorf("mode %04o: %q, %v, want %q", mode, b, err, want)
		}
	}
}

// TestReadPrivateOwner: the file belongs to the user who reads it, or to
// root; another user's is refused.
func TestReadPrivateOwner(t *testing.T) {
	p := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(p, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	owner := os.Geteuid()
	if owner == 0 {
		owner = 4242 // root's files are everyone's to trust: give it to another user
		if err := os.Chown(p, owner, -1); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadPrivate(p, 64); err == nil || !strings.Contains(err.Error(), "owned by uid 4242") {
			t.Errorf("root reading uid 4242's secret: %v, want refused", err)
		}
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkPrivate(p, fi, owner); err != nil {
		t.Errorf("the owner's own file: %v", err)
	}
	other := owner + 1
	want := fmt.Sprintf("owned by uid %d, neither this user (uid %d) nor root; chown %d %s", owner, other, other, p)
	if err := checkPrivate(p, fi, other); err == nil || err.Error() != want {
		t.Errorf("uid %d reading uid %d's file: %v, want %q", other, owner, err, want)
	}
	if err := os.Chown(p, 0, -1); err == nil { // root only
		fi, _ = os.Stat(p)
		if err := checkPrivate(p, fi, other); err != nil {
			t.Errorf("root's file read by uid %d: %v", other, err)
		}
	}
}

// TestReplaceFile: the file is replaced whole, with its mode, and no
// temporary file is left beside it.
func TestReplaceFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "status.json")
	for _, data := range []string{"first\n", "second, longer\n"} {
		if err := ReplaceFile(p, []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil || string(b) != data {
			t.Fatalf("%q, %v; want %q", b, err, data)
		}
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, %v; want 0640", fi.Mode().Perm(), err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%d entries in the directory, want the file alone", len(ents))
	}
}
