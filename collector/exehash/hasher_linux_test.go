package exehash

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pofr/pofr/internal/event"
)

func openFile(t *testing.T, path string) int {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

// TestLossAndRefresh: new identities beyond the queue are lost, counted and
// written as one gap row; a queued one is hashed once however often it is
// executed, and its later execs are sent as a row at stop.
func TestLossAndRefresh(t *testing.T) {
	sink := &event.MemSink{}
	h, err := New(Options{Exes: sink, Gaps: sink, Queue: 1})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var paths []string
	for i := range 3 {
		p := filepath.Join(dir, "f"+strconv.Itoa(i))
		if err := os.WriteFile(p, []byte("content "+strconv.Itoa(i)), 0o755); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	for i, p := range paths { // the worker is not running: only the first fits the queue
		h.HashExec(openFile(t, p), int32(100+i), int64(1000+i), []byte(p))
	}
	h.HashExec(openFile(t, paths[0]), 200, 2000, nil) // known: counted, not queued
	h.HashExec(-1, 1<<30, 3000, nil)                  // no such pid: nothing to open
	if st := h.Stats(); st.Lost != 3 || st.Hits != 1 || st.Execs != 5 {
		t.Fatalf("stats %+v, want 5 execs, 3 lost, 1 hit", st)
	}
	stop := runHasher(t, h, sink)
	h.HashExec(openFile(t, paths[0]), 300, 4000, nil)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	rows := sink.Executables()
	want := sha256.Sum256([]byte("content 0"))
	if len(rows) != 2 || string(rows[0].SHA256) != string(want[:]) || rows[0].Count != 2 || rows[0].PID != 100 ||
		rows[0].TS != 1000 || rows[0].LastTS != 2000 || string(rows[0].Path) != paths[0] ||
		rows[1].Count != 1 || rows[1].PID != 300 || rows[1].TS != 4000 || string(rows[1].SHA256) != string(want[:]) {
		t.Errorf("rows %+v, want the first (2 execs, pid 100, ts 1000–2000) and one at stop (1 exec, pid 300)", rows)
	}
	gaps := sink.Gaps()
	if len(gaps) != 1 || gaps[0].Source != event.SourceExe || gaps[0].Lost != event.Some[int64](3) || gaps[0].FromTS != 1001 || gaps[0].ToTS != 3000 {
		t.Errorf("gaps %+v, want one exe gap of 3 from 1001 to 3000", gaps)
	}
}

// TestLossWrittenWhileRunning: losses while Run runs become one gap row
// about lossFlush after the first, without a stop, and a later loss another.
func TestLossWrittenWhileRunning(t *testing.T) {
	sink := &event.MemSink{}
	h, err := New(Options{Exes: sink, Gaps: sink})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for round, ts := range []int64{1000, 5000} {
		h.HashExec(-1, 1<<30, ts, nil) // no such pid: nothing to open
		h.HashExec(-1, 1<<30, ts+1, nil)
		deadline := time.Now().Add(10 * time.Second)
		for len(sink.Gaps()) <= round && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		gaps := sink.Gaps()
		if len(gaps) != round+1 || gaps[round].Lost != event.Some[int64](2) || gaps[round].FromTS != ts || gaps[round].ToTS != ts+1 {
			t.Fatalf("round %d: gaps %+v, want %d, the last of 2 execs from %d to %d", round, gaps, round+1, ts, ts+1)
		}
	}
}

// TestChanged: a file whose content changes while queued is recorded
// without a hash, skip changed.
func TestChanged(t *testing.T) {
	sink := &event.MemSink{}
	h, err := New(Options{Exes: sink, Gaps: sink})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "x")
	if err := os.WriteFile(p, []byte("one"), 0o755); err != nil {
		t.Fatal(err)
	}
	h.HashExec(openFile(t, p), 1, 1, nil)
	if err := os.WriteFile(p, []byte("two, longer"), 0o755); err != nil {
		t.Fatal(err)
	}
	stop := runHasher(t, h, sink)
	stop()
	rows := sink.Executables()
	if len(rows) != 1 || rows[0].SHA256 != nil || rows[0].Skip != event.ExeSkipChanged {
		t.Errorf("rows %+v, want one with skip changed", rows)
	}
}

// runHasher starts h's worker and waits up to 5 s for its first row in
// sink; stop cancels the worker and returns what Run returned.
func runHasher(t *testing.T, h *Hasher, sink *event.MemSink) (stop func() error) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for len(sink.Executables()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	return func() error {
		cancel()
		return <-done
	}
}

// BenchmarkHash measures hashing throughput (SetBytes: MB/s in the
// output) on a 32 MiB file with no CPU budget.
func BenchmarkHash(b *testing.B) {
	p := filepath.Join(b.TempDir(), "big")
	if err := os.WriteFile(p, make([]byte, 32<<20), 0o644); err != nil {
		b.Fatal(err)
	}
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	unix.Fstat(fd, &st)
	h, _ := New(Options{Exes: &event.MemSink{}, Gaps: &event.MemSink{}, Budget: 1})
	buf := make([]byte, chunk)
	b.SetBytes(st.Size)
	for b.Loop() {
		if _, skip := h.hash(b.Context(), job{fd: fd, id: identityOf(&st)}, buf); skip != "" {
			b.Fatal(skip)
		}
	}
}

// BenchmarkHashExecHit measures the fanotify reader's cost per exec of a
// known identity: fstat, cache lookup, close (the open by handle is the
// reader's and not included).
func BenchmarkHashExecHit(b *testing.B) {
	p := filepath.Join(b.TempDir(), "x")
	os.WriteFile(p, []byte("x"), 0o755)
	h, _ := New(Options{Exes: &event.MemSink{}, Gaps: &event.MemSink{}})
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	h.HashExec(fd, 1, 1, nil)
	h.mu.Lock()
	for _, e := range h.cache {
		e.done, e.sentAt = true, 1<<62
	}
	h.mu.Unlock()
	for b.Loop() {
		b.StopTimer()
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		h.HashExec(fd, 2, 2, nil)
	}
}

func TestUnchangedWhileRead(t *testing.T) {
	was := identity{dev: 1, ino: 2, size: 3, mtime: 4, ctime: 5}
	unlinked := was
	unlinked.ctime = 6
	written := unlinked
	written.mtime = 7
	for _, c := range []struct {
		now   identity
		nlink uint64
		want  bool
	}{
		{was, 1, true},
		{was, 0, true},
		{unlinked, 0, true},  // deleted while read: same bytes
		{unlinked, 1, false}, // chmod, link: ctime only, but not an unlink
		{written, 0, false},
	} {
		if got := unchangedWhileRead(c.now, c.nlink, was); got != c.want {
			t.Errorf("unchangedWhileRead(%+v, nlink %d) = %v, want %v", c.now, c.nlink, got, c.want)
		}
	}
}
