package testutil

import (
	"fmt"
	"os"
)

// HasCap reports whether c is in the effective capability set of the calling
// process, read from CapEff in /proc/self/status.
func HasCap(c Cap) (bool, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false, fmt.Errorf("read capabilities: %w", err)
	}
	mask, err := parseCapEff(string(b))
	if err != nil {
		return false, fmt.Errorf("read capabilities from /proc/self/status: %w", err)
	}
	return c < 64 && mask&(1<<c) != 0, nil
}
