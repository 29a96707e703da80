package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
)

// testCommands is the tree TestRun runs: a group "a" of two commands.
func testCommands() []*Command {
	var n int
	a := &Command{Name: "a b", Summary: "nested a b", Flags: func(fs *flag.FlagSet) { fs.IntVar(&n, "n", 0, "a number") },
		Run: func(ctx context.Context, env *Env, args []string) error {
			if n == 7 {
				return Exit(3, errors.New("seven"))
			}
			if len(args) > 0 {
				return Usagef("no arguments, got %q", args)
			}
			env.Stdout.Write([]byte("ran a b\n"))
			return nil
		}}
	c := &Command{Name: "a c", Summary: "nested a c", NoArgs: true, Run: func(context.Context, *Env, []string) error { return nil }}
	d := &Command{Name: "a d", Summary: "nested a d", Arg: "thing", Run: func(_ context.Context, env *Env, args []string) error {
		env.Stdout.Write([]byte("ran a d " + args[0] + "\n"))
		return nil
	}}
	return []*Command{a, c, d}
}

func TestRun(t *testing.T) {
	for _, tc := range []struct {
		args     string
		code     int
		out, err string
	}{
		{"", 0, "a b", ""},
		{"--help", 0, "Commands:", ""},
		{"a b", 0, "ran a b", ""},
		{"a b -n 7", 3, "", "seven"},
		{"a b extra", 2, "", "no arguments"},
		{"a b extra -n 7", 3, "", "seven"},
		{"a b -- -n", 2, "", "no arguments"},
		{"a b --bogus", 2, "", "run 'clitest a b --help'"},
		{"a b --help", 0, "nested a b", ""},
		{"a", 0, "a c", ""},
		{"a c", 0, "", ""},
		{"a c x", 2, "", "unexpected arguments [\"x\"]"},
		{"a d x", 0, "ran a d x", ""},
		{"a d", 2, "", "want one thing"},
		{"a d x y", 2, "", "want one thing"},
		{"a zz", 2, "", "unknown command"},
		{"zz", 2, "", "unknown command"},
		{"--log-level loud a b", 2, "", "--log-level"},
	} {
		var out, errb bytes.Buffer
		app := &App{Prog: "clitest", About: "about", Commands: testCommands()}
		code := app.Run(strings.Fields(tc.args), nil, &out, &errb)
		if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errb.String(), tc.err) {
			t.Errorf("run %q = %d, stdout %q, stderr %q; want %d, stdout with %q, stderr with %q",
				tc.args, code, out.String(), errb.String(), tc.code, tc.out, tc.err)
		}
	}
}
