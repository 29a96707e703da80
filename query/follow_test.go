package query

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/servertest"
	"github.com/pofr/pofr/internal/testutil"
	"github.com/pofr/pofr/loader"
)

// followEnv is a database that a real loader fills from sealed segments
// while Follow exports its proc rows.
type followEnv struct {
	t    *testing.T
	q    *Querier
	fx   *servertest.Fixture
	base int64
	next int
	rows int // rows per segment; 0 is 30
	dsn  string
	// loaderPool makes load use a connection pool of its own, closed
	// after each load, so that nothing the loader allocated stays live.
	loaderPool bool
}

func newFollowEnv(t *testing.T) *followEnv {
	db, dsn := servertest.NewDB(t, OpenDB)
	return &followEnv{t: t, q: &Querier{DB: db}, dsn: dsn, fx: servertest.NewFixture(t, "h1", "h2"), base: servertest.HostileBase()}
}

// load seals n segments per host of e.rows rows (30: 9 proc rows) each and
// loads them with two workers.
func (e *followEnv) load(n int) {
	e.t.Helper()
	for range n {
		for _, h := range []string{"h1", "h2"} {
			rows := cmp.Or(e.rows, 30)
			procs, _, _ := servertest.BusyRows(e.base+int64(e.next)*int64(max(1_000_000, 2000*rows)), rows)
			e.next++
			e.fx.Seal(h, func(s event.Sink) {
				for i := range procs {
					s.AppendProc(&procs[i])
				}
			})
		}
	}
	db := e.q.DB
	if e.loaderPool {
		var err error
		if db, err = OpenDB(e.dsn); err != nil {
			e.t.Fatal(err)
		}
		defer db.Close()
	}
	ctx, cancel := context.WithTimeout(e.t.Context(), 2*time.Minute)
	defer cancel()
	if sum, err := loader.Once(ctx, loader.Options{DB: db, StateDir: e.fx.State, Workers: 2}); err != nil || sum.Loaded != sum.Segments {
		e.t.Fatalf("load: %v %v", sum, err)
	}
}

// want is every proc row's key host:seq:row.
func (e *followEnv) want() map[string]bool {
	e.t.Helper()
	out := map[string]bool{}
	testutil.EachRow(e.t, e.q.DB, func(r testutil.Row) {
		var h string
		var seq, row int64
		r.Scan(&h, &seq, &row)
		out[fmt.Sprintf("%s:%d:%d", h, seq, row)] = true
	}, "SELECT e.host_id, sg.seq, e.row_no FROM proc_events e JOIN segments sg USING (segment_id)")
	return out
}

// exported counts each document key in the sink's files (path.N in order,
// then path).
func exported(path string) (map[string]int, int, error) {
	files, _ := filepath.Glob(path + ".*")
	files = append(files, path)
	got := map[string]int{}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, 0, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var d struct {
				Host string `json:"host_id"`
				Seq  int64  `json:"segment_seq"`
				Row  int64  `json:"row_no"`
			}
			if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
				f.Close()
				return nil, 0, fmt.Errorf("%s: %q: %v", name, sc.Text(), err)
			}
			got[fmt.Sprintf("%s:%d:%d", d.Host, d.Seq, d.Row)]++
		}
		f.Close()
	}
	return got, len(files), nil
}

// waitExported waits until every wanted row is in the sink exactly once
// (the follower may be between a write and its rewind meanwhile); it
// returns the number of files.
func waitExported(t *testing.T, path string, want map[string]bool) int {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		got, files, err := exported(path)
		if err == nil {
			err = sameRows(got, want)
		}
		if err == nil {
			return files
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkExported fails unless every wanted row is in the sink exactly once.
func checkExported(t *testing.T, path string, want map[string]bool) {
	t.Helper()
	got, _, err := exported(path)
	if err == nil {
		err = sameRows(got, want)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func sameRows(got map[string]int, want map[string]bool) error {
	for k, n := range got {
		if n != 1 {
			return fmt.Errorf("row %s exported %d times", k, n)
		}
		if !want[k] {
			return fmt.Errorf("row %s exported but not in the database", k)
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("exported %d of %d rows", len(got), len(want))
	}
	return nil
}

// follow runs Follow on sink in the background; stop cancels it and
// returns its error.
func (e *followEnv) follow(sink FollowSink, cursor string) (stop func() error) {
	ctx, cancel := context.WithCancel(e.t.Context())
	var wg sync.WaitGroup
	var err error
	wg.Add(1)
	go func() {
		defer wg.Done()
		err = e.q.Follow(ctx, sink, FollowArgs{Export: ExportArgs{Table: "proc"}, CursorFile: cursor,
			Interval: 20 * time.Millisecond, Retry: 10 * time.Millisecond, HoleWait: time.Minute})
	}()
	return func() error {
		cancel()
		wg.Wait()
		return err
	}
}

// TestFollowService: rows of segments loaded before and while following
// appear exactly once, across file rotations and a restart of the
// follower, also one that stopped in the middle of a segment.
func TestFollowService(t *testing.T) {
	e := newFollowEnv(t)
	dir := t.TempDir()
	path, cursor := filepath.Join(dir, "proc.jsonl"), filepath.Join(dir, "cursor")
	e.load(2)
	sink, err := OpenFileSink(path, 4<<10)
	if err != nil {
		t.Fatal(err)
	}
	stop := e.follow(sink, cursor)
	e.load(3)
	waitExported(t, path, e.want())
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("follow ended with %v", err)
	}
	sink.Close()
	checkExported(t, path, e.want())

	// Stopped in the middle of a segment: a sink that blocks after part
	// of one, until the follower is stopped.
	e.load(2)
	sink, err = OpenFileSink(path, 4<<10)
	if err != nil {
		t.Fatal(err)
	}
	blocked := make(chan struct{})
	stuck := &stuckSink{FileSink: sink, after: 1000, blocked: blocked, release: make(chan struct{})}
	stop = e.follow(stuck, cursor)
	select {
	case <-blocked:
	case <-time.After(time.Minute):
		t.Fatal("sink never written")
	}
	close(stuck.release)
	if err := stop(); err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("follow ended with %v, want the killed sink's error", err)
	}
	sink.Close()
	if _, _, err := exported(path); err == nil {
		t.Fatal("no partial segment in the file")
	}

	// A crash after the sink wrote but before the cursor: the cursor is
	// older than the file.
	sink, err = OpenFileSink(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(sink, `{"host_id":"h9","segment_seq":1,"row_no":1}`+"\n")
	if err := sink.Commit(); err != nil {
		t.Fatal(err)
	}
	sink.Close()

	e.load(1)
	sink, err = OpenFileSink(path, 4<<10)
	if err != nil {
		t.Fatal(err)
	}
	stop = e.follow(sink, cursor)
	e.load(1)
	files := waitExported(t, path, e.want())
	stop()
	sink.Close()
	checkExported(t, path, e.want())
	if files < 3 {
		t.Errorf("%d files: no rotation", files)
	}
}

// newFollowFile is a follow environment with 2 segments per host loaded,
// and the paths of a file sink (opened, never rotating) and its cursor.
func newFollowFile(t *testing.T) (e *followEnv, path, cursor string, sink *FileSink) {
	e = newFollowEnv(t)
	dir := t.TempDir()
	path, cursor = filepath.Join(dir, "proc.jsonl"), filepath.Join(dir, "cursor")
	e.load(2)
	sink, err := OpenFileSink(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	return e, path, cursor, sink
}

// TestFollowFirstStartKilled: a follower killed in its first segment, before
// it ever wrote a cursor, leaves part of a segment in the file; the restart
// rewinds to where the first start found the file, so every row is there
// exactly once (CI caught the repeat in TestFollowKillService).
func TestFollowFirstStartKilled(t *testing.T) {
	e, path, cursor, sink := newFollowFile(t)
	blocked := make(chan struct{})
	stuck := &stuckSink{FileSink: sink, after: 1000, blocked: blocked, release: make(chan struct{})}
	stop := e.follow(stuck, cursor)
	select {
	case <-blocked:
	case <-time.After(time.Minute):
		t.Fatal("sink never written")
	}
	close(stuck.release)
	stop()
	sink.Close()
	if _, _, err := exported(path); err == nil {
		t.Fatal("no partial segment in the file")
	}

	sink, err := OpenFileSink(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	stop = e.follow(sink, cursor)
	waitExported(t, path, e.want())
	stop()
	sink.Close()
	checkExported(t, path, e.want())
}

// stuckSink is a follower killed in the middle of a segment: the write
// that crosses after bytes writes half of itself to the file and blocks
// until release, and the sink cannot rewind (a killed process does not).
type stuckSink struct {
	*FileSink
	after   int
	n       int
	blocked chan struct{}
	release chan struct{}
	once    sync.Once
}

func (s *stuckSink) Write(p []byte) (int, error) {
	s.n += len(p)
	if s.n > s.after {
		s.FileSink.Write(p[:len(p)/2])
		s.FileSink.bw.Flush()
		s.once.Do(func() { close(s.blocked) })
		<-s.release
		return 0, errors.New("killed")
	}
	return s.FileSink.Write(p)
}

func (s *stuckSink) Rewind(name string, off int64) error {
	if s.n > s.after {
		return errors.New("killed")
	}
	return s.FileSink.Rewind(name, off)
}

// failingSink fails every other write and every other commit.
type failingSink struct {
	*FileSink
	writes, commits, failed int
}

func (s *failingSink) Write(p []byte) (int, error) {
	s.writes++
	if s.writes%2 == 0 {
		s.failed++
		return 0, errors.New("sink down")
	}
	return s.FileSink.Write(p)
}

func (s *failingSink) Commit() error {
	s.commits++
	if s.commits%2 == 0 {
		s.failed++
		return errors.New("sink down")
	}
	return s.FileSink.Commit()
}

// TestFollowRetryService: a sink that fails in the middle of segments and
// at their commit is retried, with each row still written once.
func TestFollowRetryService(t *testing.T) {
	e, path, cursor, sink := newFollowFile(t)
	fs := &failingSink{FileSink: sink}
	stop := e.follow(fs, cursor)
	e.load(1)
	waitExported(t, path, e.want())
	stop()
	sink.Close()
	checkExported(t, path, e.want())
	if fs.failed == 0 {
		t.Fatal("sink never failed")
	}
}

// TestFileSinkRewindRotation: a crash after a rotation but before the cursor
// was written (the cursor points into the rotated file) undoes the rotation
// and drops the segment written after the cursor.
func TestFileSinkRewindRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	s, err := OpenFileSink(path, 10)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(s, "a\n")
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	name, off := s.Position() // the cursor
	fmt.Fprint(s, "bbbbbbbbbb\n")
	if err := s.Commit(); err != nil { // rotates to out.jsonl.1
		t.Fatal(err)
	}
	if n, _ := s.Position(); n == name {
		t.Fatal("no rotation")
	}
	s.Close()

	s, err = OpenFileSink(path, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Rewind(name, off); err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(s, "c\n")
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "a\nc\n" {
		t.Fatalf("%q %v", b, err)
	}
	if _, err := os.Stat(path + ".1"); !os.IsNotExist(err) {
		t.Fatalf("rotated file left: %v", err)
	}
	if err := s.Rewind("7", 0); err == nil {
		t.Fatal("rewind to an unknown generation passed")
	}
}

// TestFollowHelperProcess is the follower that TestFollowKillService runs
// as a child process and kills; it does nothing in a normal test run.
func TestFollowHelperProcess(t *testing.T) {
	dsn := os.Getenv("POFR_FOLLOW_HELPER_DSN")
	if dsn == "" {
		return
	}
	db, err := OpenDB(dsn)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := OpenFileSink(os.Getenv("POFR_FOLLOW_HELPER_OUT"), 8<<10)
	if err != nil {
		t.Fatal(err)
	}
	q := &Querier{DB: db}
	err = q.Follow(t.Context(), sink, FollowArgs{Export: ExportArgs{Table: "proc"}, CursorFile: os.Getenv("POFR_FOLLOW_HELPER_CURSOR"),
		Interval: 10 * time.Millisecond, Retry: 10 * time.Millisecond, HoleWait: time.Minute})
	t.Fatal(err)
}

// TestFollowKillService: a follower process killed (SIGKILL) again and
// again while segments load, and restarted each time, writes every row
// exactly once.
func TestFollowKillService(t *testing.T) {
	db, dsn := servertest.NewDB(t, OpenDB)
	e := &followEnv{t: t, q: &Querier{DB: db}, fx: servertest.NewFixture(t, "h1", "h2"), base: servertest.HostileBase()}
	dir := t.TempDir()
	path, cursor := filepath.Join(dir, "proc.jsonl"), filepath.Join(dir, "cursor")
	e.load(10)
	for i := range 8 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFollowHelperProcess$")
		cmd.Env = append(os.Environ(), "POFR_FOLLOW_HELPER_DSN="+dsn, "POFR_FOLLOW_HELPER_OUT="+path, "POFR_FOLLOW_HELPER_CURSOR="+cursor)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			e.load(2)
		}
		time.Sleep(time.Duration(20+i*15) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		got, _, err := exported(path)
		t.Logf("after kill %d: %d rows written, %v", i, len(got), err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFollowHelperProcess$")
	cmd.Env = append(os.Environ(), "POFR_FOLLOW_HELPER_DSN="+dsn, "POFR_FOLLOW_HELPER_OUT="+path, "POFR_FOLLOW_HELPER_CURSOR="+cursor)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	waitExported(t, path, e.want())
	checkExported(t, path, e.want())
}
