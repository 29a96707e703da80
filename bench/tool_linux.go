package bench

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
)

// RunTool runs a short command and returns its standard output; the error
// carries its standard error.
func RunTool(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", filepath.Base(name), firstArgs(args), err, stderr.String())
	}
	return out, nil
}

// firstArgs names a command by its leading non-flag arguments ("schema apply").
func firstArgs(args []string) string {
	var s string
	for _, a := range args {
		if len(a) > 0 && a[0] == '-' {
			break
		}
		if s != "" {
			s += " "
		}
		s += a
	}
	return s
}

// limitedBuffer keeps the last 4 KiB written to it.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.b = append(l.b, p...)
	if len(l.b) > 4096 {
		l.b = l.b[len(l.b)-4096:]
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }
