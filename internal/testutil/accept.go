package testutil

import (
	"io"
	"net"
	"testing"
)

// Accept accepts connections on ln in a goroutine until ln is closed and
// hands each to handle, in that goroutine.
func Accept(ln net.Listener, handle func(net.Conn)) {
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			handle(c)
		}
	}()
}

// Drain is a handle for Accept: it reads c to its end in a goroutine of its
// own and closes it.
func Drain(c net.Conn) {
	go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
}

// Listen listens on network and addr (port 0 for any free one) and closes
// the listener when the test ends; it fails the test if it cannot listen.
func Listen(t testing.TB, network, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}
