package testutil

import (
	"testing"
	"time"
)

// WaitFor polls cond every 10 ms until it holds, and fails the test when d
// passes first, naming what it waited for.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	WaitEvery(t, d, 10*time.Millisecond, what, cond)
}

// WaitEvery is WaitFor polling every interval instead, for a cond that
// costs more than a glance (a directory listing, a process's output).
func WaitEvery(t testing.TB, d, interval time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(interval)
	}
}

// Await waits up to d for the one value of done (the error of what runs in
// a goroutine) and fails the test if it is an error or does not come in
// time, after calling onTimeout (e.g. to kill a process), naming what it
// waited for.
func Await(t testing.TB, done <-chan error, d time.Duration, what string, onTimeout ...func()) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(d):
		for _, f := range onTimeout {
			f()
		}
		t.Fatalf("%s: not done within %v", what, d)
	}
}
