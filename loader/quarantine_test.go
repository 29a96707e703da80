package loader

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pofr/pofr/custody"
	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/servertest"
)

// TestQuarantine: every kind of bad segment goes to quarantine with its
// reason, and the good ones around them still load.
func TestQuarantine(t *testing.T) {
	db, _ := newDB(t)
	f := servertest.NewFixture(t, "h1", "h2", "h3", "h4", "h5", "h6")
	rows := func(n int) func(event.Sink) {
		procs, files, socks := servertest.BusyRows(servertest.HostileBase(), n)
		return func(s event.Sink) { event.AppendAll(s, procs, files, socks, nil, nil) }
	}
	mutate := func(path string, fn func([]byte) []byte) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, fn(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// h1: a good segment, then a bit flip in the middle of the next.
	f.Seal("h1", rows(50))
	flipped := f.Seal("h1", rows(500))[0]
	mutate(flipped, func(b []byte) []byte { b[len(b)/2] ^= 0x10; return b })
	// h2: truncated.
	trunc := f.Seal("h2", rows(100))[0]
	mutate(trunc, func(b []byte) []byte { return b[:len(b)-700] })
	// h3: signed with h4's key.
	f.Keys["h3"], f.Keys["h4"] = f.Keys["h4"], f.Keys["h3"]
	f.Seal("h3", rows(10))
	f.Keys["h3"], f.Keys["h4"] = f.Keys["h4"], f.Keys["h3"]
	// h4's good segment copied into h5's inbox as well.
	good4 := f.Seal("h4", rows(10))[0]
	servertest.CopyFile(good4, filepath.Join(f.State.Host("h5").Inbox, filepath.Base(good4)))
	// h6: seq 1 loaded, then a second spool of the same host (same key)
	// sends another seq 1: a fork of the chain (same seq, another digest).
	f.Seal("h6", rows(10))
	if s := run(t, db, f.State, 2); s.Loaded != 3 || s.Quarantined != 4 {
		t.Fatalf("first run: %s, want 3 loaded, 4 quarantined", s)
	}
	f.Writers["h6"].Close()
	delete(f.Writers, "h6")
	f.Seal("h6", rows(11))
	if s := run(t, db, f.State, 2); s.Quarantined != 1 || s.Forks != 1 {
		t.Fatalf("fork run: %s, want 1 quarantined as a fork", s)
	}
	// A file larger than the limit below.
	big := f.Seal("h1", rows(3000))[0]
	fi, err := os.Stat(big)
	if err != nil {
		t.Fatal(err)
	}
	l, err := New(Options{DB: db, StateDir: f.State, MaxSegmentBytes: fi.Size() - 1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	s, err := l.Run(ctx)
	if err != nil || s.Quarantined != 1 {
		t.Fatalf("size-limited run: %s (%v), want 1 quarantined", s, err)
	}

	got := servertest.Lines(t, db, "SELECT host_id, class FROM quarantine ORDER BY host_id, class")
	want := []string{"h1 corrupt", "h1 too_large", "h2 corrupt", "h3 bad_signature", "h5 wrong_host", "h6 fork"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("quarantine rows (-want +got):\n%s", diff)
	}
	// Each quarantined file is in quarantine/<host>/ with a .reason naming
	// its class; nothing is left in the inboxes.
	for _, w := range want {
		h, class, _ := strings.Cut(w, " ")
		ents, _ := filepath.Glob(filepath.Join(f.State.String(), "quarantine", h, "*.reason"))
		found := false
		for _, e := range ents {
			b, _ := os.ReadFile(e)
			if strings.Contains(string(b), "class: "+class+"\n") {
				found = true
				if _, err := os.Stat(strings.TrimSuffix(e, ".reason")); err != nil {
					t.Errorf("%s: reason without its segment: %v", e, err)
				}
			}
		}
		if !found {
			t.Errorf("no .reason with class %s in quarantine/%s", class, h)
		}
		if in := f.Files("inbox", h); len(in) != 0 {
			t.Errorf("inbox/%s still holds %v", h, in)
		}
	}
	var hosts []string
	for _, h := range []string{"h1", "h4", "h6"} {
		if len(f.Files("archive", h)) > 0 {
			hosts = append(hosts, h)
		}
	}
	sort.Strings(hosts)
	if diff := cmp.Diff([]string{"h1", "h4", "h6"}, hosts); diff != "" {
		t.Errorf("hosts with archived segments (-want +got):\n%s", diff)
	}
	checkExactlyOnce(t, db, f, "h1", "h2", "h3", "h4", "h5", "h6")
	// verify reports the fork at h6's loaded seq 1 as a problem.
	r := servertest.Audit(t, db, custody.AuditOptions{Host: "h6"})
	if diff := cmp.Diff([]string{"h6 fork 1-1 problem"}, servertest.FindingKeys(r)); diff != "" {
		t.Errorf("audit of h6 (-want +got):\n%s", diff)
	}
}

// TestChainBreak: a host whose seq 2 does not chain to the loaded seq 1
// (another spool signed with the same key) is loaded with chain_ok = 0 and
// reported.
func TestChainBreak(t *testing.T) {
	db, _ := newDB(t)
	f := servertest.NewFixture(t, "h1")
	procs, files, socks := servertest.BusyRows(servertest.HostileBase(), 20)
	fill := func(s event.Sink) { event.AppendAll(s, procs, files, socks, nil, nil) }
	f.Seal("h1", fill)
	// A second spool's seq 1 and 2; keep only its seq 2.
	f.Writers["h1"].Close()
	delete(f.Writers, "h1")
	if s := run(t, db, f.State, 1); s.Loaded != 1 {
		t.Fatalf("first run: %s", s)
	}
	first := f.Seal("h1", fill)
	os.Remove(first[0])
	f.Seal("h1", fill)
	s := run(t, db, f.State, 1)
	if s.Loaded != 1 || s.ChainBreaks != 1 {
		t.Fatalf("second run: %s, want 1 loaded with 1 chain break", s)
	}
	var ok int
	if err := db.QueryRow("SELECT chain_ok FROM segments WHERE seq = 2").Scan(&ok); err != nil || ok != 0 {
		t.Errorf("chain_ok of seq 2: %d (%v), want 0", ok, err)
	}
}

// TestChainBreakSuccessorFirst: when the later segment commits first, the
// break is found as the earlier one commits; load must count and log it
// like any other.
func TestChainBreakSuccessorFirst(t *testing.T) {
	db, _ := newDB(t)
	f := servertest.NewFixture(t, "h1")
	procs, files, socks := servertest.BusyRows(servertest.HostileBase(), 20)
	fill := func(s event.Sink) { event.AppendAll(s, procs, files, socks, nil, nil) }
	// Spool A seals seq 1; keep it aside.
	a1 := f.Seal("h1", fill)[0]
	aside := filepath.Join(t.TempDir(), filepath.Base(a1))
	if err := os.Rename(a1, aside); err != nil {
		t.Fatal(err)
	}
	// Spool B (same key) seals seq 1 and 2; only its seq 2 arrives.
	f.Writers["h1"].Close()
	delete(f.Writers, "h1")
	b1 := f.Seal("h1", fill)[0]
	os.Remove(b1)
	f.Seal("h1", fill)
	if s := run(t, db, f.State, 1); s.Loaded != 1 || s.ChainBreaks != 0 {
		t.Fatalf("first run: %s, want seq 2 loaded, chain unsettled", s)
	}
	if err := os.Rename(aside, a1); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	l, err := New(Options{DB: db, StateDir: f.State, Workers: 1, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s, err := l.Run(t.Context())
	if err != nil || s.Loaded != 1 || s.ChainBreaks != 1 {
		t.Fatalf("second run: %s (%v), want seq 1 loaded and 1 chain break", s, err)
	}
	if !strings.Contains(logs.String(), "hash chain broken") || !strings.Contains(logs.String(), "seq=2") {
		t.Errorf("log does not report the break of seq 2:\n%s", logs.String())
	}
	var ok int
	if err := db.QueryRow("SELECT chain_ok FROM segments WHERE seq = 2").Scan(&ok); err != nil || ok != 0 {
		t.Errorf("chain_ok of seq 2: %d (%v), want 0", ok, err)
	}
}

// TestTimeRange: segments with rows before 1970 or in 2262 are quarantined
// (class time_range), not loaded; a segment in range beside them loads.
func TestTimeRange(t *testing.T) {
	db, _ := newDB(t)
	f := servertest.NewFixture(t, "h1", "h2", "h3")
	at := func(ts int64) func(event.Sink) {
		return func(s event.Sink) {
			s.AppendProc(&event.Proc{TS: ts, Event: event.ProcExec, PID: 1, TID: 1, UID: 1, EUID: 1, GID: 1, EGID: 1, AUID: 1, SessionID: 1})
		}
	}
	f.Seal("h1", at(9_200_000_000_000_000_000)) // 2261-07-20
	f.Seal("h2", at(-1))                        // 1969-12-31T23:59:59.999999999Z
	f.Seal("h3", at(servertest.HostileBase()))
	s := run(t, db, f.State, 2)
	if s.Loaded != 1 || s.Quarantined != 2 {
		t.Fatalf("run: %s, want 1 loaded, 2 quarantined", s)
	}
	got := servertest.Lines(t, db, "SELECT host_id, class FROM quarantine ORDER BY host_id")
	if diff := cmp.Diff([]string{"h1 time_range", "h2 time_range"}, got); diff != "" {
		t.Errorf("quarantine rows (-want +got):\n%s", diff)
	}
	var last time.Time
	if err := db.QueryRow("SELECT MAX(last_seen) FROM hosts").Scan(&last); err != nil || last.Year() > 2200 {
		t.Errorf("hosts.last_seen: %v (%v), want today", last, err)
	}
}
