package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCollectorLinksNoDatabase keeps the client small and its attack surface
// narrow: the collector must never link database/sql or the MySQL driver.
func TestCollectorLinksNoDatabase(t *testing.T) {
	deps := listDeps(t, ".")
	for _, bad := range []string{"database/sql", "github.com/go-sql-driver/mysql", "github.com/pofr/pofr/loader", "github.com/pofr/pofr/receiver"} {
		if deps[bad] {
			t.Errorf("pofr-collector links %s", bad)
		}
	}
	if !deps["github.com/pofr/pofr/collector"] {
		t.Error("dependency list does not contain the collector package: the check is broken")
	}
}

func listDeps(t *testing.T, pkg string) map[string]bool {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	deps := map[string]bool{}
	for _, l := range strings.Fields(string(out)) {
		deps[l] = true
	}
	return deps
}
