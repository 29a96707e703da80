package custody_test

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pofr/pofr/custody"
	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/internal/servertest"
)

// hostRows counts host's rows in every table custody.PurgeHost empties.
func hostRows(t *testing.T, db *sql.DB, host string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, table := range custody.PurgeTables {
		var n int64
		if err := db.QueryRow("SELECT COUNT(*) FROM "+table+" WHERE host_id = ?", host).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[table] = n
	}
	return out
}

// TestPurgeHostAndRevoked: a revoked host's rows are deleted in small
// batches, the other host's are untouched, and the revoked host's segments
// still in its inbox are quarantined as revoked_host, not loaded.
func TestPurgeHostAndRevoked(t *testing.T) {
	db, _ := newDB(t)
	f := servertest.NewFixture(t, "h1", "h2")
	for _, h := range []string{"h1", "h2"} {
		for range 3 {
			procs, files, socks, gaps, accts := servertest.HostileRows(servertest.HostileBase())
			p2, f2, s2 := servertest.BusyRows(servertest.HostileBase(), 40)
			exes := servertest.HostileExes(servertest.HostileBase())
			f.Seal(h, func(s event.Sink) {
				event.AppendAll(s, append(procs, p2...), append(files, f2...), append(socks, s2...), gaps, accts)
				for i := range exes {
					s.(event.ExeSink).AppendExecutable(&exes[i])
				}
				for _, l := range servertest.HostileLogins(servertest.HostileBase()) {
					s.(event.LoginSink).AppendLogin(&l)
				}
				for _, c := range servertest.HostileContainers(servertest.HostileBase()) {
					s.(event.ContainerSink).AppendContainer(&c)
				}
				s.(event.DNSSink).AppendDNS(&event.DNS{TS: servertest.HostileBase(), Event: event.DNSResponse, Proto: "udp",
					ClientAddr: []byte{10, 0, 0, 1}, ClientPort: 40000, ServerAddr: []byte{10, 0, 0, 53}, ServerPort: 53,
					QName: []byte("\\000x\t'.example."), QType: event.Some[uint16](1), RCode: event.Some[uint8](0),
					Answers: []byte("x. A 60 10.0.0.2\n"), AnswerAddrs: []byte(",0A000002,")})
			})
		}
	}
	// One of h1's is refused (bit flip), so it has a quarantine row too.
	bad := f.Seal("h1", func(s event.Sink) {
		event.AppendAll(s, nil, nil, nil, nil, []event.Account{{TS: servertest.HostileBase(), Kind: event.AcctUser, ID: 1, Name: []byte("x")}})
	})[0]
	b, _ := os.ReadFile(bad)
	b[len(b)/2] ^= 1
	os.WriteFile(bad, b, 0o600)
	if s := run(t, db, f.State, 2); s.Loaded != 6 || s.Quarantined != 1 {
		t.Fatalf("run: %s, want 6 loaded, 1 quarantined", s)
	}
	h1Before, h2Before := hostRows(t, db, "h1"), hostRows(t, db, "h2")
	for _, table := range custody.PurgeTables {
		if h1Before[table] == 0 {
			t.Fatalf("h1 has no rows in %s before the purge: the test would prove nothing", table)
		}
	}

	// Revoke h1 in the registry (as deregister does), with a segment of it
	// still waiting in its inbox, then purge its rows 7 at a time.
	waiting := f.Seal("h1", func(s event.Sink) {
		p, fl, sk := servertest.BusyRows(servertest.HostileBase(), 10)
		event.AppendAll(s, p, fl, sk, nil, nil)
	})
	h, err := registry.Load(f.State, "h1")
	if err != nil {
		t.Fatal(err)
	}
	h.Status, h.SSHKey = registry.StatusRevoked, ""
	if err := registry.Save(f.State, h); err != nil {
		t.Fatal(err)
	}
	deleted, err := custody.PurgeHost(t.Context(), db, "h1", 7, nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(h1Before, deleted); diff != "" {
		t.Errorf("rows deleted (-had +deleted):\n%s", diff)
	}
	zero := map[string]int64{}
	for _, table := range custody.PurgeTables {
		zero[table] = 0
	}
	if diff := cmp.Diff(zero, hostRows(t, db, "h1")); diff != "" {
		t.Errorf("h1 rows after the purge (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(h2Before, hostRows(t, db, "h2")); diff != "" {
		t.Errorf("h2 rows changed by h1's purge (-before +after):\n%s", diff)
	}
	var status string
	if err := db.QueryRow("SELECT status FROM hosts WHERE host_id = 'h1'").Scan(&status); err != nil || registry.Status(status) != registry.StatusRevoked {
		t.Errorf("hosts.status of h1: %q (%v), want revoked", status, err)
	}

	// The loader refuses the waiting segment.
	if s := run(t, db, f.State, 2); s.Loaded != 0 || s.Quarantined != 1 {
		t.Fatalf("run after revoke: %s, want 1 quarantined", s)
	}
	var class, reason string
	if err := db.QueryRow("SELECT class, reason FROM quarantine WHERE host_id = 'h1'").Scan(&class, &reason); err != nil {
		t.Fatal(err)
	}
	if class != "revoked_host" || !strings.Contains(reason, "revoked host") {
		t.Errorf("quarantine row: class %q reason %q, want revoked_host and a reason saying revoked host", class, reason)
	}
	if _, err := os.Stat(filepath.Join(f.State.Host("h1").Quarantine, filepath.Base(waiting[0]))); err != nil {
		t.Errorf("waiting segment not in quarantine: %v", err)
	}
	if n := hostRows(t, db, "h1")["segments"]; n != 0 {
		t.Errorf("h1 ledger rows after the refused load: %d, want 0", n)
	}
}
