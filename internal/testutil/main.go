package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// mainCalled records that the test binary runs under [Main], which stops the
// shared servers.
var mainCalled atomic.Bool

// shared holds what Main stops after the last test, in reverse order of start.
var shared struct {
	mu    sync.Mutex
	stops []func() error
}

// Main runs the tests of a package that uses the shared servers of this
// package, then stops those servers, removes their files and exits with the
// tests' status. Call it from TestMain:
//
//	func TestMain(m *testing.M) { testutil.Main(m) }
//
// Before running the tests it removes what dead test binaries left behind
// (temporary directories, test accounts), and it exits with status 2 when
// POFR_TEST_REQUIRE names an unknown tier.
func Main(m *testing.M) {
	if _, err := parseRequire(os.Getenv(EnvRequire), TierPriv); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	mainCalled.Store(true)
	reapStale()
	code := m.Run()
	if err := stopShared(); err != nil {
		fmt.Fprintf(os.Stderr, "testutil: stop shared servers: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// requireMain fails the test unless the test binary runs under Main.
func requireMain(t testing.TB, what string) {
	t.Helper()
	if !mainCalled.Load() {
		t.Fatalf("%s is shared by the package's tests and only testutil.Main stops it: "+
			"add func TestMain(m *testing.M) { testutil.Main(m) } to the package's tests", what)
	}
}

// atExit registers stop to run when Main ends.
func atExit(stop func() error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	shared.stops = append(shared.stops, stop)
}

// stopShared runs the functions registered with atExit, last first.
func stopShared() error {
	shared.mu.Lock()
	stops := shared.stops
	shared.stops = nil
	shared.mu.Unlock()
	var errs []error
	for _, stop := range slices.Backward(stops) {
		errs = append(errs, stop())
	}
	return errors.Join(errs...)
}

// stateDirPrefix starts the name of every temporary directory this package
// creates, so that reapStale can find those of dead test binaries.
const stateDirPrefix = "pofr-test-"

// newStateDir creates a temporary directory for one server or build under
// parent and records the test process as its owner.
func newStateDir(parent, kind string) (string, error) {
	dir, err := os.MkdirTemp(parent, stateDirPrefix+kind+"-")
	if err != nil {
		return "", fmt.Errorf("create %s state directory: %w", kind, err)
	}
	st, _ := startTime(os.Getpid())
	owner := fmt.Sprintf("%d %s\n", os.Getpid(), st)
	if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(owner), 0o644); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("record owner of %s: %w", dir, err)
	}
	return dir, nil
}

// reapStale removes the state directories, and the test accounts recorded in
// them, of test processes that no longer run.
func reapStale() {
	parents := []string{os.TempDir()}
	if p, err := secureParent(); err == nil && p != os.TempDir() {
		parents = append(parents, p)
	}
	reapStaleIn(parents)
}

// reapStaleIn removes the stale state directories (and their accounts)
// directly below each of parents.
func reapStaleIn(parents []string) {
	for _, parent := range parents {
		dirs, _ := filepath.Glob(filepath.Join(parent, stateDirPrefix+"*"))
		for _, dir := range dirs {
			if !stale(dir) {
				continue
			}
			if b, err := os.ReadFile(filepath.Join(dir, "account")); err == nil && os.Geteuid() == 0 {
				if err := removeAccount(strings.TrimSpace(string(b))); err != nil {
					fmt.Fprintf(os.Stderr, "testutil: remove leftover test account: %v\n", err)
				}
			}
			if err := os.RemoveAll(dir); err != nil {
				fmt.Fprintf(os.Stderr, "testutil: remove leftover %s: %v\n", dir, err)
			}
		}
	}
}

// stale reports whether dir is a state directory whose owner process is gone.
func stale(dir string) bool {
	fi, err := os.Lstat(dir)
	if err != nil || !fi.IsDir() {
		return false
	}
	b, err := os.ReadFile(filepath.Join(dir, "owner"))
	if err != nil {
		// Either being created right now or older than owner files.
		return time.Since(fi.ModTime()) > time.Hour
	}
	var pid int
	var st string
	if _, err := fmt.Sscan(string(b), &pid, &st); err != nil || pid <= 0 {
		return false
	}
	return ownerGone(pid, st)
}

// account is a system account a server runs as.
type account struct {
	name     string
	uid, gid uint32
}

// lookupAccount returns the account called name.
func lookupAccount(name string) (*account, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("look up account %s: %w", name, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("look up account %s: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("look up account %s: gid %q: %w", name, u.Gid, err)
	}
	return &account{name: name, uid: uint32(uid), gid: uint32(gid)}, nil
}
