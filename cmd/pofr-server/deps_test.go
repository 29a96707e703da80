package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestServerLinksNoNetlink: the server never captures anything, so it must
// not link the collector's kernel interfaces.
func TestServerLinksNoNetlink(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := map[string]bool{}
	for _, l := range strings.Fields(string(out)) {
		deps[l] = true
	}
	for _, bad := range []string{"github.com/pofr/pofr/collector", "github.com/vishvananda/netlink", "github.com/mdlayher/netlink"} {
		if deps[bad] {
			t.Errorf("pofr-server links %s", bad)
		}
	}
	if !deps["github.com/pofr/pofr/receiver"] {
		t.Error("dependency list does not contain the receiver package: the check is broken")
	}
}
