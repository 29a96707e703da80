//go:build !linux

package collector

import (
	"context"
	"errors"
)

// ErrFileUnsupported is returned by NewFileSource on systems other than Linux.
var ErrFileUnsupported = errors.New("collector: file source needs Linux")

// FileSource is the file source; it only works on Linux.
type FileSource struct{}

// NewFileSource returns ErrFileUnsupported outside Linux.
func NewFileSource(FileOptions) (*FileSource, error) { return nil, ErrFileUnsupported }

// Run returns ErrFileUnsupported.
func (*FileSource) Run(context.Context) error { return ErrFileUnsupported }

// Stats returns zero counters.
func (*FileSource) Stats() FileStats { return FileStats{} }
