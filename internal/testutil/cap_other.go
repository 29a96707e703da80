//go:build !linux

package testutil

import "errors"

// HasCap reports whether c is in the effective capability set of the calling
// process. Capabilities exist on Linux only; elsewhere it returns an error.
func HasCap(c Cap) (bool, error) {
	return false, errors.New("capabilities are Linux-only")
}
