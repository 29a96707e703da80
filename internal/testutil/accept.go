package testutil

import (
	"io"
	"net"
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
