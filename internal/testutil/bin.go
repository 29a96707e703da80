package testutil

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// bins holds the commands Bin built in this test process.
var bins struct {
	mu    sync.Mutex
	dir   string
	built map[string]*build
}

// build is one command built by Bin, or the reason it could not be.
type build struct {
	once sync.Once
	path string
	err  error
}

// Bin builds the command in package pkg of this module, once per test process,
// and returns the path of the executable. pkg is module-relative ("cmd/pofr-server",
// "./cmd/pofr-server") or a full import path. The executables live in a
// temporary directory that [Main] removes.
func Bin(t testing.TB, pkg string) string {
	t.Helper()
	gotool, err := goTool()
	if err != nil {
		Skip(t, TierE2E, err.Error())
	}
	requireMain(t, "the directory of commands built by testutil.Bin")
	root, modPath, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := relPackage(modPath, pkg)
	if err != nil {
		t.Fatal(err)
	}

	bins.mu.Lock()
	if bins.dir == "" {
		dir, err := newStateDir(os.TempDir(), "bin")
		if err != nil {
			bins.mu.Unlock()
			t.Fatal(err)
		}
		bins.dir = dir
		bins.built = make(map[string]*build)
		atExit(func() error {
			bins.mu.Lock()
			defer bins.mu.Unlock()
			err := os.RemoveAll(bins.dir)
			bins.dir, bins.built = "", nil
			return err
		})
	}
	b := bins.built[rel]
	if b == nil {
		b = &build{}
		bins.built[rel] = b
	}
	dir := bins.dir
	bins.mu.Unlock()

	b.once.Do(func() {
		start := time.Now()
		out := filepath.Join(dir, strings.ReplaceAll(strings.TrimPrefix(rel, "./"), "/", "_"), path.Base(rel))
		b.err = goBuild(gotool, root, rel, out)
		b.path = out
		if b.err == nil {
			t.Logf("built %s in %v", rel, time.Since(start).Round(time.Millisecond))
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// goBuild runs go build -o out rel in the module root.
func goBuild(gotool, root, rel, out string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("build %s: %w", rel, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gotool, "build", "-o", out, rel)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %w\n%s", rel, err, b)
	}
	return nil
}

// goTool returns the path of the go command.
func goTool() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	for _, p := range []string{filepath.Join(os.Getenv("GOROOT"), "bin", "go"), "/usr/local/go/bin/go"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", errors.New("go command not found; put /usr/local/go/bin on PATH")
}

// moduleRoot returns the directory and module path of the go.mod that
// encloses the working directory.
func moduleRoot() (dir, modPath string, err error) {
	dir, err = os.Getwd()
	if err != nil {
		return "", "", fmt.Errorf("find module root: %w", err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil {
			sc := bufio.NewScanner(bytes.NewReader(b))
			for sc.Scan() {
				if m, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
					return dir, strings.Trim(strings.TrimSpace(m), `"`), nil
				}
			}
			return "", "", fmt.Errorf("find module root: no module line in %s", filepath.Join(dir, "go.mod"))
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", "", errors.New("find module root: no go.mod above the working directory")
		}
		dir = parent
	}
}

// relPackage turns pkg into a "./"-relative package path inside module modPath.
func relPackage(modPath, pkg string) (string, error) {
	p := pkg
	if rest, ok := strings.CutPrefix(p, modPath+"/"); ok {
		p = rest
	}
	p = path.Clean(strings.TrimPrefix(p, "./"))
	if p == "." || p == ".." || strings.HasPrefix(p, "../") || path.IsAbs(p) || strings.Contains(p, "...") {
		return "", fmt.Errorf("build %q: want one package of module %s, such as cmd/pofr-server", pkg, modPath)
	}
	return "./" + p, nil
}
