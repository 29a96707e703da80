//go:build !unix

package spool

import (
	"os"
	"path/filepath"
)

// lockDir opens dir's lock file. Without flock there is no exclusion on this
// system: run one writer per spool.
func lockDir(dir string) (*os.File, error) {
	return os.OpenFile(filepath.Join(dir, LockName), os.O_RDWR|os.O_CREATE, 0o600)
}
