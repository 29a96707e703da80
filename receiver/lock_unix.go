//go:build unix

package receiver

import (
	"fmt"
	"os"
	"syscall"

	"github.com/pofr/pofr/internal/statedir"
)

// lockState takes the state directory's exclusive lock, which orders the
// server's and the admin commands' changes to requests and the registry.
func lockState(state statedir.Dir) (unlock func(), err error) {
	if err := os.MkdirAll(string(state), 0o700); err != nil {
		return nil, fmt.Errorf("lock state: %w", err)
	}
	f, err := os.OpenFile(state.Lock(), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock state: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock state: %w", err)
	}
	return func() { f.Close() }, nil
}
