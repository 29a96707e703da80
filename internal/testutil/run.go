package testutil

import (
	"context"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Go runs run (a source's or server's Run method) in a goroutine until the
// returned stop is called or the test ends. stop cancels run's context, waits
// up to 10 s for it to return and fails the test if it returned an error or
// did not return; it is safe to call more than once.
func Go(t testing.TB, name string, run func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s: %v", name, err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("%s did not return within 10 s of cancel", name)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// StartCmd starts cmd and, when the test ends, stops it with SIGTERM (SIGKILL
// after 30 s, which fails the test) and then calls after, if not nil (e.g.
// to log the command's output when the test failed).
func StartCmd(t testing.TB, cmd *exec.Cmd, after func()) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("%s did not stop within 30 s of SIGTERM", cmd.Path)
		}
		if after != nil {
			after()
		}
	})
}
