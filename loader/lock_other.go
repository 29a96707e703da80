//go:build !unix

package loader

import (
	"errors"
	"fmt"
	"os"
)

// fileLock is an exclusively created file where flock(2) does not exist. A
// crash leaves it behind; remove it by hand.
type fileLock struct{ path string }

func lockFile(path string) (*fileLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("%w (lock %s)", ErrLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	f.Close()
	return &fileLock{path: path}, nil
}

func (l *fileLock) release() { os.Remove(l.path) }
