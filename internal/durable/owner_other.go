//go:build !unix

package durable

import "os"

// fileOwner reports no owner: files have no uid here.
func fileOwner(os.FileInfo) (int, bool) { return 0, false }
