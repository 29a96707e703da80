package cnproc

import "testing"

func TestExecComm(t *testing.T) {
	for _, c := range []struct {
		comm, filename string
		want           bool
	}{
		{"sh", "/bin/sh", true},
		{"echo", "/bin/echo", true},
		{"echo", "/bin/sh", false},
		{"true", "true", true},
		{"0123456789abcde", "/x/0123456789abcdefgh", true},
		{"0123456789abcdefgh", "/x/0123456789abcdefgh", false},
		{"", "/dir/", true},
	} {
		if got := execComm([]byte(c.comm), []byte(c.filename)); got != c.want {
			t.Errorf("execComm(%q, %q) = %v, want %v", c.comm, c.filename, got, c.want)
		}
	}
}
