package registry

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSaveLoadList(t *testing.T) {
	state := t.TempDir()
	h := &Host{HostID: "h-0001", Hostname: "web1", MachineID: "abc", SSHKey: "ssh-ed25519 AAAA", SigningKey: make([]byte, 32),
		Status: StatusActive, RegisteredAt: time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)}
	if err := Save(state, h); err != nil {
		t.Fatal(err)
	}
	got, err := Load(state, "h-0001")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(h, got); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}
	all, err := List(state)
	if err != nil || len(all) != 1 {
		t.Fatalf("List = %d hosts, %v; want 1, nil", len(all), err)
	}
	if _, err := Load(state, "../etc"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Load(../etc) = %v, want ErrNotFound", err)
	}
	if _, err := Load(state, "h-0002"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Load(missing) = %v, want ErrNotFound", err)
	}
	if _, err := got.SigningPublicKey(); err != nil {
		t.Errorf("SigningPublicKey: %v", err)
	}
}

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{"h-0001": true, "web1": true, "": false, "..": false, "a/b": false, "A": false, "-x": false} {
		if got := ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
}
