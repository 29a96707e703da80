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
