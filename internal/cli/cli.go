// Package cli is the small command framework shared by pofr's binaries:
// subcommands with their own flag sets and --help, a slog logger built once,
// signal handling, and errors mapped to documented exit codes.
//
// Exit codes common to every command:
//
//	0  success
//	1  the command failed (the message says why)
//	2  usage error (bad flags or arguments)
//
// Commands may document further codes with [Exit].
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"syscall"
)

// Env is what a command gets from main: output streams and the logger.
type Env struct {
	Stdout io.Writer
	Stderr io.Writer
	Stdin  io.Reader
	Log    *slog.Logger
	// Prog is the binary's name, for messages ("pofr-collector").
	Prog string
}

// Command is one subcommand. Name may contain a space for nested commands
// ("spool ls"); Main matches the longest prefix of the arguments.
type Command struct {
	Name    string
	Summary string
	// Usage is the argument synopsis after the name, e.g. "[flags] SEGMENT...".
	Usage string
	// Help is shown by --help after the synopsis; it should say what the
	// command does, its exit codes and an example.
	Help string
	// Flags declares the command's flags on fs; it may be nil.
	Flags func(fs *flag.FlagSet)
	// NoArgs makes any argument left after flags a usage error (exit 2):
	// Run is not called.
	NoArgs bool
	// Arg, if set, names the one argument the command takes ("host id"):
	// any other number of arguments is a usage error ("want one host id")
	// and Run is not called.
	Arg string
	// Run executes the command with the arguments left after flags.
	Run func(ctx context.Context, env *Env, args []string) error
}

// ExitError carries an exit code other than 1 for an error.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Exit returns an error that makes Main exit with code. A nil err exits
// silently with that code.
func Exit(code int, err error) error { return &ExitError{Code: code, Err: err} }

// Usagef returns a usage error (exit code 2).
func Usagef(format string, args ...any) error {
	return &ExitError{Code: 2, Err: fmt.Errorf(format, args...)}
}

// App is a binary's command tree, built explicitly by its main package
// (a newApp function that lists every command), so that tests can build a
// fresh one and run it in the test's process.
type App struct {
	Prog     string // the binary's name
	About    string // one line for --help
	Commands []*Command
}

// Main runs the app with os.Args and exits.
func (a *App) Main() { os.Exit(a.Run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

// Run runs the app with args (without the program name) and returns the
// exit code.
func (a *App) Run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return run(a.Prog, a.About, a.Commands, args, stdin, stdout, stderr)
}

func run(prog, about string, cmds []*Command, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmds = slices.Clone(cmds)
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].Name < cmds[j].Name })

	global := flag.NewFlagSet(prog, flag.ContinueOnError)
	global.SetOutput(stderr)
	logLevel := global.String("log-level", "info", "log level: debug, info, warn or error")
	logJSON := global.Bool("log-json", false, "log as JSON lines instead of text")
	global.Usage = func() {} // --help is printed below; errors are printed by flag
	if err := global.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout, prog, about, cmds, global)
			return 0
		}
		fmt.Fprintf(stderr, "run '%s --help' for usage\n", prog)
		return 2
	}
	args = global.Args()
	if len(args) == 0 || args[0] == "help" {
		if len(args) > 1 {
			args = append(args[1:], "--help")
		} else {
			usage(stdout, prog, about, cmds, global)
			return 0
		}
	}

	var cmd *Command
	var n int
	for _, c := range cmds {
		words := strings.Fields(c.Name)
		if len(words) > n && len(args) >= len(words) && equal(words, args[:len(words)]) {
			cmd, n = c, len(words)
		}
	}
	if cmd == nil {
		// A group of nested commands ("query"): list its members.
		var group []*Command
		for _, c := range cmds {
			if strings.HasPrefix(c.Name, args[0]+" ") {
				group = append(group, c)
			}
		}
		if len(group) > 0 {
			w, code := stderr, 2
			if len(args) == 1 || args[1] == "--help" || args[1] == "-h" || args[1] == "help" {
				w, code = stdout, 0
			} else {
				fmt.Fprintf(stderr, "%s: unknown command %q\n\n", prog, strings.Join(args, " "))
			}
			fmt.Fprintf(w, "Usage: %s %s COMMAND [flags] [args]\n\nCommands:\n", prog, args[0])
			for _, c := range group {
				fmt.Fprintf(w, "  %-24s %s\n", c.Name, c.Summary)
			}
			fmt.Fprintf(w, "\nRun '%s %s COMMAND --help' for a command's flags and exit codes.\n", prog, args[0])
			return code
		}
		fmt.Fprintf(stderr, "%s: unknown command %q; run '%s --help'\n", prog, strings.Join(args, " "), prog)
		return 2
	}
	args = args[n:]

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "%s: --log-level: %v\n", prog, err)
		return 2
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(stderr, opts)
	if *logJSON {
		h = slog.NewJSONHandler(stderr, opts)
	}
	env := &Env{Stdout: stdout, Stderr: stderr, Stdin: stdin, Log: slog.New(h), Prog: prog}

	fs := flag.NewFlagSet(prog+" "+cmd.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if cmd.Flags != nil {
		cmd.Flags(fs)
	}
	fs.Usage = func() {}
	args, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			commandUsage(stdout, prog, cmd, fs)
			return 0
		}
		fmt.Fprintf(stderr, "run '%s %s --help' for usage\n", prog, cmd.Name)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch {
	case cmd.NoArgs && len(args) != 0:
		err = Usagef("unexpected arguments %q", args)
	case cmd.Arg != "" && len(args) != 1:
		err = Usagef("want one %s", cmd.Arg)
	default:
		err = cmd.Run(ctx, env, args)
	}
	if err == nil {
		return 0
	}
	code := 1
	var ee *ExitError
	if errors.As(err, &ee) {
		code = ee.Code
		if ee.Err == nil {
			return code
		}
	}
	fmt.Fprintf(stderr, "%s %s: %v\n", prog, cmd.Name, err)
	if code == 2 {
		fmt.Fprintf(stderr, "run '%s %s --help' for usage\n", prog, cmd.Name)
	}
	return code
}

// parseInterspersed parses the flags wherever they stand among the
// arguments, as usage lines and examples write them ("touched /usr/ --exe
// httpd"); the flag package alone stops at the first argument that is not a
// flag. "--" ends the flags. It returns the arguments that are not flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		left := fs.Args()
		if len(left) == 0 {
			return rest, nil
		}
		if used := len(args) - len(left); used > 0 && args[used-1] == "--" {
			return append(rest, left...), nil
		}
		rest, args = append(rest, left[0]), left[1:]
	}
}

func equal(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func usage(w io.Writer, prog, about string, cmds []*Command, global *flag.FlagSet) {
	fmt.Fprintf(w, "%s\n\nUsage: %s [global flags] COMMAND [flags] [args]\n\nCommands:\n", about, prog)
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-24s %s\n", c.Name, c.Summary)
	}
	fmt.Fprintf(w, "\nGlobal flags:\n")
	global.SetOutput(w)
	global.PrintDefaults()
	fmt.Fprintf(w, "\nRun '%s COMMAND --help' for a command's flags and exit codes.\n", prog)
}

func commandUsage(w io.Writer, prog string, c *Command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: %s %s %s\n\n%s\n", prog, c.Name, c.Usage, c.Summary)
	if c.Help != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.Help))
	}
	var any bool
	fs.VisitAll(func(*flag.Flag) { any = true })
	if any {
		fmt.Fprintf(w, "\nFlags:\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
}
