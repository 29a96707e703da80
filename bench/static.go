package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// StaticProgram compiles the lifetime program (see [ProcsConfig.Path]) with
// gcc -static -O2 into dir and returns its path.
func StaticProgram(ctx context.Context, dir string) (string, error) {
	src := filepath.Join(dir, "pofrbench-life.c")
	bin := filepath.Join(dir, "pofrbench-life")
	if err := os.WriteFile(src, []byte(staticSource), 0o644); err != nil {
		return "", fmt.Errorf("write %s: %w", src, err)
	}
	out, err := exec.CommandContext(ctx, "gcc", "-static", "-O2", "-o", bin, src).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("compile static program with gcc: %w: %s", err, out)
	}
	return bin, nil
}
