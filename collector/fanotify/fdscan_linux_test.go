package fanotify

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pofr/pofr/internal/event"
)

// TestFDScanHonoursProcRoot: the fallback scan reads the ProcRoot it is
// given (here a fixture tree), not the host's /proc.
func TestFDScanHonoursProcRoot(t *testing.T) {
	root := t.TempDir()
	for pid, links := range map[string][]string{
		"42":  {"/dev/null", "socket:[12345]", "/etc/passwd"},
		"77":  {"/etc/hostname"}, // SelfPID: skipped
		"100": {"pipe:[1]"},
	} {
		dir := filepath.Join(root, pid, "fd")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, l := range links {
			if err := os.Symlink(l, filepath.Join(dir, string(rune('0'+i)))); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.Mkdir(filepath.Join(root, "self"), 0o755); err != nil {
		t.Fatal(err)
	}
	sink := &event.MemSink{}
	src, err := New(Options{Sink: sink, ForceFallback: true, ProcRoot: root, SelfPID: 77})
	if err != nil {
		t.Fatal(err)
	}
	src.scanFDs()
	src.flush()
	var got []string
	for _, r := range sink.Files() {
		if r.Op != event.FileFDOpen || r.Flags&event.FileFlagFallback == 0 || r.Flags&event.FileFlagProcUnknown == 0 {
			t.Errorf("row %+v: want op fd, flags fallback and proc_unknown", r)
		}
		got = append(got, fmt.Sprintf("%s@%d", r.Path, r.PID))
	}
	slices.Sort(got)
	if diff := cmp.Diff([]string{"/dev/null@42", "/etc/passwd@42"}, got); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}
