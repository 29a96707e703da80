//go:build unix

package durable

import (
	"os"
	"syscall"
)

// fileOwner returns the uid that owns the file of fi.
func fileOwner(fi os.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}
