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
	return compileC(ctx, dir, "pofrbench-life", staticSource)
}

// ExitProgram compiles the cheapest program to exec into dir and returns its
// path: static, no libc (gcc -static -nostdlib), one exit syscall at _start.
// It is the A/B section's workload, so that what an observer adds to an exec
// is not hidden in the program's own start-up.
func ExitProgram(ctx context.Context, dir string) (string, error) {
	return compileC(ctx, dir, "pofrbench-exit", exitSource, "-nostdlib", "-fno-stack-protector")
}

// compileC writes src to dir/name.c and compiles it with gcc -static -O2
// and the extra flags into dir/name.
func compileC(ctx context.Context, dir, name, src string, flags ...string) (string, error) {
	path := filepath.Join(dir, name+".c")
	bin := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	args := append(append([]string{"-static", "-O2"}, flags...), "-o", bin, path)
	out, err := exec.CommandContext(ctx, "gcc", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("compile %s with gcc: %w: %s", name, err, out)
	}
	return bin, nil
}

// exitSource is [ExitProgram]'s source: _start makes the exit syscall with
// status 0 (x86_64 and arm64).
const exitSource = `void _start(void) {
#if defined(__x86_64__)
	__asm__ volatile("mov $60, %eax\n\txor %edi, %edi\n\tsyscall");
#elif defined(__aarch64__)
	__asm__ volatile("mov x8, #93\n\tmov x0, #0\n\tsvc #0");
#else
#error "pofrbench-exit: add this architecture's exit syscall"
#endif
	for (;;) {}
}
`
