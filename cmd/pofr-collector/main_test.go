package main

import (
	"strings"
	"testing"

	"github.com/pofr/pofr/internal/cli/clitest"
)

// runApp runs a fresh pofr-collector command tree in the test's process.
func runApp(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return clitest.Run(newApp, args...)
}

// TestHelp: --help lists every command of the tree, and each command's
// --help shows its synopsis, its summary and its exit codes.
func TestHelp(t *testing.T) {
	seen := clitest.Help(t, newApp)
	for _, name := range []string{"run", "status", "register", "deregister", "keys", "register-openssh", "spool ls", "spool verify", "spool cat"} {
		if !seen[name] {
			t.Errorf("the tree lacks %q", name)
		}
	}
	if code, out, _ := runApp(t, "spool"); code != 0 || !strings.Contains(out, "spool cat") {
		t.Errorf("spool: exit %d, output:\n%s", code, out)
	}
}

// TestUsageErrors: bad flags, arguments and combinations exit 2 with a
// message that names the problem, before touching any state.
func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	clitest.UsageErrors(t, newApp, dir, [][2]string{
		{"--bogus", "run 'pofr-collector --help'"},
		{"nosuch", "unknown command"},
		{"spool nosuch", "unknown command"},
		{"run extra", "run takes no arguments"},
		{"run --bogus", "run 'pofr-collector run --help'"},
		{"run --profile nosuch-profile --state-dir " + dir, "nosuch-profile"},
		{"status extra", "unexpected arguments"},
		{"register", "--server is required"},
		{"register extra", "unexpected arguments"},
		{"register --server h --token-file a --password-file b", "exclude each other"},
		{"deregister extra", "unexpected arguments"},
		{"keys extra", "unexpected arguments"},
		{"register-openssh --server h", "are required"},
		{"register-openssh --server h --host-id BAD_ID --user u --host-key k", "--host-id"},
		{"spool ls extra", "unexpected arguments"},
		{"spool cat", "no segment files given"},
		{"spool cat --table nosuch x.seg", "--table"},
	})
}

// TestEveryCommandInTheTree: pofr-collector lists its commands in newApp;
// a command added from init would not be in the tree the tests run.
func TestEveryCommandInTheTree(t *testing.T) { clitest.NoInit(t) }
