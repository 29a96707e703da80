//go:build !linux

package sockdiag

import "testing"

// captureSockFrames needs the Linux kernel.
func captureSockFrames(t *testing.T, dir string) {
	t.Fatal("-update-sock needs Linux")
}
