package agent

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/testutil"
	"github.com/pofr/pofr/spool"
)

// TestPrivExecRowsNameTheirFile runs the whole collector and checks that
// each exec row names the file it executed (exe_key) and that the key
// finds that file's hash among the exe rows: a binary copied and run, then
// replaced at the same path by another binary and run again (two rows, the
// same path, two hashes), and a binary deleted right after it started.
func TestPrivExecRowsNameTheirFile(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	cfg := standaloneConfig(t, dir, filepath.Join(dir, "config"))
	cfg.NoSock, cfg.NoSockTracepoints, cfg.StatusInterval = true, true, 100*time.Millisecond
	stop := startRun(t, cfg)

	bin := t.TempDir()
	// The file source is marking file systems: run a probe until its
	// FAN_OPEN_EXEC events are seen.
	probe, _, _ := testutil.CopyExe(t, "/bin/true", bin, "probe")
	testutil.WaitFor(t, 30*time.Second, "the file source to see execs", func() bool {
		if err := exec.Command(probe).Run(); err != nil {
			t.Fatal(err)
		}
		var f struct{ ExecObserved uint64 }
		return sourceStatus(t, cfg, event.SourceFile, &f) && f.ExecObserved > 0
	})
	var h0 struct{ Hashed, TooLarge, Changed, ReadErrors uint64 }
	sourceStatus(t, cfg, event.SourceExe, &h0)

	// Each runs until the collector has stopped (standard input held open),
	// so that neither its /proc reads nor the open of its deleted file by
	// handle can come too late on a loaded machine.
	prog, sumCat, _ := testutil.CopyExe(t, "/bin/cat", bin, "prog")
	pidCat := startHeld(t, prog)
	// Replaced by another binary under the same name (a new inode).
	next, sumWc, _ := testutil.CopyExe(t, "/usr/bin/wc", bin, "prog.new")
	if err := os.Rename(next, prog); err != nil {
		t.Fatal(err)
	}
	pidWc := startHeld(t, prog)
	// A dropper: started, then deleted at once.
	drop, sumDrop, _ := testutil.CopyExe(t, "/usr/bin/tee", bin, "dropper")
	pidDrop := startHeld(t, drop)
	if err := os.Remove(drop); err != nil {
		t.Fatal(err)
	}
	want := map[int32]string{pidCat: sumCat, pidWc: sumWc, pidDrop: sumDrop}
	// The three new files are hashed (or skipped) before the stop, which
	// would drop what is still queued.
	testutil.WaitFor(t, 30*time.Second, "the exe hasher to take the three files", func() bool {
		var h struct{ Hashed, TooLarge, Changed, ReadErrors uint64 }
		return sourceStatus(t, cfg, event.SourceExe, &h) &&
			h.Hashed+h.TooLarge+h.Changed+h.ReadErrors >= h0.Hashed+h0.TooLarge+h0.Changed+h0.ReadErrors+3
	})
	time.Sleep(500 * time.Millisecond) // the reader and the table batch for a few ms
	stop()

	sums := map[uint64][]byte{}    // exe_key → sha256, from the exe rows
	keys := map[int32]event.Proc{} // pid → its exec row
	eachSegment(t, cfg, func(_ string, seg *spool.Segment) {
		exes, err1 := seg.Executables()
		procs, err2 := seg.Procs()
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		for _, x := range exes {
			if x.SHA256 != nil {
				sums[event.ExeKey(x.Dev, x.Inode, x.Size, x.MTimeNS, x.CTimeNS)] = x.SHA256
			} else {
				t.Logf("exe row without a hash: %+v", x)
			}
		}
		for _, p := range procs {
			if _, ok := want[p.PID]; ok && p.Event == event.ProcExec {
				keys[p.PID] = p
			}
		}
	})
	for pid, sum := range want {
		r, ok := keys[pid]
		switch {
		case !ok:
			t.Errorf("pid %d: no exec row", pid)
		case !r.ExeKey.Valid:
			t.Errorf("pid %d: exec row of %q without exe_key (flags %#x)", pid, r.Exe, r.Flags)
		case hex.EncodeToString(sums[r.ExeKey.V]) != sum:
			t.Errorf("pid %d: exec row of %q joins sha256 %x by its exe_key, want %s", pid, r.Exe, sums[r.ExeKey.V], sum)
		}
	}
}

// readStatus decodes the collector's status.json; false if there is none
// yet.
func readStatus(cfg Config) (st Status, ok bool) {
	b, err := os.ReadFile(filepath.Join(cfg.StateDir, "status.json"))
	if err != nil || json.Unmarshal(b, &st) != nil {
		return st, false
	}
	return st, true
}

// sourceStatus decodes the status.json entry of source into v; false if
// there is none yet.
func sourceStatus(t *testing.T, cfg Config, source string, v any) bool {
	t.Helper()
	st, ok := readStatus(cfg)
	return ok && st.Sources[source] != nil && json.Unmarshal(st.Sources[source], v) == nil
}

// startHeld starts path with args, which reads its standard input to the
// end, and returns its pid; it runs until the test ends.
func startHeld(t *testing.T, path string, args ...string) int32 {
	t.Helper()
	cmd := exec.Command(path, args...)
	testutil.StartHeld(t, cmd)
	return int32(cmd.Process.Pid)
}
