package spool

import "testing"

func TestValidHostID(t *testing.T) {
	for id, want := range map[string]bool{"h-0001": true, "web1": true, "": false, "..": false, "a/b": false, "A": false, "-x": false} {
		if got := ValidHostID(id); got != want {
			t.Errorf("ValidHostID(%q) = %v, want %v", id, got, want)
		}
	}
}
