//go:build !linux

package bench

import "errors"

var errESRCH = errors.New("no such process")
