package loader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pofr/pofr/internal/servertest"
	"github.com/pofr/pofr/internal/testutil"
)

// levelLog keeps the records at Error, or with info also at Info and
// Warn, as "LEVEL msg key=value ...".
type levelLog struct {
	info bool
	mu   sync.Mutex
	recs []string
}

func (h *levelLog) Enabled(_ context.Context, l slog.Level) bool {
	return l >= slog.LevelError || h.info && l >= slog.LevelInfo
}
func (h *levelLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *levelLog) WithGroup(string) slog.Handler      { return h }
func (h *levelLog) Handle(_ context.Context, r slog.Record) error {
	line := r.Level.String() + " " + r.Message
	r.Attrs(func(a slog.Attr) bool {
		line += " " + a.Key + "=" + a.Value.String()
		return true
	})
	h.mu.Lock()
	h.recs = append(h.recs, line)
	h.mu.Unlock()
	return nil
}

func (h *levelLog) lines() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.recs...)
}

// watchAt starts Watch against a server at addr with a log of its errors.
func watchAt(t *testing.T, ctx context.Context, addr string) (*levelLog, <-chan error) {
	t.Helper()
	f := servertest.NewFixture(t, "h1")
	sealMany(f, "h1", 1, 10)
	h := new(levelLog)
	l, err := New(Options{DSN: fmt.Sprintf("u:p@tcp(%s)/pofr?timeout=5s", addr), StateDir: f.State, Workers: 1, Log: slog.New(h)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	done := make(chan error, 1)
	go func() {
		_, err := l.Watch(ctx, 20*time.Millisecond)
		done <- err
	}()
	return h, done
}

// waitWatch returns Watch's error, or fails after a deadline.
func waitWatch(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("Watch did not return 30 s after its context ended")
		return nil
	}
}

// TestWatchLogsPassError: a pass that fails on its own (no server at the
// address) is logged at Error with its cause, and Watch goes on.
func TestWatchLogsPassError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: every dial is refused
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	h, done := watchAt(t, ctx, addr)
	testutil.WaitFor(t, 10*time.Second, "two passes logged", func() bool { return len(h.lines()) >= 2 })
	cancel()
	if err := waitWatch(t, done); !errors.Is(err, context.Canceled) {
		t.Fatalf("Watch = %v, want context.Canceled", err)
	}
	for _, line := range h.lines() {
		if !strings.HasPrefix(line, "ERROR load pass err=") || !strings.Contains(line, "connection refused") {
			t.Errorf("logged %q, want the pass's error with its cause (connection refused)", line)
		}
	}
}

// TestWatchCancelNotLogged: a pass cut off by the end of ctx (SIGTERM to
// load --watch) logs no error. The server accepts and never answers, so
// the pass is in its first query when ctx ends.
func TestWatchCancelNotLogged(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	for _, stop := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
	}{
		{"cancel", func() (context.Context, context.CancelFunc) { return context.WithCancel(t.Context()) }},
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(t.Context(), 200*time.Millisecond)
		}},
	} {
		t.Run(stop.name, func(t *testing.T) {
			ctx, cancel := stop.ctx()
			defer cancel()
			h, done := watchAt(t, ctx, ln.Addr().String())
			select {
			case c := <-accepted:
				defer c.Close()
			case <-time.After(10 * time.Second):
				t.Fatal("the pass did not connect in 10 s")
			}
			if stop.name == "cancel" {
				cancel()
			}
			if err := waitWatch(t, done); err == nil || !errors.Is(err, ctx.Err()) {
				t.Fatalf("Watch = %v, want %v", err, ctx.Err())
			}
			if lines := h.lines(); len(lines) > 0 {
				t.Errorf("a stopped Watch logged errors: %q", lines)
			}
		})
	}
}

// TestWatchLogsEachFailedSegment: every segment that fails to load (here a
// table is missing: a real error, neither the segment's fault nor a cut
// off) is logged once with its cause, also in --watch, where the pass's
// error is the first of them.
func TestWatchLogsEachFailedSegment(t *testing.T) {
	db, _ := newDB(t)
	if _, err := db.Exec("DROP TABLE file_events"); err != nil {
		t.Fatal(err)
	}
	f := servertest.NewFixture(t, "h1", "h2")
	sealMany(f, "h1", 1, 10)
	sealMany(f, "h2", 1, 10)
	h := &levelLog{info: true}
	l, err := New(Options{DB: db, StateDir: f.State, Workers: 2, Log: slog.New(h)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	var sum Summary
	go func() {
		var err error
		sum, err = l.Watch(ctx, time.Hour)
		done <- err
	}()
	testutil.WaitFor(t, 30*time.Second, "the first pass", func() bool {
		return slices.ContainsFunc(h.lines(), func(s string) bool { return strings.HasPrefix(s, "INFO load pass") })
	})
	cancel()
	if err := waitWatch(t, done); !errors.Is(err, context.Canceled) {
		t.Fatalf("Watch = %v, want context.Canceled", err)
	}
	var errs []string
	for _, line := range h.lines() {
		if strings.HasPrefix(line, "ERROR") {
			errs = append(errs, line)
		}
	}
	if sum.Failed != 2 || len(errs) != 2 {
		t.Fatalf("summary %s, errors logged %q: want 2 failed segments, each logged once", sum, errs)
	}
	for i, host := range []string{"h1", "h2"} {
		if !slices.ContainsFunc(errs, func(s string) bool {
			return strings.HasPrefix(s, "ERROR load segment host="+host+" ") && strings.Contains(s, "file_events")
		}) {
			t.Errorf("error %d: no line for %s's segment with the cause (file_events) in %q", i, host, errs)
		}
	}
}
