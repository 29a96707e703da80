package schema

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestStatements(t *testing.T) {
	got := Statements("-- head; comment\nCREATE TABLE a (x INT COMMENT 'a;b''c\\';d');\n/* x; y */ SELECT \"q;\" ;\n# hash; comment\nSELECT `a;b`;\n-- only a comment;\n")
	want := []string{
		"-- head; comment\nCREATE TABLE a (x INT COMMENT 'a;b''c\\';d')",
		"/* x; y */ SELECT \"q;\"",
		"# hash; comment\nSELECT `a;b`",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Statements (-want +got):\n%s", diff)
	}
}

func TestMigrations(t *testing.T) {
	ms := Migrations()
	if len(ms) == 0 {
		t.Fatal("no migrations embedded")
	}
	for i, m := range ms {
		if m.Version != i+1 {
			t.Errorf("migration %d is %s: versions must be 001, 002, … without holes", i+1, m.Name)
		}
		for _, st := range Statements(m.SQL) {
			if strings.HasPrefix(st, "CREATE TABLE ") && !strings.HasPrefix(st, "CREATE TABLE IF NOT EXISTS") {
				t.Errorf("%s: %q…: CREATE TABLE without IF NOT EXISTS is not idempotent", m.Name, st[:40])
			}
		}
	}
	if Latest() != ms[len(ms)-1].Version {
		t.Errorf("Latest() = %d, want %d", Latest(), ms[len(ms)-1].Version)
	}
}

// TestViews: views.sql defines every view, each with CREATE OR REPLACE (so
// Apply can run it every time), and no migration defines one (the views
// have one definition).
func TestViews(t *testing.T) {
	var names []string
	for _, st := range Statements(Views()) {
		st = strings.TrimSpace(stripComments(st))
		name, ok := strings.CutPrefix(st, "CREATE OR REPLACE VIEW ")
		if !ok {
			t.Errorf("views.sql: %.60q…: not CREATE OR REPLACE VIEW", st)
			continue
		}
		names = append(names, strings.Fields(name)[0])
	}
	want := []string{"processes", "proc_event_details", "process_tree", "timeline", "connections", "peer_connections"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("views (-want +got):\n%s", diff)
	}
	for _, m := range Migrations() {
		for _, st := range Statements(m.SQL) {
			if strings.Contains(strings.ToUpper(stripComments(st)), " VIEW ") {
				t.Errorf("%s: %.60q…: views belong in views.sql", m.Name, st)
			}
		}
	}
}

// stripComments drops the -- comment lines of a statement.
func stripComments(st string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(st, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "--") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}
