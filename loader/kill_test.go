package loader

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/pofr/pofr/internal/servertest"
)

// TestKill9 runs the loader as a subprocess (this test binary re-executed)
// and kills it with SIGKILL at random moments, again and again; after every
// kill the database holds whole segments only, none twice, and a final run
// loads the rest: row counts equal the manifests.
func TestKill9(t *testing.T) {
	db, dsn := newDB(t)
	f := servertest.NewFixture(t, "h1", "h2")
	sealMany(f, "h1", 16, 3000)
	sealMany(f, "h2", 8, 3000)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 7))
	kills := 0
	for i := 0; i < 12 && len(f.Files("inbox", "h1"))+len(f.Files("inbox", "h2")) > 0; i++ {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), "POFR_LOADER_CHILD=1", "POFR_LOADER_DSN="+dsn, "POFR_LOADER_STATE="+f.State.String())
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(time.Duration(rnd.IntN(400)) * time.Millisecond):
			cmd.Process.Kill()
			kills++
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("killed loader did not exit")
			}
		}
		checkConsistent(t, db)
	}
	if kills == 0 {
		t.Error("no loader was killed: the test proved nothing")
	}
	s := run(t, db, f.State, 2)
	t.Logf("%d kills; final run: %s", kills, s)
	if n := len(f.Files("inbox", "h1")) + len(f.Files("inbox", "h2")); n != 0 {
		t.Fatalf("%d segments left in the inboxes", n)
	}
	if len(f.Files("archive", "h1")) != 16 || len(f.Files("archive", "h2")) != 8 {
		t.Fatalf("archived %d + %d segments, want 16 + 8", len(f.Files("archive", "h1")), len(f.Files("archive", "h2")))
	}
	checkExactlyOnce(t, db, f, "h1", "h2")
}

// TestWatchStopped stops Watch (what SIGTERM does to load --watch) at random
// moments of its passes: a segment cut off before its commit is neither a
// failure nor quarantined, the database holds whole segments only, and a
// final run loads the rest.
func TestWatchStopped(t *testing.T) {
	db, _ := newDB(t)
	f := servertest.NewFixture(t, "h1")
	sealMany(f, "h1", 12, 3000)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 11))
	stopped := 0
	for i := 0; i < 10 && len(f.Files("inbox", "h1")) > 0; i++ {
		l, err := New(Options{DB: db, StateDir: f.State, Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Duration(20+rnd.IntN(300))*time.Millisecond)
		s, err := l.Watch(ctx, time.Hour)
		cancel()
		if ctx.Err() == nil {
			t.Fatalf("Watch ended by itself: %v", err)
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Watch: %v (summary %s)", err, s)
		}
		if s.Failed != 0 || s.Quarantined != 0 {
			t.Fatalf("stopped pass: %s, want no failed and no quarantined segment", s)
		}
		if len(f.Files("inbox", "h1")) > 0 {
			stopped++
		}
		checkConsistent(t, db)
	}
	if stopped == 0 {
		t.Error("no pass was stopped before the inbox was empty: the test proved nothing")
	}
	s := run(t, db, f.State, 2)
	t.Logf("%d stopped passes; final run: %s", stopped, s)
	if n := len(f.Files("inbox", "h1")); n != 0 {
		t.Fatalf("%d segments left in the inbox", n)
	}
	if n := len(f.Files("archive", "h1")); n != 12 {
		t.Fatalf("archived %d segments, want 12", n)
	}
}
