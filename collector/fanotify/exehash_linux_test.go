package fanotify

import (
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pofr/pofr/collector/exehash"
	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/testutil"
)

// TestPrivExeHash: a binary copied, started and deleted at once (a dropper)
// is hashed from its fanotify file handle, and the hash is sha256sum's; a
// binary run five times is hashed once and its rows count five execs; a
// binary over the size limit is recorded without a hash, skip too_large.
func TestPrivExeHash(t *testing.T) {
	sink, h, _, stop := hashedSource(t, exehash.Options{MaxSize: 1 << 20})

	dir := t.TempDir()
	drop, dropSum, dropSt := testutil.CopyExe(t, "/bin/sleep", dir, "drop per\n\xff")
	again, againSum, againSt := testutil.CopyExe(t, "/bin/true", dir, "again")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	big, _, bigSt := testutil.CopyExe(t, self, dir, "big")

	// The dropper runs until its row is seen: the source opens the file by
	// its handle when it reads the event, which on a loaded machine can be
	// after a short-lived process ended and its deleted file was freed.
	cmd := exec.Command(drop, "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if err := os.Remove(drop); err != nil {
		t.Fatal(err)
	}
	dropPID := int32(cmd.Process.Pid)
	for range 5 {
		if err := exec.Command(again).Run(); err != nil {
			t.Fatal(err)
		}
	}
	if err := exec.Command(big, "-test.run=^$").Run(); err != nil {
		t.Fatal(err)
	}
	rowsOf := func(st syscall.Stat_t) []event.Executable {
		var out []event.Executable
		for _, r := range sink.Executables() {
			if r.Dev == st.Dev && r.Inode == st.Ino {
				out = append(out, r)
			}
		}
		return out
	}
	deadline := time.Now().Add(10 * time.Second)
	for (len(rowsOf(dropSt)) == 0 || len(rowsOf(againSt)) == 0 || len(rowsOf(bigSt)) == 0) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	stop()

	d := rowsOf(dropSt)
	if len(d) != 1 {
		t.Fatalf("dropper: %d rows %+v, want 1", len(d), d)
	}
	if got := hex.EncodeToString(d[0].SHA256); got != dropSum || d[0].Skip != "" || d[0].How != event.ExeByHandle ||
		d[0].PID != dropPID || d[0].Size != dropSt.Size || d[0].Count != 1 {
		t.Errorf("dropper row %+v (sha256 %s), want sha256 %s, how handle, pid %d, size %d, count 1", d[0], got, dropSum, dropPID, dropSt.Size)
	}
	a := rowsOf(againSt)
	var n uint32
	for _, r := range a {
		n += r.Count
		if got := hex.EncodeToString(r.SHA256); got != againSum {
			t.Errorf("row %+v: sha256 %s, want %s", r, got, againSum)
		}
	}
	if n != 5 || len(a) > 2 {
		t.Errorf("run five times: %d rows counting %d execs, want at most 2 rows counting 5", len(a), n)
	}
	b := rowsOf(bigSt)
	if len(b) != 1 || b[0].SHA256 != nil || b[0].Skip != event.ExeSkipTooLarge || b[0].Size != bigSt.Size {
		t.Errorf("over the size limit: rows %+v, want one with skip too_large and no hash", b)
	}
	if st := h.Stats(); st.Hashed < 2 || st.TooLarge < 1 || st.Hits < 4 {
		t.Errorf("stats %+v: want ≥ 2 hashed, ≥ 1 too large, ≥ 4 cache hits", st)
	}
}

// TestPrivExeHashByKey: execs of a binary already hashed are counted by
// their FID without opening the file, and a rewrite in place (same inode,
// FAN_CLOSE_WRITE) makes the next exec state and hash the file again.
func TestPrivExeHashByKey(t *testing.T) {
	sink, h, src, stop := hashedSource(t, exehash.Options{})
	if src.mask&unix.FAN_CLOSE_WRITE == 0 {
		t.Fatalf("mask %#x: the forensic profile has no FAN_CLOSE_WRITE", src.mask)
	}
	dir := t.TempDir()
	exe, trueSum, st := testutil.CopyExe(t, "/bin/true", dir, "rw")
	falseBytes, err := os.ReadFile("/bin/false")
	if err != nil {
		t.Fatal(err)
	}
	withSum := func(sum string) int {
		var n uint32
		for _, r := range sink.Executables() {
			if r.Dev == st.Dev && r.Inode == st.Ino && hex.EncodeToString(r.SHA256) == sum {
				n += r.Count
			}
		}
		return int(n)
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10 s; rows %+v, stats %+v", what, sink.Executables(), h.Stats())
			}
		}
	}
	for range 4 {
		if err := exec.Command(exe).Run(); err != nil {
			t.Fatal(err)
		}
	}
	// The source sees every exec on the machine and opens the file when it
	// reads the event, not when the exec happened: before the rewrite, wait
	// until all four execs were read. A marker binary run after them is
	// hashed only once everything queued before it was (events are read in
	// order, and the hasher works its queue in order).
	marker, markerSum, mst := testutil.CopyExe(t, "/bin/true", dir, "marker")
	if err := exec.Command(marker).Run(); err != nil {
		t.Fatal(err)
	}
	waitFor("the four execs read", func() bool {
		for _, r := range sink.Executables() {
			if r.Dev == mst.Dev && r.Inode == mst.Ino && hex.EncodeToString(r.SHA256) == markerSum {
				return withSum(trueSum) > 0
			}
		}
		return false
	})
	if st := h.Stats(); st.KeyHits < 3 {
		t.Errorf("stats %+v: want ≥ 3 of the 4 execs counted by key", st)
	}
	// Rewrite in place: same inode, new content.
	if err := os.WriteFile(exe, falseBytes, 0o755); err != nil {
		t.Fatal(err)
	}
	var st2 syscall.Stat_t
	if err := syscall.Stat(exe, &st2); err != nil || st2.Ino != st.Ino {
		t.Fatalf("rewritten file: %v, inode %d, want %d", err, st2.Ino, st.Ino)
	}
	falseSum := sha256sumOf(t, exe)
	if err := exec.Command(exe).Run(); err == nil {
		t.Fatal("the rewritten binary (false) exited 0")
	}
	waitFor("hash after the rewrite", func() bool { return withSum(falseSum) == 1 })
	stop()
}

// hashedSource starts a hasher with opts (both sinks a new MemSink) and a
// running forensic fanotify source that feeds it; stop stops both and logs
// the hasher's counters.
func hashedSource(t *testing.T, opts exehash.Options) (*event.MemSink, *exehash.Hasher, *Source, func()) {
	t.Helper()
	testutil.RequireRoot(t)
	sink := &event.MemSink{}
	opts.Exes, opts.Gaps = sink, sink
	h, err := exehash.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	stopHasher := testutil.Go(t, "Hasher.Run", h.Run)
	src := newFanotifySource(t, Options{Sink: sink, Hash: h, Profile: forensic(t), SelfPID: int32(os.Getpid())})
	stopSource := runSource(t, src)
	return sink, h, src, func() {
		stopSource()
		stopHasher()
		t.Logf("hasher stats %+v", h.Stats())
	}
}

// sha256sumOf returns sha256sum's hash of path.
func sha256sumOf(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("sha256sum", path).Output()
	if err != nil {
		t.Fatalf("sha256sum: %v", err)
	}
	return strings.Fields(string(out))[0]
}

// BenchmarkExecHashReader measures what hashing adds to the fanotify reader
// per exec of an already hashed binary: by-handle is open_by_handle_at of
// the event's file handle, then the hasher's fstat, cache lookup and close;
// by-key is the lookup of the event's FID that replaces them when the marks
// report FAN_CLOSE_WRITE.
func BenchmarkExecHashReader(b *testing.B) {
	testutil.RequireRoot(b)
	sink := &event.MemSink{}
	h, err := exehash.New(exehash.Options{Exes: sink, Gaps: sink})
	if err != nil {
		b.Fatal(err)
	}
	src, err := New(Options{Sink: sink, Hash: h, Profile: forensic(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer src.closeFanotify()
	src.scanMounts()
	fh, mnt, err := unix.NameToHandleAt(unix.AT_FDCWD, "/usr/bin/true", 0)
	if err != nil {
		b.Skipf("name_to_handle_at: %v", err)
	}
	_ = mnt
	var sfs unix.Statfs_t
	if err := unix.Statfs("/usr/bin/true", &sfs); err != nil {
		b.Fatal(err)
	}
	f := fanFID{FSID: [2]int32{sfs.Fsid.Val[0], sfs.Fsid.Val[1]}, Type: fh.Type(), Handle: fh.Bytes()}
	fd := src.openExec(&f)
	if fd < 0 {
		b.Fatal("cannot open /usr/bin/true by handle")
	}
	stop := testutil.Go(b, "Hasher.Run", h.Run)
	h.HashExec(fd, 1, time.Now().UnixNano(), nil)
	testutil.WaitFor(b, 10*time.Second, "the exe row of /usr/bin/true", func() bool { return len(sink.Executables()) > 0 })
	n := 0
	b.Run("by-handle", func(b *testing.B) { // without FAN_CLOSE_WRITE in the mask
		for b.Loop() {
			h.HashExec(src.openExec(&f), 1, 1, nil)
			n++
		}
	})
	src.closeMounts()
	b.Run("by-key", func(b *testing.B) { // what an exec of a known file costs with FAN_CLOSE_WRITE in the mask
		h.HashExecKey(src.openExec(&f), src.keyOf(&f), 1, 1, nil)
		for b.Loop() {
			if _, ok := h.SeenExecKey(src.keyOf(&f), 1, 1); !ok {
				b.Fatal("key not remembered")
			}
		}
	})
	stop()
	if st := h.Stats(); st.Lost != 0 || st.Hits < uint64(n) {
		b.Fatalf("stats %+v: want every exec a cache hit", st)
	}
}
