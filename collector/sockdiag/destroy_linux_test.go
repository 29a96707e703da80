package sockdiag

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pofr/pofr/internal/testutil"
)

// TestDestroyGate drives a destroyGate over a datagram socket pair the way
// the process reader does: the gate is readable at the first datagram
// after a quiet spell, then only when its timer fires while datagrams keep
// coming, and again at the first datagram once a read found nothing.
func TestDestroyGate(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	g, err := newDestroyGate(fds[0])
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	g.delay = 300 * time.Millisecond
	readable := func() bool {
		p := []unix.PollFd{{Fd: int32(g.ep), Events: unix.POLLIN}}
		n, err := unix.Poll(p, 0)
		if err != nil {
			t.Fatal(err)
		}
		return n > 0
	}
	send := func() {
		if _, err := unix.Write(fds[1], []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	// read empties the socket and reports whether it found anything.
	read := func() bool {
		got := false
		for {
			if _, _, err := unix.Recvfrom(fds[0], make([]byte, 8), unix.MSG_DONTWAIT); err != nil {
				return got
			}
			got = true
		}
	}
	if readable() || !g.due(time.Now()) {
		t.Fatal("a new gate: readable or not due")
	}
	send()
	testutil.WaitFor(t, 5*time.Second, "the gate readable at the first datagram", readable)

	// A read that found datagrams: the socket is out of the set, the timer
	// wakes the reader after the delay, not the next datagram.
	now := time.Now()
	if !read() {
		t.Fatal("nothing to read")
	}
	if err := g.after(now, true, false); err != nil {
		t.Fatal(err)
	}
	send()
	if readable() && time.Since(now) < g.delay {
		t.Error("readable at a datagram within the delay")
	}
	if g.due(now) || !g.due(now.Add(g.delay)) {
		t.Errorf("due: %v at the read, %v after the delay", g.due(now), g.due(now.Add(g.delay)))
	}
	testutil.WaitFor(t, 5*time.Second, "the timer", readable)
	if time.Since(now) < g.delay {
		t.Errorf("readable after %v, before the delay %v", time.Since(now), g.delay)
	}
	if !g.due(time.Now()) {
		t.Error("timer fired, read not due")
	}

	// A read that finds nothing: back to the socket, timer stopped.
	now = time.Now()
	read()
	if err := g.after(now, false, false); err != nil {
		t.Fatal(err)
	}
	if readable() {
		t.Error("readable with an empty socket and the timer stopped")
	}
	send()
	testutil.WaitFor(t, 5*time.Second, "the gate readable at a datagram after a quiet spell", readable)

	// A read cut short by its bound keeps the socket in the set.
	now = time.Now()
	if err := g.after(now, true, false); err != nil {
		t.Fatal(err)
	}
	if err := g.after(now, true, true); err != nil {
		t.Fatal(err)
	}
	if !readable() || !g.due(now) {
		t.Error("a read cut short: the gate must stay readable and due while datagrams are queued")
	}
}
