package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pofr/pofr/internal/event"
)

// TestRoundTrip writes every table with hostile values through the Writer
// and reads them back through Verify: values, nulls and empty values must
// come back exactly, and the manifest must describe the rows.
func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	opts := testOptions(c)
	opts.Stats = func() Stats {
		return Stats{Modes: map[string]string{"proc": "netlink", "file": "fanotify"},
			Counters: map[string]Counter{"proc": {Seen: 10, Lost: 2}}}
	}
	w := openWriter(t, dir, opts)
	procs, files, socks, gaps, accts := hostileRows()
	event.AppendAll(w, procs, files, socks, gaps, accts)
	exes := hostileExes()
	for i := range exes {
		w.AppendExecutable(&exes[i])
	}
	dns := []event.DNS{{TS: 5, Event: event.DNSResponse, Proto: "tcp", ClientAddr: []byte{127, 0, 0, 1}, ClientPort: 5353,
		ServerAddr: []byte{127, 0, 0, 1}, ServerPort: 53, PID: event.Some[int32](7), ProcStart: event.Some[int64](70), ID: 1,
		QName: []byte("\\xff\t.evil."), QType: event.Some[uint16](28), RCode: event.Some[uint8](3),
		Answers: []byte("a\x00b"), AnswerAddrs: []byte(",7F000001,"), Flags: event.DNSFlagMalformed}}
	w.AppendDNS(&dns[0])
	logins := []event.Login{
		{TS: 6, Kind: event.LoginFailed, File: "btmp", UTType: 6, PID: -1, TTY: []byte("ssh:notty"), UTID: []byte{},
			User: []byte("r\x00ot\t\n\xff"), RemoteHost: []byte("'; DROP TABLE logins; --"), RemoteAddr: []byte{192, 0, 2, 1}, Session: -7},
		{TS: 7, Kind: event.LoginLogin, File: "wtmp", UTType: 7, PID: 1 << 30},
	}
	for i := range logins {
		w.AppendLogin(&logins[i])
	}
	ctrs := []event.Container{
		{TS: 8, ID: []byte("0123"), PID: 9, Runtime: event.RuntimeDocker, Name: []byte("n\x00\t'\xff"), Image: []byte{},
			Pod: []byte("p"), Namespace: []byte("ns"), Source: []byte("/var/lib/docker/containers/0123/config.v2.json")},
		{TS: 9, ID: []byte("4567"), PID: 1, Error: event.CtrNotFound},
	}
	for i := range ctrs {
		w.AppendContainer(&ctrs[i])
	}
	if err := w.Seal(); err != nil {
		t.Fatal(err)
	}
	segs := verifyDir(t, dir)
	if len(segs) != 1 {
		t.Fatalf("got %d segments, want 1", len(segs))
	}
	s := segs[0]
	roundTrip(t, "dns", s.DNS, dns)
	roundTrip(t, "proc", s.Procs, procs)
	roundTrip(t, "file", s.Files, files)
	roundTrip(t, "sock", s.Socks, socks)
	roundTrip(t, "gap", s.Gaps, gaps)
	roundTrip(t, "acct", s.Accounts, accts)
	roundTrip(t, "exe", s.Executables, exes)
	roundTrip(t, "login", s.Logins, logins)
	roundTrip(t, "ctr", s.Containers, ctrs)

	m := s.Manifest
	if got, want := m.Seq, uint64(1); got != want {
		t.Errorf("seq = %d, want %d", got, want)
	}
	if m.PrevDigest != "" {
		t.Errorf("prev_digest = %q, want empty for the first segment", m.PrevDigest)
	}
	if got, want := m.MinTS, int64(1); got != want {
		t.Errorf("min_ts = %d, want %d", got, want)
	}
	if got, want := m.MaxTS, procs[3].TS; got != want {
		t.Errorf("max_ts = %d, want %d", got, want)
	}
	if got, want := m.Created, c.Now(); !got.Equal(want) {
		t.Errorf("created = %v, want %v", got, want)
	}
	wantCounters := map[string]Counter{"proc": {Seen: 10, Lost: 2}, "spool": {Seen: 20, Lost: 0}}
	if diff := cmp.Diff(wantCounters, m.Counters); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
	if got, want := m.Modes["proc"], "netlink"; got != want {
		t.Errorf("modes[proc] = %q, want %q", got, want)
	}
	var tables []string
	for _, mb := range m.Members {
		tables = append(tables, mb.Table)
	}
	if diff := cmp.Diff(event.Tables, tables); diff != "" {
		t.Errorf("member tables (-want +got):\n%s", diff)
	}
	if got, want := m.Rows(), int64(20); got != want {
		t.Errorf("rows = %d, want %d", got, want)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// roundTrip checks that read returns the rows of the table name as written.
func roundTrip[R any](t *testing.T, name string, read func() ([]R, error), want []R) {
	t.Helper()
	got, err := read()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s round trip (-want +got):\n%s", name, diff)
	}
}

// TestRecordAccess checks column-wise access: a present table's batch has its
// rows; an absent table gives an empty batch with the table's schema.
func TestRecordAccess(t *testing.T) {
	dir := t.TempDir()
	w := openWriter(t, dir, testOptions(newClock()))
	w.AppendFile(&event.File{TS: 1, LastTS: 1, Op: event.FileOpen, Path: []byte("/etc/passwd")})
	w.AppendFile(&event.File{TS: 2, LastTS: 2, Op: event.FileOpen, Path: []byte("/etc/passwd")})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	s := verifyDir(t, dir)[0]
	rec, err := s.Record(event.TableFile)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rec.NumRows(), int64(2); got != want {
		t.Errorf("file rows = %d, want %d", got, want)
	}
	rec, err = s.Record(event.TableProc)
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.NumRows(); got != 0 {
		t.Errorf("proc rows = %d, want 0", got)
	}
	if err := event.ProcTable.Check(rec.Schema()); err != nil {
		t.Errorf("empty proc batch: %v", err)
	}
	if _, err := s.Record("nope"); err == nil {
		t.Error("Record(nope) succeeded, want an error")
	}
}

// TestChain seals segments across a Close/Open restart: seq goes up by one,
// every prev_digest is the digest of the one before, and the restart is
// recorded as a clean-stop gap in the first segment after it.
func TestChain(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	w := openWriter(t, dir, testOptions(c))
	for i := range 3 {
		w.AppendProc(&event.Proc{TS: int64(100 + i), Event: event.ProcFork, PID: int32(i)})
		if err := w.Seal(); err != nil {
			t.Fatal(err)
		}
		c.Add(time.Second)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	stopped := c.Now()
	c.Add(time.Minute)
	w = openWriter(t, dir, testOptions(c))
	for i := range 2 {
		w.AppendProc(&event.Proc{TS: int64(200 + i), Event: event.ProcFork, PID: int32(i)})
		if err := w.Seal(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	segs := verifyDir(t, dir) // checks every prev_digest
	if got, want := len(segs), 5; got != want {
		t.Fatalf("got %d segments, want %d", got, want)
	}
	for i, s := range segs {
		if got, want := s.Manifest.Seq, uint64(i+1); got != want {
			t.Errorf("segment %d: seq %d, want %d", i, got, want)
		}
	}
	gaps, err := segs[3].Gaps()
	if err != nil {
		t.Fatal(err)
	}
	want := []event.Gap{{FromTS: stopped.UnixNano(), ToTS: stopped.Add(time.Minute).UnixNano(), Source: event.SourceCollector,
		Reason: "clean stop at " + fmtTime(stopped) + ": not recording until restart"}}
	if diff := cmp.Diff(want, gaps); diff != "" {
		t.Errorf("gap after restart (-want +got):\n%s", diff)
	}
	for _, i := range []int{0, 1, 2, 4} {
		if n := segs[i].Manifest.TableRows(event.TableGap); n != 0 {
			t.Errorf("segment %d has %d gap rows, want 0", i, n)
		}
	}
}

// TestSealEmpty: Seal without rows writes nothing; a gap row alone is sealed.
func TestSealEmpty(t *testing.T) {
	dir := t.TempDir()
	w := openWriter(t, dir, testOptions(newClock()))
	if err := w.Seal(); err != nil {
		t.Fatal(err)
	}
	if infos, _ := List(dir); len(infos) != 0 {
		t.Fatalf("Seal without rows wrote %d segments, want 0", len(infos))
	}
	w.AppendGap(&event.Gap{FromTS: 1, ToTS: 2, Source: event.SourceSock, Reason: "dump failed"})
	if err := w.Seal(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	segs := verifyDir(t, dir)
	if len(segs) != 1 {
		t.Fatalf("got %d segments, want 1", len(segs))
	}
	if got, want := segs[0].Manifest.Members[0].Table, event.TableGap; got != want {
		t.Errorf("only member holds %s, want %s", got, want)
	}
}

// TestSizeSeal: appends beyond MaxSegmentBytes are sealed without Seal.
func TestSizeSeal(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(newClock())
	opts.MaxSegmentBytes = 64 << 10
	opts.MaxPendingBytes = 64 << 20 // the burst outruns the sealer; drop nothing
	w := openWriter(t, dir, opts)
	const n = 5000
	var est int64
	wantSegs := 1
	for i := range n {
		path := fmt.Appendf(nil, "/var/lib/x/%d", i%50)
		w.AppendFile(&event.File{TS: int64(i), LastTS: int64(i), Op: event.FileOpen, Path: path})
		// The documented estimate: a fixed size per row plus its bytes.
		if est += fileRowBytes + int64(len(path)); est >= opts.MaxSegmentBytes && i < n-1 {
			est = 0
			wantSegs++
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	segs := verifyDir(t, dir)
	var rows int64
	for _, s := range segs {
		rows += s.Manifest.Rows()
	}
	if rows != n {
		t.Errorf("rows in segments = %d, want %d", rows, n)
	}
	if got := len(segs); got != wantSegs {
		t.Errorf("got %d segments, want %d", got, wantSegs)
	}
}

// bubbleDecoders gives a synctest bubble zstd decoders of its own for the
// seals' read-back verify: a decoder's channels belong to the bubble that
// made it, and using one across bubbles is a fatal error.
func bubbleDecoders(t *testing.T) {
	saved := decoders
	decoders = newDecoderPool()
	t.Cleanup(func() { decoders = saved })
}

// TestAgeSeal: the background sealer seals a segment once its oldest row is
// MaxSegmentAge old, and not before (fake time, testing/synctest).
func TestAgeSeal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bubbleDecoders(t)
		dir := t.TempDir()
		opts := testOptions(nil)
		opts.Now = nil // time.Now, faked by synctest
		opts.MaxSegmentAge = 15 * time.Second
		w := openWriter(t, dir, opts)
		defer w.Close()
		w.AppendProc(&event.Proc{TS: 1, Event: event.ProcFork})
		time.Sleep(14 * time.Second)
		synctest.Wait()
		if infos, _ := List(dir); len(infos) != 0 {
			t.Fatalf("after 14 s: %d segments, want 0", len(infos))
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if infos, _ := List(dir); len(infos) != 1 {
			t.Fatalf("after 16 s: %d segments, want 1", len(infos))
		}
	})
}

// TestAgeSealAfterIdle: with nothing to seal the sealer waits without a
// timer; the first row wakes it, and its batch is sealed at its age.
func TestAgeSealAfterIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bubbleDecoders(t)
		dir := t.TempDir()
		opts := testOptions(nil)
		opts.Now = nil // time.Now, faked by synctest
		opts.MaxSegmentAge = 15 * time.Second
		w := openWriter(t, dir, opts)
		defer w.Close()
		waking := func() bool {
			w.mu.Lock()
			defer w.mu.Unlock()
			return w.waking
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if !waking() {
			t.Fatal("idle writer: the sealer still runs a timer")
		}
		w.AppendProc(&event.Proc{TS: 1, Event: event.ProcFork})
		synctest.Wait()
		if waking() {
			t.Fatal("a row did not wake the sealer")
		}
		time.Sleep(14 * time.Second)
		synctest.Wait()
		if infos, _ := List(dir); len(infos) != 0 {
			t.Fatalf("14 s after the row: %d segments, want 0", len(infos))
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if infos, _ := List(dir); len(infos) != 1 {
			t.Fatalf("16 s after the row: %d segments, want 1", len(infos))
		}
		if !waking() {
			t.Error("after the seal: the sealer still runs a timer")
		}
	})
}

// TestConcurrentAppend: rows appended from many goroutines all arrive.
func TestConcurrentAppend(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(newClock())
	opts.MaxSegmentBytes = 32 << 10
	opts.MaxPendingBytes = 64 << 20
	w := openWriter(t, dir, opts)
	const goroutines, each = 8, 500
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				switch i % 3 {
				case 0:
					w.AppendProc(&event.Proc{TS: int64(i), Event: event.ProcExec, PID: int32(g), Argv: []byte("ls\x00-l\x00")})
				case 1:
					w.AppendFile(&event.File{TS: int64(i), LastTS: int64(i), PID: int32(g), Op: event.FileOpen, Path: []byte("/etc/hosts")})
				default:
					w.AppendSock(&event.Sock{TS: int64(i), Event: event.SockOpen, Proto: "tcp", Family: 4, PID: event.Some(int32(g))})
				}
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var rows int64
	for _, s := range verifyDir(t, dir) {
		rows += s.Manifest.Rows()
	}
	if got, want := rows, int64(goroutines*each); got != want {
		t.Errorf("rows = %d, want %d", got, want)
	}
}

// TestEviction: beyond the quota the oldest segments are deleted, the next
// segment carries a gap row naming them with their row count, and the chain
// of what remains still links.
func TestEviction(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	opts := testOptions(c)
	w := openWriter(t, dir, opts)
	seal := func(rows int) {
		t.Helper()
		sealFiles(t, w, c, rows, "/var/log/syslog")
	}
	seal(10)
	seal(20)
	infos, _ := List(dir)
	one := infos[0].Size
	// Room for about two segments: the third seal evicts the first.
	w.sealMu.Lock() // the sealer reads the quota
	w.opts.Quota = infos[0].Size + infos[1].Size + one/2
	w.sealMu.Unlock()
	first := infos[0]
	m1, _, err := ReadManifestFile(first.Path)
	if err != nil {
		t.Fatal(err)
	}
	seal(30)
	if _, err := os.Stat(first.Path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("segment 1 still present after exceeding the quota (stat: %v)", err)
	}
	seal(5) // carries the eviction gap of segment 1 and evicts segment 2
	// Close seals the eviction gap of segment 2 on its own, which evicts
	// segment 3; that last eviction waits in the state for the next run.
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	infos, _ = List(dir)
	var seqs []uint64
	for _, in := range infos {
		seqs = append(seqs, in.Seq)
	}
	if diff := cmp.Diff([]uint64{4, 5}, seqs); diff != "" {
		t.Fatalf("segments left (-want +got):\n%s", diff)
	}
	segs := verifyDir(t, dir)
	gaps, err := segs[0].Gaps()
	if err != nil {
		t.Fatal(err)
	}
	want := []event.Gap{{FromTS: m1.MinTS, ToTS: m1.MaxTS, Source: event.SourceSpool, Lost: event.Some[int64](10),
		Reason: fmt.Sprintf("quota eviction of segment 1 (%d bytes)", first.Size)}}
	if diff := cmp.Diff(want, gaps); diff != "" {
		t.Errorf("eviction gap in segment 4 (-want +got):\n%s", diff)
	}
	gaps, err = segs[1].Gaps()
	if err != nil {
		t.Fatal(err)
	}
	if len(gaps) != 1 || !strings.HasPrefix(gaps[0].Reason, "quota eviction of segment 2 ") || gaps[0].Lost != event.Some[int64](20) {
		t.Errorf("gaps in segment 5 = %+v, want the eviction of segment 2 with 20 rows", gaps)
	}
	st, err := readState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Pending) != 1 || !strings.HasPrefix(st.Pending[0].Reason, "quota eviction of segment 3 ") || st.Pending[0].Lost == nil || *st.Pending[0].Lost != 30 {
		t.Errorf("pending gaps = %+v, want the eviction of segment 3 with 30 rows", st.Pending)
	}
	if got, want := st.EvictedThrough, uint64(3); got != want {
		t.Errorf("evicted_through = %d, want %d", got, want)
	}
}

// TestUncleanStop simulates kill -9 after a seal, with rows appended but not
// sealed and a temporary file half written: the next Open removes the
// temporary file, and its first segment records the unclean stop from the
// last seal on.
func TestUncleanStop(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	w := openWriter(t, dir, testOptions(c))
	w.AppendProc(&event.Proc{TS: 1, Event: event.ProcFork})
	if err := w.Seal(); err != nil {
		t.Fatal(err)
	}
	lastSeal := c.Now()
	c.Add(time.Second)
	w.AppendProc(&event.Proc{TS: 2, Event: event.ProcFork}) // lost in the crash
	w.abandon()
	tmp := filepath.Join(dir, tmpPrefix+"123456")
	if err := os.WriteFile(tmp, []byte("half a segment"), 0o600); err != nil {
		t.Fatal(err)
	}

	c.Add(time.Minute)
	restart := c.Now()
	w = openWriter(t, dir, testOptions(c))
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left after Open (stat: %v)", err)
	}
	w.AppendProc(&event.Proc{TS: 3, Event: event.ProcFork})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	segs := verifyDir(t, dir)
	if len(segs) != 2 {
		t.Fatalf("got %d segments, want 2", len(segs))
	}
	gaps, err := segs[1].Gaps()
	if err != nil {
		t.Fatal(err)
	}
	want := []event.Gap{{FromTS: lastSeal.UnixNano(), ToTS: restart.UnixNano(), Source: event.SourceCollector,
		Reason: "unclean stop: rows after " + fmtTime(lastSeal) + " were not sealed"}}
	if diff := cmp.Diff(want, gaps); diff != "" {
		t.Errorf("unclean-stop gap (-want +got):\n%s", diff)
	}
	procs, _ := segs[1].Procs()
	if len(procs) != 1 || procs[0].TS != 3 {
		t.Errorf("procs after restart = %+v, want only TS 3", procs)
	}
}

// crashBeforeState seals two segments of one row each (TS 1 and 2) in dir
// and stops the writer as a crash would after renaming the second into
// place but before saving its state.
func crashBeforeState(t *testing.T, dir string, c *clock) {
	t.Helper()
	w := openWriter(t, dir, testOptions(c))
	w.AppendProc(&event.Proc{TS: 1, Event: event.ProcFork})
	if err := w.Seal(); err != nil {
		t.Fatal(err)
	}
	before := readAll(t, filepath.Join(dir, StateName))
	w.AppendProc(&event.Proc{TS: 2, Event: event.ProcFork})
	if err := w.Seal(); err != nil {
		t.Fatal(err)
	}
	w.abandon()
	if err := os.WriteFile(filepath.Join(dir, StateName), before, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestCrashAfterRename: the writer stopped after renaming a segment into
// place but before saving its state. The next Open adopts the segment, so
// the chain continues from it.
func TestCrashAfterRename(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	crashBeforeState(t, dir, c)
	w := openWriter(t, dir, testOptions(c))
	w.AppendProc(&event.Proc{TS: 3, Event: event.ProcFork})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	segs := verifyDir(t, dir) // chain 1 → 2 → 3
	if got, want := len(segs), 3; got != want {
		t.Fatalf("got %d segments, want %d", got, want)
	}
	gaps, _ := segs[2].Gaps()
	if len(gaps) != 1 || !strings.HasPrefix(gaps[0].Reason, "unclean stop: rows after "+fmtTime(c.Now())) {
		t.Errorf("gaps = %+v, want an unclean stop after the adopted segment's seal", gaps)
	}
}

// TestCrashDuringEviction: an eviction recorded in the state whose deletion
// did not happen is completed at Open, without a second gap row.
func TestCrashDuringEviction(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	w := openWriter(t, dir, testOptions(c))
	for i := range 3 {
		w.AppendProc(&event.Proc{TS: int64(i), Event: event.ProcFork})
		if err := w.Seal(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := readState(dir)
	if err != nil {
		t.Fatal(err)
	}
	st.EvictedThrough = 2
	if err := writeState(dir, st); err != nil {
		t.Fatal(err)
	}
	w = openWriter(t, dir, testOptions(c))
	defer w.Close()
	infos, _ := List(dir)
	if len(infos) != 1 || infos[0].Seq != 3 {
		t.Errorf("segments after Open = %+v, want only seq 3", infos)
	}
}

// failingSpool opens a writer with small batches and a small memory bound
// on a spool whose directory is then removed, so that every seal fails
// until restore puts the directory back with its state file. The writer's
// clock stands still, so the retry back-off holds.
func failingSpool(t *testing.T) (w *Writer, dir string, restore func()) {
	root := t.TempDir()
	dir = filepath.Join(root, "spool")
	opts := testOptions(newClock())
	opts.MaxSegmentBytes = 8 << 10
	opts.MaxPendingBytes = 32 << 10
	w = openWriter(t, dir, opts)
	state := readAll(t, filepath.Join(dir, StateName))
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	return w, dir, func() {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, StateName), state, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// appendLibc appends file row number i.
func appendLibc(w *Writer, i int) {
	w.AppendFile(&event.File{TS: int64(i), LastTS: int64(i), Op: event.FileOpen, Path: []byte("/usr/lib/x86_64-linux-gnu/libc.so.6")})
}

// sealedAndLost closes w and returns the file rows its segments in dir
// hold and the rows their spool gap rows say were lost.
func sealedAndLost(t *testing.T, w *Writer, dir string) (rows, lost int64) {
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for _, s := range verifyDir(t, dir) {
		rows += s.Manifest.TableRows(event.TableFile)
		gaps, err := s.Gaps()
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range gaps {
			if g.Source != event.SourceSpool || !g.Lost.Valid {
				t.Errorf("unexpected gap %+v", g)
			}
			lost += g.Lost.V
		}
	}
	return rows, lost
}

// TestSealFailure: while sealing fails (the spool directory is gone) rows
// stay in memory up to MaxPendingBytes; beyond it the oldest are dropped and
// a gap row says how many. Every appended row is either sealed or counted in
// a gap row.
func TestSealFailure(t *testing.T) {
	w, dir, restore := failingSpool(t)
	const n = 3000
	for i := range n {
		appendLibc(w, i)
	}
	if err := w.Seal(); err == nil {
		t.Fatal("Seal succeeded without a spool directory")
	}
	restore()
	rows, lost := sealedAndLost(t, w, dir)
	if lost == 0 {
		t.Error("no rows dropped although the memory bound was exceeded")
	}
	if rows+lost != n {
		t.Errorf("sealed %d + lost %d = %d rows, want %d", rows, lost, rows+lost, n)
	}
}

// TestCloseKeepsDropGaps: when Close's own rotation goes over
// MaxPendingBytes while sealing fails, the oldest batch is dropped and its
// gap row lands in a fresh batch; that batch is sealed too. (It was
// discarded, and the dropped rows went unrecorded.)
func TestCloseKeepsDropGaps(t *testing.T) {
	w, dir, restore := failingSpool(t)
	n := 0
	for ; n < 1000; n++ {
		appendLibc(w, n)
	}
	if err := w.Seal(); err == nil {
		t.Fatal("Seal succeeded without a spool directory")
	}
	// Fill the current batch to just below its size, so that only Close
	// rotates it, with the queue at the bound.
	const rowEst = fileRowBytes + 35
	for ; ; n++ {
		w.mu.Lock()
		room := w.cur.est+rowEst < w.maxBytes
		over := w.queued+w.cur.est > w.maxPending
		w.mu.Unlock()
		if !room {
			if !over {
				t.Fatal("the queue and the current batch are within the bound: the test does not reach the drop")
			}
			break
		}
		appendLibc(w, n)
	}
	restore()
	if rows, lost := sealedAndLost(t, w, dir); rows+lost != int64(n) {
		t.Errorf("sealed %d + lost %d = %d rows, want %d", rows, lost, rows+lost, n)
	}
}

// TestOpenRefusesOtherHost: a spool written for one host id cannot be
// reused under another.
func TestOpenRefusesOtherHost(t *testing.T) {
	dir := t.TempDir()
	w := openWriter(t, dir, testOptions(newClock()))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	opts := testOptions(newClock())
	opts.HostID = "h-0002"
	if w, err := Open(dir, opts); err == nil {
		w.Close()
		t.Fatal("Open with another host id succeeded")
	}
}

// TestOpenLocked: two writers cannot share a spool.
func TestOpenLocked(t *testing.T) {
	dir := t.TempDir()
	w := openWriter(t, dir, testOptions(newClock()))
	defer w.Close()
	if w2, err := Open(dir, testOptions(newClock())); err == nil {
		w2.Close()
		t.Fatal("second Open of the same spool succeeded")
	}
}

// TestAppendAfterClose counts rows appended after Close as lost.
func TestAppendAfterClose(t *testing.T) {
	w := openWriter(t, t.TempDir(), testOptions(newClock()))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w.AppendProc(&event.Proc{})
	w.AppendGap(&event.Gap{})
	if got, want := w.lost, uint64(2); got != want {
		t.Errorf("lost = %d, want %d", got, want)
	}
	if err := w.Seal(); err == nil {
		t.Error("Seal after Close succeeded")
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestListRemove(t *testing.T) {
	dir := t.TempDir()
	w := openWriter(t, dir, testOptions(newClock()))
	w.AppendProc(&event.Proc{TS: 1})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, tmpPrefix+"x"), nil, 0o600)
	os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o600)
	infos, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 {
		t.Fatalf("List = %+v, want one segment", infos)
	}
	for _, bad := range []string{StateName, "../" + infos[0].Name, "notes.txt", tmpPrefix + "x"} {
		if err := Remove(dir, bad); err == nil {
			t.Errorf("Remove(%q) succeeded", bad)
		}
	}
	if err := Remove(dir, infos[0].Name); err != nil {
		t.Fatal(err)
	}
	if infos, _ := List(dir); len(infos) != 0 {
		t.Errorf("after Remove: %+v", infos)
	}
}

// TestCrashCorruptUnadopted: a segment the state does not know that does not
// verify (the writer stopped between renaming it and finding it bad) is
// removed at Open, and its seq is sealed again.
func TestCrashCorruptUnadopted(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	crashBeforeState(t, dir, c)
	infos, _ := List(dir)
	bad := readAll(t, infos[1].Path)
	bad[len(bad)-3*blockSize] ^= 1
	if err := os.WriteFile(infos[1].Path, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	w := openWriter(t, dir, testOptions(c))
	if _, err := os.Stat(infos[1].Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("corrupt unadopted segment still present (stat: %v)", err)
	}
	w.AppendProc(&event.Proc{TS: 3, Event: event.ProcFork})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	segs := verifyDir(t, dir)
	if len(segs) != 2 || segs[1].Manifest.Seq != 2 {
		t.Fatalf("got %d segments (second seq %d), want seq 1 and a new seq 2", len(segs), segs[len(segs)-1].Manifest.Seq)
	}
}
