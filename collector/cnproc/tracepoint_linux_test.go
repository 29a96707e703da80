package cnproc

import (
	"testing"
)

// TestPrivTracepointKnownTree runs the known-tree test on the tracepoint
// capture.
func TestPrivTracepointKnownTree(t *testing.T) {
	knownTree(t, Options{Tracepoint: true}, ModeTracepoint)
}
