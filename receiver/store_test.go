package receiver

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/wire"
)

// TestDuplicateDenialsNotStored: repeated duplicate registrations, by
// password or with a token, are denied without leaving a file each.
func TestDuplicateDenialsNotStored(t *testing.T) {
	state := statedir.Dir(t.TempDir())
	machine := strings.Repeat("1", 32)
	if err := registry.Save(state, &registry.Host{HostID: "victim", Facts: wire.Facts{MachineID: machine}, SSHKey: "", SigningKey: make([]byte, 32),
		Status: registry.StatusActive, RegisteredAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	tok, err := CreateToken(registry.NewFiles(state), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := range 200 {
		req := &wire.Request{Version: wire.Version, RequestID: fmt.Sprintf("%032x", i+1),
			Facts: wire.Facts{Hostname: "x", MachineID: machine}, SSHKey: "ssh-ed25519 AAAA", SigningKey: make([]byte, 32)}
		auth, hash := AuthPassword, ""
		if i%2 == 1 {
			auth, hash = AuthToken, hashToken([]byte(tok))
		}
		r, err := submit(registry.NewFiles(state), req, auth, hash, "192.0.2.1", now)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != wire.StatusDenied {
			t.Fatalf("duplicate %d: %s, want denied", i, r.Status)
		}
	}
	ents, _ := os.ReadDir(state.Requests())
	if len(ents) != 0 {
		t.Errorf("%d request files after 200 duplicate denials, want 0", len(ents))
	}
	if _, err := os.Stat(state.Token(hashToken([]byte(tok)))); err != nil {
		t.Errorf("token used up by denied duplicates: %v", err)
	}
}

// TestCountPendingFollowsChanges: the status index sees new, changed and
// removed request files.
func TestCountPendingFollowsChanges(t *testing.T) {
	state := statedir.Dir(t.TempDir())
	now := time.Now()
	for i := range 3 {
		req := &wire.Request{Version: wire.Version, RequestID: fmt.Sprintf("%032x", i+1),
			Facts: wire.Facts{Hostname: "x", MachineID: fmt.Sprintf("%032x", i+1)}, SSHKey: "ssh-ed25519 AAAA", SigningKey: make([]byte, 32)}
		if _, err := submit(registry.NewFiles(state), req, AuthPassword, "", "", now); err != nil {
			t.Fatal(err)
		}
	}
	count := func(want int) {
		t.Helper()
		if n, err := registry.NewFiles(state).CountPending(); err != nil || n != want {
			t.Errorf("countPending = %d, %v; want %d", n, err, want)
		}
	}
	count(3)
	if _, err := Deny(registry.NewFiles(state), fmt.Sprintf("%032x", 1), ""); err != nil {
		t.Fatal(err)
	}
	count(2)
	os.Remove(state.Request(fmt.Sprintf("%032x", 2)))
	count(1)
}
