package loader

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pofr/pofr/custody"
	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/servertest"
	"github.com/pofr/pofr/schema"
)

// TestAuditRows: verify --rows finds every way of tampering with loaded
// rows that the ledger and the archive cannot show: a value changed in each
// table, a row deleted, a row added under a segment, a row moved to another
// host; an untouched segment with every kind of hostile value compares
// equal, column for column.
func TestAuditRows(t *testing.T) {
	db, _ := newDB(t)
	f := servertest.NewFixture(t, "h1", "h2")
	procs, files, socks, gaps, accts := servertest.HostileRows(servertest.HostileBase())
	exes := servertest.HostileExes(servertest.HostileBase())
	logins := servertest.HostileLogins(servertest.HostileBase())
	for range 3 {
		f.Seal("h1", func(s event.Sink) {
			event.AppendAll(s, procs, files, socks, gaps, accts)
			for i := range exes {
				s.(event.ExeSink).AppendExecutable(&exes[i])
			}
			for i := range logins {
				s.(event.LoginSink).AppendLogin(&logins[i])
			}
			for _, c := range servertest.HostileContainers(servertest.HostileBase()) {
				s.(event.ContainerSink).AppendContainer(&c)
			}
		})
	}
	f.Seal("h2", func(s event.Sink) { event.AppendAll(s, procs, files, socks, gaps, accts) })
	if s := run(t, db, f.State, 2); s.Loaded != 4 {
		t.Fatalf("run: %s, want 4 loaded", s)
	}
	clean := servertest.Audit(t, db, custody.AuditOptions{StateDir: f.State, Rows: CheckRows})
	if keys := servertest.FindingKeys(clean); len(keys) != 0 {
		for _, h := range clean.Hosts {
			t.Log(h.Findings)
		}
		t.Fatalf("untouched rows: findings %v, want none", keys)
	}
	for _, h := range clean.Hosts {
		if h.Archive == nil || h.Archive.RowsOK != h.Segments || h.Archive.RowsBad != 0 {
			t.Errorf("%s: archive %+v, want rows ok for all %d segments", h.Host, h.Archive, h.Segments)
		}
	}

	seg := func(host string, seq int) string {
		return "(SELECT segment_id FROM segments WHERE host_id = '" + host + "' AND seq = " + string(rune('0'+seq)) + ")"
	}
	for _, st := range []string{
		// h1 seq 1: one byte of one argv, and a NULL made empty.
		"UPDATE proc_events SET argv = CONCAT(argv, 'x') WHERE segment_id = " + seg("h1", 1) + " AND row_no = 3",
		"UPDATE file_events SET new_path = '' WHERE segment_id = " + seg("h1", 1) + " AND row_no = 0",
		// h1 seq 2: a socket deleted, an account renamed, a gap's reason.
		"DELETE FROM sock_events WHERE segment_id = " + seg("h1", 2) + " AND row_no = 1",
		"UPDATE accounts SET name = 'root' WHERE segment_id = " + seg("h1", 2) + " AND row_no = 0",
		"UPDATE gaps SET reason = 'nothing happened' WHERE segment_id = " + seg("h1", 2) + " AND row_no = 1",
		"UPDATE executables SET sha256 = UNHEX(REPEAT('00', 32)) WHERE segment_id = " + seg("h1", 2) + " AND row_no = 3",
		"UPDATE login_events SET user = 'root' WHERE segment_id = " + seg("h1", 2) + " AND row_no = 5",
		"UPDATE containers SET name = 'web' WHERE segment_id = " + seg("h1", 2) + " AND row_no = 2",
		// h1 seq 3: a row added under it.
		"INSERT INTO gaps (segment_id, row_no, host_id, boot_id, from_ts, to_ts, source, reason) SELECT segment_id, 99, host_id, boot_id, from_ts, to_ts, source, 'forged' FROM gaps WHERE segment_id = " + seg("h1", 3) + " AND row_no = 0",
		// h2 seq 1: a row moved to another host, a timestamp shifted by 1 µs.
		"UPDATE proc_events SET host_id = 'h1' WHERE segment_id = " + seg("h2", 1) + " AND row_no = 0",
		"UPDATE file_events SET last_ts = last_ts + INTERVAL 1 MICROSECOND WHERE segment_id = " + seg("h2", 1) + " AND row_no = 2",
	} {
		if res, err := db.Exec(st); err != nil {
			t.Fatalf("%s: %v", st, err)
		} else if n, _ := res.RowsAffected(); n != 1 {
			t.Fatalf("%s: %d rows affected, want 1", st, n)
		}
	}
	r := servertest.Audit(t, db, custody.AuditOptions{StateDir: f.State, Rows: CheckRows})
	want := []string{"h1 rows_differ 1-1 problem", "h1 rows_differ 2-2 problem", "h1 rows_differ 3-3 problem", "h2 rows_differ 1-1 problem"}
	if diff := cmp.Diff(want, servertest.FindingKeys(r)); diff != "" {
		t.Errorf("tampered rows (-want +got):\n%s", diff)
	}
	details := map[string]string{}
	for _, h := range r.Hosts {
		for _, fd := range h.Findings {
			details[h.Host+string(rune('0'+fd.FromSeq))] = fd.Detail
		}
	}
	for key, wantParts := range map[string][]string{
		"h11": {"proc_events: 1 changed, 0 missing, 0 extra", "file_events: 1 changed"},
		"h12": {"sock_events: 0 changed, 1 missing", "accounts: 1 changed", "gaps: 1 changed", "executables: 1 changed", "login_events: 1 changed", "containers: 1 changed"},
		"h13": {"gaps: 0 changed, 0 missing, 1 extra"},
		"h21": {"proc_events: 0 changed, 1 missing, 1 extra", "file_events: 1 changed"},
	} {
		for _, p := range wantParts {
			if !strings.Contains(details[key], p) {
				t.Errorf("%s: detail %q lacks %q", key, details[key], p)
			}
		}
	}
}

// TestAuditRowsExpired: rows whose day partition retention dropped are
// reported as expired, not as tampering; a row deleted from a kept day is
// still a difference.
func TestAuditRowsExpired(t *testing.T) {
	db, _ := newDB(t)
	f := servertest.NewFixture(t, "h1")
	old := time.Now().AddDate(0, 0, -3).UnixNano()
	today := servertest.HostileBase()
	procs := []event.Proc{
		{TS: old, Event: event.ProcExec, PID: 1, TID: 1, UID: 1, EUID: 1, GID: 1, EGID: 1, AUID: 1, SessionID: 1, Exe: []byte("/old")},
		{TS: today, Event: event.ProcExec, PID: 2, TID: 2, UID: 1, EUID: 1, GID: 1, EGID: 1, AUID: 1, SessionID: 1, Exe: []byte("/new")},
		{TS: today + 1, Event: event.ProcExit, PID: 2, TID: 2, UID: 1, EUID: 1, GID: 1, EGID: 1, AUID: 1, SessionID: 1},
	}
	f.Seal("h1", func(s event.Sink) { event.AppendAll(s, procs, nil, nil, nil, nil) })
	if s := run(t, db, f.State, 1); s.Loaded != 1 {
		t.Fatalf("run: %s", s)
	}
	dropped, err := schema.DropPartitions(t.Context(), db, time.Now())
	if err != nil || len(dropped) == 0 {
		t.Fatalf("drop partitions: %v %v", dropped, err)
	}
	r := servertest.Audit(t, db, custody.AuditOptions{StateDir: f.State, Rows: CheckRows})
	if diff := cmp.Diff([]string{"h1 rows_expired 1-1"}, servertest.FindingKeys(r)); diff != "" {
		t.Errorf("after retention (-want +got):\n%s", diff)
	}
	if _, err := db.Exec("DELETE FROM proc_events WHERE row_no = 2"); err != nil {
		t.Fatal(err)
	}
	r = servertest.Audit(t, db, custody.AuditOptions{StateDir: f.State, Rows: CheckRows})
	if diff := cmp.Diff([]string{"h1 rows_differ 1-1 problem", "h1 rows_expired 1-1"}, servertest.FindingKeys(r)); diff != "" {
		t.Errorf("after a delete (-want +got):\n%s", diff)
	}
}
