package testutil

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/pofr/pofr/internal/daemon"
)

func TestReapStale(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("owners of state directories are known on Linux only")
	}
	live, err := newStateDir(t.TempDir(), "live")
	if err != nil {
		t.Fatal(err)
	}
	// The dead directory lives below a parent of this test's own, which the
	// other test binaries' reapers (running at the same time) do not scan.
	parent := t.TempDir()
	dead, err := newStateDir(parent, "dead")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dead) })
	// The test process's pid with another start time: a process that ended
	// and whose pid was reused.
	if err := os.WriteFile(filepath.Join(dead, "owner"), fmt.Appendf(nil, "%d 1\n", os.Getpid()), 0o644); err != nil {
		t.Fatal(err)
	}
	if stale(live) {
		t.Errorf("stale(%s) = true for a directory of the running test", live)
	}
	if !stale(dead) {
		t.Errorf("stale(%s) = false for a directory whose owner is gone", dead)
	}

	var name string
	if _, err := daemon.LookTool("useradd"); err == nil && os.Geteuid() == 0 && !testing.Short() {
		var id [4]byte
		rand.Read(id[:])
		name = accountPrefix + hex.EncodeToString(id[:])
		if _, err := addAccount(name, "/nonexistent"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { removeAccount(name) })
		if err := os.WriteFile(filepath.Join(dead, "account"), []byte(name+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	reapStaleIn([]string{parent, filepath.Dir(live)})
	if _, err := os.Stat(dead); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("reapStale left %s (%v)", dead, err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("reapStale removed the live %s: %v", live, err)
	}
	if name != "" {
		if _, err := user.Lookup(name); !errors.As(err, new(user.UnknownUserError)) {
			t.Errorf("reapStale left account %s (%v)", name, err)
		}
	}
}

func TestRemoveAccountRefusesOtherAccounts(t *testing.T) {
	if err := removeAccount("root"); err == nil {
		t.Error("removeAccount(root) did not refuse")
	}
}

func TestStartSSHDReportsSshdErrors(t *testing.T) {
	r := runGate(t, func(tb testing.TB) {
		StartSSHD(tb, SSHDConfig{
			AuthorizedKeysLines: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGm2Ve0QWJ9MLZ8nbc9Vx0Cw7pHbMv2b3fbKvtPeq+qV test"},
			Config:              []string{"NoSuchOption yes"},
		})
	})
	if r.skipped != "" {
		t.Skip(r.skipped)
	}
	if !strings.Contains(r.failed, "NoSuchOption") {
		t.Errorf("StartSSHD with a bad option failed with %q, want sshd's complaint about NoSuchOption", r.failed)
	}
}
