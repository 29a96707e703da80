package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// CopyExe copies the executable src to dir/name (mode 0755) and returns its
// path, its SHA-256 as sha256sum prints it, and its stat (the identity the
// exe hasher keys by).
func CopyExe(t testing.TB, src, dir, name string) (path, sum string, st syscall.Stat_t) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := exec.Command("sha256sum") // on stdin: it escapes odd names in its output
	c.Stdin = f
	out, err := c.Output()
	if err != nil {
		t.Fatalf("sha256sum: %v", err)
	}
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return path, strings.Fields(string(out))[0], st
}

// UniqueTrue copies /bin/true to a path of its own (symlinks resolved) and
// returns it, so that a kernel filter or a check on an exec's file name sees
// only this test's execs. The copy is removed when the test ends.
func UniqueTrue(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "pofr-true-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if dir, err = filepath.EvalSymlinks(dir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "true")
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}
