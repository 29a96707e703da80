package fleetsim

import (
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// TestBalancerSkipsDeadReceiver: with the first backend refusing
// connections, every connection reaches the second one, and the relay
// carries bytes both ways.
func TestBalancerSkipsDeadReceiver(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	live, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	go func() {
		for {
			c, err := live.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	b, err := newBalancer([]string{deadAddr, live.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	for i := range 3 {
		c, err := net.DialTimeout("tcp", b.addr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		msg := []byte{'p', 'o', 'f', 'r', byte('0' + i)}
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil || string(got) != string(msg) {
			t.Fatalf("connection %d: echo %q, %v", i, got, err)
		}
		c.Close()
	}
}

// TestCPUMeterCountsOwnProcess: the meter reads this process's CPU from
// /proc and counts only what was used after it started.
func TestCPUMeterCountsOwnProcess(t *testing.T) {
	m := newCPUMeter()
	m.add("self", os.Getpid(), false)
	deadline := time.Now().Add(20 * time.Second)
	for {
		x := 0
		for i := range 10_000_000 {
			x += i
		}
		_ = x
		if _, all := m.total(); all > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no CPU counted after 20 s of busy loops")
		}
	}
	by, all := m.total()
	if by["self"] != all {
		t.Errorf("by kind %v, total %v", by, all)
	}
}
