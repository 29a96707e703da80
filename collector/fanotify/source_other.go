//go:build !linux

package fanotify

import (
	"context"
	"errors"
)

// ErrUnsupported is returned by New on systems other than Linux.
var ErrUnsupported = errors.New("collector: file source needs Linux")

// Source is the file source; it only works on Linux.
type Source struct{}

// New returns ErrUnsupported outside Linux.
func New(Options) (*Source, error) { return nil, ErrUnsupported }

// Run returns ErrUnsupported.
func (*Source) Run(context.Context) error { return ErrUnsupported }

// Stats returns zero counters.
func (*Source) Stats() Stats { return Stats{} }
