// Package clitest checks a binary's command tree from the binary's tests:
// every command listed once by --help, each with a --help that shows its
// synopsis, summary and exit codes, and no command built outside the tree.
package clitest

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pofr/pofr/internal/cli"
)

// Run runs a fresh tree from newApp in the test's process with args and
// empty stdin.
func Run(newApp func() *cli.App, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = newApp().Run(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// Help checks that --help lists every command of the tree once and that
// each command's --help shows "Usage: PROG NAME ", its summary and its exit
// codes. It returns the commands' names.
func Help(t *testing.T, newApp func() *cli.App) map[string]bool {
	t.Helper()
	code, out, _ := Run(newApp, "--help")
	if code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
	app := newApp()
	seen := map[string]bool{}
	for _, c := range app.Commands {
		if seen[c.Name] {
			t.Errorf("command %q is listed twice", c.Name)
		}
		seen[c.Name] = true
		if !strings.Contains(out, "  "+c.Name+" ") {
			t.Errorf("--help does not list %q:\n%s", c.Name, out)
		}
		code, cout, cerr := Run(newApp, append(strings.Fields(c.Name), "--help")...)
		if code != 0 || cerr != "" {
			t.Errorf("%s --help: exit %d, stderr %q", c.Name, code, cerr)
		}
		for _, want := range []string{"Usage: " + app.Prog + " " + c.Name + " ", c.Summary, "Exit codes"} {
			if !strings.Contains(cout, want) {
				t.Errorf("%s --help lacks %q:\n%s", c.Name, want, cout)
			}
		}
	}
	return seen
}

// UsageErrors checks that each case, {command line split at spaces, what
// the message must name}, exits 2 with that in its stderr, and that none
// wrote to state, the empty directory the cases name for state: usage is
// checked before anything is touched.
func UsageErrors(t *testing.T, newApp func() *cli.App, state string, cases [][2]string) {
	t.Helper()
	for _, tc := range cases {
		args, want := tc[0], tc[1]
		code, out, errOut := Run(newApp, strings.Fields(args)...)
		if code != 2 || !strings.Contains(errOut, want) {
			t.Errorf("%s: exit %d, stderr %q, stdout %q; want exit 2 and %q", args, code, errOut, out, want)
		}
	}
	if ents, err := os.ReadDir(state); err != nil || len(ents) != 0 {
		t.Errorf("usage errors wrote to the state directory: %v %v", ents, err)
	}
}

// NoInit checks that no source file of the package in the working directory
// (a main package, when its tests run) has an init function: commands are
// built by the package's newApp, and one built from init would not be in
// the tree the tests run.
func NoInit(t *testing.T) {
	t.Helper()
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
