package statedir

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestLayout pins the layout: state directories written by earlier
// versions must keep working.
func TestLayout(t *testing.T) {
	d := Dir("/s")
	got := []string{d.HostKey(), d.Hosts(), d.Inboxes(), d.Archives(), d.Quarantines(), d.Requests(), d.Request("ab"),
		d.Tokens(), d.Token("cd"), d.Lock(), d.LoadLock()}
	want := []string{"/s/ssh_host_ed25519_key", "/s/hosts", "/s/inbox", "/s/archive", "/s/quarantine", "/s/requests", "/s/requests/ab.json",
		"/s/tokens", "/s/tokens/cd.json", "/s/.lock", "/s/load.lock"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("layout (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(Host{Dir: "/s/hosts/h-1", Record: "/s/hosts/h-1/host.json", Inbox: "/s/inbox/h-1", Archive: "/s/archive/h-1", Quarantine: "/s/quarantine/h-1"}, d.Host("h-1")); diff != "" {
		t.Errorf("Host (-want +got):\n%s", diff)
	}
}

// TestReadDir: a directory of the layout that does not exist yet is empty;
// one that cannot be read is an error.
func TestReadDir(t *testing.T) {
	d := Dir(t.TempDir())
	if ents, err := ReadDir(d.Inboxes()); err != nil || ents != nil {
		t.Errorf("missing directory: %v, %v; want nothing, no error", ents, err)
	}
	if err := os.MkdirAll(d.Host("h-1").Inbox, 0o700); err != nil {
		t.Fatal(err)
	}
	if ents, err := ReadDir(d.Inboxes()); err != nil || len(ents) != 1 || ents[0].Name() != "h-1" {
		t.Errorf("inboxes: %v, %v; want h-1", ents, err)
	}
	if err := os.WriteFile(d.Lock(), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadDir(d.Lock()); err == nil {
		t.Error("a file read as a directory: no error")
	}
}
