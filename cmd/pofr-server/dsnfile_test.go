package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testDSN = "nobody:secret@unix(/nonexistent/mysqld.sock)/pofr"

// TestDSNFileMode: a DSN file its group or others may read or write is
// refused with a message that names it, its mode and the fix; 0600 and 0400
// are read.
func TestDSNFileMode(t *testing.T) {
	dir := t.TempDir()
	for _, mode := range []os.FileMode{0o600, 0o400, 0o644, 0o640, 0o604, 0o620, 0o602, 0o660} {
		path := filepath.Join(dir, fmt.Sprintf("m%o.dsn", mode))
		if err := os.WriteFile(path, []byte(testDSN+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		dsn, err := readDSNFile(path)
		if mode&0o077 == 0 {
			if err != nil || dsn != testDSN {
				t.Errorf("mode %#o: readDSNFile = %q, %v, want the DSN", mode, dsn, err)
			}
			continue
		}
		want := fmt.Sprintf("DSN file %s: mode %04o", path, mode)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "chmod 600 "+path) {
			t.Errorf("mode %#o: readDSNFile = %q, %v, want an error with %q and the fix chmod 600 %s", mode, dsn, err, want, path)
		}
	}
}

// TestDSNFileModeRefusesLoad: a command stops at the refused file, before
// the database.
func TestDSNFileModeRefusesLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "loader.dsn")
	if err := os.WriteFile(path, []byte(testDSN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runApp(t, "load", "--dsn-file", path, "--state-dir", t.TempDir(), "--no-progress")
	if code == 0 || !strings.Contains(errOut, "chmod 600 "+path) || strings.Contains(errOut, "secret") {
		t.Errorf("load with a 0644 DSN file: exit %d, stderr %q, want a failure naming the fix and not the password", code, errOut)
	}
}

// TestDSNFileOwner: root refuses a DSN file another user owns (that user
// could point root's commands at another database, or read the password).
func TestDSNFileOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root can give a file to another user (durable's tests check the rule for any uid)")
	}
	path := filepath.Join(t.TempDir(), "reader.dsn")
	if err := os.WriteFile(path, []byte(testDSN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 4242, -1); err != nil {
		t.Fatal(err)
	}
	if _, err := readDSNFile(path); err == nil || !strings.Contains(err.Error(), "DSN file "+path+": owned by uid 4242") {
		t.Errorf("root reading uid 4242's DSN file: %v, want refused", err)
	}
}
