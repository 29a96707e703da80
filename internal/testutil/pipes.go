package testutil

import (
	"io"
	"os"
	"os/exec"
	"sync"
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

// StartHeld starts cmd, a process that runs until its standard input ends,
// with its standard input on a pipe: it lives until release closes the pipe
// (or the test ends), so that a source that reads /proc when it gets to an
// event cannot miss it. done receives cmd.Wait's result.
func StartHeld(t testing.TB, cmd *exec.Cmd) (done <-chan error, release func()) {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := make(chan error, 1)
	go func() { ch <- cmd.Wait() }()
	release = sync.OnceFunc(func() { stdin.Close() })
	t.Cleanup(release)
	return ch, release
}
