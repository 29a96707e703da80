package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runApp runs a fresh pofr-collector command tree in the test's process.
func runApp(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = newApp().Run(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// TestHelp: --help lists every command of the tree, and each command's
// --help shows its synopsis, its summary and its exit codes.
func TestHelp(t *testing.T) {
	code, out, _ := runApp(t, "--help")
	if code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
	seen := map[string]bool{}
	for _, c := range newApp().Commands {
		if seen[c.Name] {
			t.Errorf("command %q is listed twice", c.Name)
		}
		seen[c.Name] = true
		if !strings.Contains(out, "  "+c.Name+" ") {
			t.Errorf("--help does not list %q:\n%s", c.Name, out)
		}
		code, cout, cerr := runApp(t, append(strings.Fields(c.Name), "--help")...)
		if code != 0 || cerr != "" {
			t.Errorf("%s --help: exit %d, stderr %q", c.Name, code, cerr)
		}
		for _, want := range []string{"Usage: pofr-collector " + c.Name + " ", c.Summary, "Exit codes"} {
			if !strings.Contains(cout, want) {
				t.Errorf("%s --help lacks %q:\n%s", c.Name, want, cout)
			}
		}
	}
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
	for _, tc := range []struct {
		args string
		want string
	}{
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
	} {
		code, _, stderr := runApp(t, strings.Fields(tc.args)...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("usage errors wrote to the state directory: %v", entries)
	}
}

// TestEveryCommandInTheTree: pofr-collector lists its commands in newApp;
// a command added from init would not be in the tree the tests run.
func TestEveryCommandInTheTree(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("list sources: %v %v", files, err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("func init()")) {
			t.Errorf("%s has an init function: build commands in newApp instead", f)
		}
	}
}
