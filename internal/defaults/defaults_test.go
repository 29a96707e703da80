package defaults

import (
	"log/slog"
	"testing"
	"time"
)

func TestPositive(t *testing.T) {
	for _, c := range []struct{ in, want time.Duration }{
		{0, time.Second}, {-1, time.Second}, {time.Millisecond, time.Millisecond},
	} {
		got := c.in
		Positive(&got, time.Second)
		if got != c.want {
			t.Errorf("Positive(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	u := uint32(0)
	Positive(&u, 7)
	if u != 7 {
		t.Errorf("Positive(uint32 0) = %d, want 7", u)
	}
}

func TestZero(t *testing.T) {
	s := ""
	Zero(&s, "/proc")
	if s != "/proc" {
		t.Errorf("Zero(\"\") = %q", s)
	}
	s = "/host/proc"
	Zero(&s, "/proc")
	if s != "/host/proc" {
		t.Errorf("Zero kept %q, want /host/proc", s)
	}
	var l *slog.Logger
	d := slog.New(slog.DiscardHandler)
	Zero(&l, d)
	if l != d {
		t.Error("Zero(nil logger) did not set the default")
	}
}
