package bench

import (
	"fmt"
	"io"
	"os"
)

// Exit codes of the harness commands (pofr-bench, pofr-fleet).
const (
	ExitOK     = 0
	ExitFailed = 1 // a budget or correctness check FAILed
	ExitError  = 2 // the harness itself could not run
)

// Main runs a harness command: it prints run's error, if any, after the
// command's name on standard error and exits with run's code.
func Main(name string, run func() (int, error)) {
	code, err := run()
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
	}
	os.Exit(code)
}

// MarkdownOut returns where a harness writes its markdown report:
// standard output, and also the file path when it is set; close closes
// that file.
func MarkdownOut(path string) (w io.Writer, close func() error, err error) {
	if path == "" {
		return os.Stdout, func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, err
	}
	return io.MultiWriter(os.Stdout, f), f.Close, nil
}
