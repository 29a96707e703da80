package testutil

import (
	"io"
	"os"
	"os/exec"
	"testing"
)

// Pipes connects pipes to the standard input and output of cmd, a helper
// process not yet started, and its standard error to the test's.
func Pipes(t testing.TB, cmd *exec.Cmd) (stdin io.WriteCloser, stdout io.ReadCloser) {
	t.Helper()
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if stdout, err = cmd.StdoutPipe(); err != nil {
		t.Fatal(err)
	}
	return stdin, stdout
}
