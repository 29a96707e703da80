package loader

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/servertest"
	"github.com/pofr/pofr/internal/statedir"
)

func newTestLoader(t testing.TB, enc Encoding) (*Loader, *worker) {
	t.Helper()
	db, _ := newDB(t)
	l, err := New(Options{DB: db, StateDir: statedir.Dir(t.TempDir()), Encoding: enc})
	if err != nil {
		t.Fatal(err)
	}
	return l, &worker{l: l}
}

// TestCommitHostileByteExact loads hostile rows through the transaction
// path (no file) in both encodings and reads every value back.
func TestCommitHostileByteExact(t *testing.T) {
	for _, enc := range []Encoding{Escaped, Hex} {
		t.Run(enc.String(), func(t *testing.T) {
			l, w := newTestLoader(t, enc)
			defer w.close()
			procs, files, socks, gaps, accts := servertest.HostileRows(servertest.HostileBase())
			seg := memSegment("h1", 1, "", procs, files, socks, gaps, accts)
			defer seg.release()
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			res, err := w.commit(ctx, job{host: "h1", name: "x"}, seg, 1, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			want := int64(len(procs) + len(files) + len(socks) + len(gaps) + len(accts))
			if res.outcome != loaded || res.rows != want {
				t.Fatalf("commit: outcome %v rows %d, want loaded %d", res.outcome, res.rows, want)
			}
			for i := range files {
				files[i].LastTS = usTrunc(files[i].LastTS)
			}
			for i := range socks {
				if socks[i].FirstTS.Valid {
					socks[i].FirstTS.V = usTrunc(socks[i].FirstTS.V)
				}
			}
			for i := range gaps {
				gaps[i].FromTS, gaps[i].ToTS = usTrunc(gaps[i].FromTS), usTrunc(gaps[i].ToTS)
			}
			for i := range accts {
				accts[i].TS = usTrunc(accts[i].TS)
			}
			if diff := cmp.Diff(procs, readProcs(t, l.db(), "")); diff != "" {
				t.Errorf("proc_events (-wrote +read):\n%s", diff)
			}
			if diff := cmp.Diff(files, readFiles(t, l.db(), "")); diff != "" {
				t.Errorf("file_events (-wrote +read):\n%s", diff)
			}
			if diff := cmp.Diff(socks, readSocks(t, l.db(), "")); diff != "" {
				t.Errorf("sock_events (-wrote +read):\n%s", diff)
			}
			if diff := cmp.Diff(gaps, readGaps(t, l.db(), "")); diff != "" {
				t.Errorf("gaps (-wrote +read):\n%s", diff)
			}
			if diff := cmp.Diff(accts, readAccounts(t, l.db(), "")); diff != "" {
				t.Errorf("accounts (-wrote +read):\n%s", diff)
			}
			// The tables the SQL injection strings name are still there.
			var n int
			if err := l.db().QueryRow("SELECT COUNT(*) FROM proc_events WHERE host_id = 'h1' AND boot_id = 'boot-1' AND tz_offset = 3600").Scan(&n); err != nil || n != len(procs) {
				t.Errorf("proc rows with the manifest's host, boot and offset: %d (%v), want %d", n, err, len(procs))
			}
		})
	}
}

// TestCommitRejectsWarnings: a value longer than its column (a comm of 2000
// bytes) is refused before it is sent (too_long); and were the loader's
// limit missing, MariaDB's truncation warning must still roll the
// transaction back with ErrRejected. Either way nothing is left behind,
// ledger row included.
func TestCommitRejectsWarnings(t *testing.T) {
	l, w := newTestLoader(t, Escaped)
	defer w.close()
	p := event.Proc{TS: servertest.HostileBase(), Event: event.ProcExec, PID: 1, TID: 1, Comm: make([]byte, 2000), UID: 1, EUID: 1, GID: 1, EGID: 1, AUID: 1, SessionID: 1}
	seg := memSegment("h1", 1, "", []event.Proc{p}, nil, nil, nil, nil)
	defer seg.release()
	check := func(want Class) {
		t.Helper()
		_, err := w.commit(t.Context(), job{host: "h1", name: "x"}, seg, 1, time.Now())
		if classify(err) != want {
			t.Fatalf("commit: got %v, want a %s error", err, want)
		}
		for _, table := range []string{"segments", "proc_events"} {
			var n int
			if err := l.db().QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil || n != 0 {
				t.Errorf("%s has %d rows (%v) after a refused load, want 0", table, n, err)
			}
		}
	}
	check("too_long")
	limit := columnLimits["proc_events"]["comm"]
	delete(columnLimits["proc_events"], "comm")
	defer func() { columnLimits["proc_events"]["comm"] = limit }()
	check("load")
}
