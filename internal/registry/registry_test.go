package registry

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/wire"
)

func TestSaveLoadList(t *testing.T) {
	state := statedir.Dir(t.TempDir())
	h := &Host{HostID: "h-0001", Facts: wire.Facts{Hostname: "web1", MachineID: "abc"}, SSHKey: "ssh-ed25519 AAAA", SigningKey: make([]byte, 32),
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
	// The host's facts sit at the top level of host.json.
	b, err := os.ReadFile(filepath.Join(string(state), "hosts", "h-0001", "host.json"))
	if err != nil {
		t.Fatal(err)
	}
	var flat map[string]any
	if err := json.Unmarshal(b, &flat); err != nil || flat["hostname"] != "web1" || flat["machine_id"] != "abc" || flat["host_id"] != "h-0001" {
		t.Errorf("host.json = %s (%v), want hostname, machine_id and host_id at the top level", b, err)
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
