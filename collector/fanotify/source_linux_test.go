package fanotify

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pofr/pofr/collector"
	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/procfs"
	"github.com/pofr/pofr/internal/testutil"
	"github.com/pofr/pofr/profiles"
)

var captureFanotify = flag.Bool("capture-fanotify", false, "write the fanotify buffers read by TestPrivFileOps to testdata/")

// The helper process of TestPrivFileOps: the test binary re-executed with
// POFR_FILE_HELPER_DIR set does the file operations, prints what the test
// needs to know, and waits for its stdin to close.
func init() {
	dir := os.Getenv("POFR_FILE_HELPER_DIR")
	if dir == "" {
		return
	}
	if err := fileHelper(dir); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// Names with a space, a newline, a tab and bytes that are not UTF-8.
const (
	helperName    = "a b\nc\xff\xfe.txt"
	helperRenamed = "re named\t\x80\n"
	helperTrue    = "my true\x01"
)

type helperReport struct {
	Ino, Dev uint64
	Child    int
}

func fileHelper(dir string) error {
	a, b, tr := filepath.Join(dir, helperName), filepath.Join(dir, helperRenamed), filepath.Join(dir, helperTrue)
	if err := os.WriteFile(a, []byte("hello"), 0o644); err != nil {
		return err
	}
	var st syscall.Stat_t
	if err := syscall.Stat(a, &st); err != nil {
		return err
	}
	if err := os.Rename(a, b); err != nil {
		return err
	}
	if _, err := os.ReadFile(b); err != nil {
		return err
	}
	exe, err := os.ReadFile("/bin/true")
	if err != nil {
		return err
	}
	if err := os.WriteFile(tr, exe, 0o755); err != nil {
		return err
	}
	cmd := exec.Command(tr)
	if err := cmd.Run(); err != nil {
		return err
	}
	if err := os.Remove(b); err != nil {
		return err
	}
	if err := os.Remove(tr); err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(helperReport{Ino: st.Ino, Dev: st.Dev, Child: cmd.Process.Pid})
}

// statProcs is a tiny real collector.Processes: it reads /proc/PID/stat and status on
// every lookup.
type statProcs struct{}

func (statProcs) Lookup(pid int32) (collector.ProcInfo, bool) {
	fs := procfs.New("")
	start, err := fs.Start(pid)
	if err != nil {
		return collector.ProcInfo{}, false
	}
	info := collector.ProcInfo{Start: start, EUID: event.NoID}
	if st, err := os.ReadFile(fs.PIDPath(pid, "status")); err == nil {
		if _, euid, _, _, err := procfs.ParseStatusIDs(st); err == nil {
			info.EUID = euid
		}
	}
	return info, true
}

// execRecorder is a collector.ExecObserver that keeps every call.
type execRecorder struct {
	mu    sync.Mutex
	paths map[int32][]string
}

func (r *execRecorder) ObserveExecOpen(pid int32, ts int64, path []byte, _ uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.paths == nil {
		r.paths = make(map[int32][]string)
	}
	r.paths[pid] = append(r.paths[pid], string(path))
}

func (r *execRecorder) get(pid int32) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.paths[pid]...)
}

// runSource runs src until the returned stop is called; stop waits (with a
// deadline) for Run to return and fails the test on an error.
func runSource(t *testing.T, src *Source) (stop func()) {
	t.Helper()
	return testutil.Go(t, "Source.Run", src.Run)
}

// forensic is the forensic profile's file settings.
func forensic(t testing.TB) profiles.File {
	t.Helper()
	p, err := profiles.Get("forensic")
	if err != nil {
		t.Fatal(err)
	}
	return p.File
}

func newFanotifySource(t *testing.T, opts Options) *Source {
	t.Helper()
	src, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := src.Stats().Mode; got != ModeFanotify {
		t.Fatalf("mode %q, want %q (is fanotify available? the log says why not)", got, ModeFanotify)
	}
	return src
}

type opRow struct {
	PID     int32
	Op      string
	Path    string
	NewPath string
}

func TestPrivFileOps(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	sink := &event.MemSink{}
	execs := &execRecorder{}
	prof := forensic(t)
	prof.Window = profiles.Duration(200 * time.Millisecond)
	src := newFanotifySource(t, Options{Sink: sink, Procs: statProcs{}, Exec: execs, Profile: prof, SelfPID: int32(os.Getpid())})
	var captured [][]byte
	var capMu sync.Mutex
	src.tap = func(b []byte) {
		capMu.Lock()
		captured = append(captured, bytes.Clone(b))
		capMu.Unlock()
	}
	stop := runSource(t, src)

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "POFR_FILE_HELPER_DIR="+dir)
	stdin, out := testutil.Pipes(t, cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	pid := int32(cmd.Process.Pid)
	procInfo, ok := statProcs{}.Lookup(pid)
	if !ok {
		t.Fatalf("helper %d gone before its start time could be read", pid)
	}
	var rep helperReport
	repc := make(chan error, 1)
	go func() { repc <- json.NewDecoder(bufio.NewReader(out)).Decode(&rep) }()
	testutil.Await(t, repc, 20*time.Second, "helper report")
	child := int32(rep.Child)
	p := func(name string) string { return filepath.Join(dir, name) }
	rows := func() map[opRow]event.File {
		m := make(map[opRow]event.File)
		for _, r := range sink.Files() {
			if (r.PID != pid && r.PID != child) || !strings.HasPrefix(string(r.Path), dir+"/") {
				continue
			}
			k := opRow{r.PID, r.Op, string(r.Path), string(r.NewPath)}
			if old, ok := m[k]; ok {
				r.Count += old.Count
			}
			m[k] = r
		}
		return m
	}
	want := []opRow{
		{pid, "create", p(helperName), ""},
		{pid, "open", p(helperName), ""},
		{pid, "write", p(helperName), ""},
		{pid, "rename", p(helperName), p(helperRenamed)},
		{pid, "open", p(helperRenamed), ""},
		{pid, "delete", p(helperRenamed), ""},
		{pid, "create", p(helperTrue), ""},
		{pid, "open", p(helperTrue), ""},
		{pid, "write", p(helperTrue), ""},
		{child, "exec", p(helperTrue), ""},
		{pid, "delete", p(helperTrue), ""},
	}
	defer func() {
		if t.Failed() {
			for _, r := range sink.Files() {
				if r.PID == pid || r.PID == child {
					t.Logf("row pid %d op %s path %q new %q count %d flags %#x", r.PID, r.Op, r.Path, r.NewPath, r.Count, r.Flags)
				}
			}
			t.Logf("stats %+v", src.Stats())
		}
	}()
	testutil.WaitFor(t, 10*time.Second, "the helper's delete rows", func() bool {
		got := rows()
		_, ok1 := got[opRow{pid, "delete", p(helperTrue), ""}]
		_, ok2 := got[opRow{pid, "delete", p(helperRenamed), ""}]
		return ok1 && ok2
	})
	stdin.Close()
	stop()
	got := rows()
	var gotKeys []opRow
	for k := range got {
		gotKeys = append(gotKeys, k)
	}
	sortRows := cmp.Transformer("sort", func(in []opRow) map[opRow]bool {
		m := make(map[opRow]bool)
		for _, r := range in {
			m[r] = true
		}
		return m
	})
	if d := cmp.Diff(want, gotKeys, sortRows); d != "" {
		t.Errorf("rows of the helper in %s (-want +got):\n%s", dir, d)
	}
	for k, r := range got {
		if k.PID == pid {
			if !r.ProcStart.Valid || r.ProcStart.V != procInfo.Start {
				t.Errorf("%v: proc_start %v, want %d", k, r.ProcStart, procInfo.Start)
			}
			if r.UID != 0 {
				t.Errorf("%v: uid %d, want 0", k, r.UID)
			}
		}
		if !r.Dev.Valid || r.Dev.V != rep.Dev {
			t.Errorf("%v: dev %v, want %d", k, r.Dev, rep.Dev)
		}
		if r.Flags&event.FileFlagUnresolved != 0 {
			t.Errorf("%v: flagged unresolved", k)
		}
	}
	for _, k := range []opRow{want[0], want[2], want[3]} {
		if r := got[k]; !r.Inode.Valid || r.Inode.V != rep.Ino {
			t.Errorf("%v: inode %v, want %d", k, r.Inode, rep.Ino)
		}
	}
	if paths := execs.get(child); !contains(paths, p(helperTrue)) {
		t.Errorf("collector.ExecObserver for pid %d: %q, want %q among them", child, paths, p(helperTrue))
	}
	if *captureFanotify {
		capMu.Lock()
		defer capMu.Unlock()
		for i, b := range captured {
			if i >= 8 {
				break
			}
			name := filepath.Join("testdata", fmt.Sprintf("ops-%02d.bin", i))
			if err := os.WriteFile(name, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("stats: %+v", src.Stats())
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestPrivFileAggregation(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	f := filepath.Join(dir, "hot")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sink := &event.MemSink{}
	prof := forensic(t)
	prof.Window = profiles.Duration(time.Hour) // only the flush at the end of Run
	src := newFanotifySource(t, Options{Sink: sink, Profile: prof})
	stop := runSource(t, src)
	const opens = 10000
	for range opens {
		fd, err := syscall.Open(f, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		syscall.Close(fd)
	}
	time.Sleep(100 * time.Millisecond) // let the reader see the last events before the stop
	stop()
	var got []event.File
	for _, r := range sink.Files() {
		if r.PID == int32(os.Getpid()) && string(r.Path) == f {
			got = append(got, r)
		}
	}
	if len(got) != 1 {
		t.Fatalf("got %d rows for %s, want 1: %+v", len(got), f, got)
	}
	r := got[0]
	// The kernel merges an event with an identical one still queued, so the
	// count is a lower bound of the opens: how many survive depends on how
	// far behind the reader is. One is the floor; 1 % is what we see.
	if r.Op != "open" || r.Count < 1 || r.Count > opens || r.LastTS < r.TS {
		t.Errorf("row %+v: want op open, 1 ≤ count ≤ %d, last_ts ≥ ts", r, opens)
	}
	t.Logf("%d opens → 1 row, count %d; stats %+v", opens, r.Count, src.Stats())
}

func TestPrivFileOverflowGap(t *testing.T) {
	testutil.RequireRoot(t)
	const sysctl = "/proc/sys/fs/fanotify/max_queued_events"
	old, err := os.ReadFile(sysctl)
	if err != nil {
		t.Fatal(err)
	}
	restore := func() {
		if err := os.WriteFile(sysctl, old, 0); err != nil {
			t.Errorf("restore %s: %v", sysctl, err)
		}
	}
	t.Cleanup(restore)
	if err := os.WriteFile(sysctl, []byte("64"), 0); err != nil {
		t.Fatal(err)
	}
	sink := &event.MemSink{}
	prof := forensic(t)
	prof.QueueSize = 0
	src := newFanotifySource(t, Options{Sink: sink, Profile: prof})
	restore() // the group keeps its 64; other fanotify users get the old size back
	// The reader is paused (Run not called yet): a flood of distinct files
	// cannot be merged and must overflow 64 slots.
	dir := t.TempDir()
	before := time.Now().UnixNano()
	for i := range 500 {
		if err := os.WriteFile(filepath.Join(dir, strconv.Itoa(i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stop := runSource(t, src)
	testutil.WaitFor(t, 5*time.Second, "a gap row", func() bool { return len(sink.Gaps()) > 0 })
	stop()
	g := sink.Gaps()[0]
	if g.Source != event.SourceFile || g.Lost.Valid || g.ToTS < g.FromTS || g.ToTS < before || g.Reason == "" {
		t.Errorf("gap %+v: want source file, lost null, from ≤ to, to ≥ %d, a reason", g, before)
	}
	if st := src.Stats(); st.Overflows == 0 {
		t.Errorf("stats %+v: want Overflows > 0", st)
	}
}

func TestPrivExecStorm(t *testing.T) {
	testutil.RequireRoot(t)
	sink := &event.MemSink{}
	execs := &execRecorder{}
	prof := forensic(t)
	prof.Ops = []string{"write"} // the observer must be called even without the exec op
	src := newFanotifySource(t, Options{Sink: sink, Exec: execs, Profile: prof, SelfPID: int32(os.Getpid())})
	stop := runSource(t, src)
	const n, workers = 2000, 2
	var mu sync.Mutex
	var pids []int32
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range n / workers {
				cmd := exec.Command("/bin/true", strconv.Itoa(w*n+i))
				if err := cmd.Run(); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				pids = append(pids, int32(cmd.Process.Pid))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	count := func() int {
		c := 0
		for _, pid := range pids {
			if contains(execs.get(pid), "/usr/bin/true") {
				c++
			}
		}
		return c
	}
	deadline := time.Now().Add(5 * time.Second)
	for count() < len(pids) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	got := count()
	t.Logf("exec storm: %d of %d pids had FAN_OPEN_EXEC /usr/bin/true (%.2f %%); stats %+v",
		got, len(pids), 100*float64(got)/float64(len(pids)), src.Stats())
	if len(pids) != n || got*100 < 99*len(pids) {
		t.Errorf("%d of %d spawned pids observed with /usr/bin/true, want ≥ 99 %% of %d", got, len(pids), n)
	}
	for _, r := range sink.Files() {
		if r.Op == event.FileExec {
			t.Errorf("exec row %+v recorded although the profile has no exec op", r)
			break
		}
	}
}

func TestPrivFileFallback(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	name := filepath.Join(dir, "held open \xff")
	fh, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var st syscall.Stat_t
	if err := syscall.Stat(name, &st); err != nil {
		t.Fatal(err)
	}
	sink := &event.MemSink{}
	prof := forensic(t)
	prof.Window = profiles.Duration(100 * time.Millisecond)
	src, err := New(Options{Sink: sink, Procs: statProcs{}, Profile: prof, ForceFallback: true,
		ScanInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if got := src.Stats().Mode; got != ModeFDScan {
		t.Fatalf("mode %q, want %q", got, ModeFDScan)
	}
	stop := runSource(t, src)
	find := func() (event.File, bool) {
		for _, r := range sink.Files() {
			if r.PID == int32(os.Getpid()) && string(r.Path) == name {
				return r, true
			}
		}
		return event.File{}, false
	}
	testutil.WaitFor(t, 5*time.Second, "a fallback row", func() bool { _, ok := find(); return ok })
	stop()
	r, _ := find()
	self, _ := statProcs{}.Lookup(int32(os.Getpid()))
	want := event.File{TS: r.TS, LastTS: r.LastTS, Count: r.Count, PID: int32(os.Getpid()), ProcStart: event.Some(self.Start),
		UID: 0, Op: event.FileFDOpen, Path: []byte(name), Inode: event.Some(st.Ino), Dev: event.Some(st.Dev),
		Flags: event.FileFlagFallback}
	if d := cmp.Diff(want, r); d != "" {
		t.Errorf("fallback row (-want +got):\n%s", d)
	}
}

func TestPrivFileExcludeAndTmpfs(t *testing.T) {
	testutil.RequireRoot(t)
	base, err := os.MkdirTemp("/dev/shm", "pofr-file-test-")
	if err != nil {
		testutil.Skip(t, testutil.TierPriv, fmt.Sprintf("needs a writable tmpfs at /dev/shm: %v", err))
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	spool, kept := filepath.Join(base, "spool"), filepath.Join(base, "kept")
	for _, d := range []string{spool, kept} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sink := &event.MemSink{}
	prof := forensic(t)
	prof.Window = profiles.Duration(time.Hour)
	prof.Exclude = []string{kept + "/skip"}
	src := newFanotifySource(t, Options{Sink: sink, Profile: prof, ExcludeDirs: []string{spool + "/"}})
	stop := runSource(t, src)
	for _, p := range []string{spool + "/seg", kept + "/skipped", kept + "/file"} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(spool+"/deeper/dir", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spool+"/deeper/dir/x", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(kept+"/file", &st); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	stop()
	var got []string
	for _, r := range sink.Files() {
		if r.PID != int32(os.Getpid()) || !strings.HasPrefix(string(r.Path), base) {
			continue
		}
		got = append(got, r.Op+" "+string(r.Path))
		if string(r.Path) == kept+"/file" && (!r.Inode.Valid || r.Inode.V != st.Ino || !r.Dev.Valid || r.Dev.V != st.Dev) {
			t.Errorf("%s %s: inode %v dev %v, want %d %d (tmpfs handle)", r.Op, r.Path, r.Inode, r.Dev, st.Ino, st.Dev)
		}
	}
	want := []string{"create " + kept + "/file", "open " + kept + "/file", "write " + kept + "/file"}
	if d := cmp.Diff(want, got, cmp.Transformer("set", func(in []string) map[string]bool {
		m := map[string]bool{}
		for _, s := range in {
			m[s] = true
		}
		return m
	})); d != "" {
		t.Errorf("rows under %s (-want +got):\n%s", base, d)
	}
	if st := src.Stats(); st.Excluded == 0 {
		t.Errorf("stats %+v: want Excluded > 0 (the profile prefix and the deeper spool levels)", st)
	}
}

// TestPrivNewMountMarked: a file system mounted while the source runs is
// marked (the mount table's change wakes the watcher), and a write there is
// recorded.
func TestPrivNewMountMarked(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	sink := &event.MemSink{}
	prof := forensic(t)
	prof.Window = profiles.Duration(time.Hour)
	src := newFanotifySource(t, Options{Sink: sink, Profile: prof})
	stop := runSource(t, src)
	before := src.Stats().Filesystems
	if err := syscall.Mount("pofr-test", dir, "tmpfs", 0, "size=1m"); err != nil {
		stop()
		testutil.Skip(t, testutil.TierPriv, fmt.Sprintf("mount tmpfs: %v", err))
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	deadline := time.Now().Add(5 * time.Second)
	for src.Stats().Filesystems <= before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := src.Stats().Filesystems; got <= before {
		stop()
		t.Fatalf("file systems marked: %d before the mount, %d 5 s after it", before, got)
	}
	path := filepath.Join(dir, "new-mount-file")
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	stop()
	for _, r := range sink.Files() {
		if r.PID == int32(os.Getpid()) && string(r.Path) == path && r.Op == "create" {
			return
		}
	}
	t.Errorf("no create row for %s on the new mount", path)
}
