package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"time"
)

// server is a running daemon started by this package.
type server struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	err    error         // what Wait returned; read after exited is closed
}

// startServer starts cmd. It starts and waits for it from a goroutine locked
// to its OS thread, because the kernel sends the parent-death signal (see
// serverAttr) when the starting thread ends, not the process: the thread must
// live exactly as long as the server.
func startServer(cmd *exec.Cmd) (*server, error) {
	s := &server{cmd: cmd, exited: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with this goroutine, after the server.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		s.err = cmd.Wait()
		close(s.exited)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", filepath.Base(cmd.Path), err)
	}
	return s, nil
}

// running reports whether the process has not exited yet.
func (s *server) running() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and waits up to grace for the process to exit, then
// kills it. It returns an error unless the process exited with status 0 on
// SIGTERM.
func (s *server) stop(grace time.Duration) error {
	name := filepath.Base(s.cmd.Path)
	if !s.running() {
		return fmt.Errorf("%s (pid %d) had already exited: %v", name, s.cmd.Process.Pid, s.err)
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	select {
	case <-s.exited:
		if s.err != nil {
			return fmt.Errorf("stop %s: %w", name, s.err)
		}
		return nil
	case <-time.After(grace):
		s.cmd.Process.Kill()
		<-s.exited
		return fmt.Errorf("stop %s: still running %v after SIGTERM, killed", name, grace)
	}
}

// lookTool finds a program in PATH or in the sbin and bin directories, which
// an unprivileged PATH may lack.
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}
