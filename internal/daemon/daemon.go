// Package daemon runs the long-lived helper programs of the tests and of
// make bench (mariadbd, sshd, pofr-server serve, pofr-collector run …) so
// that none outlives the process that started it, and finds system tools
// that a sudo or unprivileged PATH may lack.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
)

// Process is a running program started by [Start].
type Process struct {
	name   string
	cmd    *exec.Cmd
	log    string        // file with its output, "" when the caller set Stdout/Stderr
	exited chan struct{} // closed when the process has exited
	err    error         // what Wait returned; read after exited is closed
	killed atomic.Bool   // Kill was called
}

// Start starts cmd, named name in errors. With logPath, its standard output
// and error are appended to that file; otherwise they are as the caller set
// them. Unless the caller set cmd.SysProcAttr, the process gets SIGTERM when
// the starting thread ends (see [Attr]). It is started and waited for from a
// goroutine locked to its OS thread, because the kernel sends that
// parent-death signal when the starting thread ends, not the process: the
// thread must live exactly as long as the program.
func Start(name string, cmd *exec.Cmd, logPath string) (*Process, error) {
	var out *os.File
	if logPath != "" {
		var err error
		if out, err = os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err != nil {
			return nil, fmt.Errorf("start %s: %w", name, err)
		}
		cmd.Stdout, cmd.Stderr = out, out
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = Attr(nil)
	}
	p := &Process{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with this goroutine, after the program.
		runtime.LockOSThread()
		err := cmd.Start()
		if out != nil {
			out.Close()
		}
		if err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.exited)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return p, nil
}

// Name returns the name given to Start.
func (p *Process) Name() string { return p.name }

// LogPath returns the log file given to Start ("" for none).
func (p *Process) LogPath() string { return p.log }

// Pid returns the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is what waiting for the process returned; valid once Exited is closed.
func (p *Process) Err() error { return p.err }

// Running reports whether the process has not exited yet.
func (p *Process) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL and waits until the process has exited.
func (p *Process) Kill() {
	p.killed.Store(true)
	p.cmd.Process.Kill()
	<-p.exited
}

// Killed reports whether Kill was called.
func (p *Process) Killed() bool { return p.killed.Load() }

// Stop sends SIGTERM and waits up to grace for the process to exit, then
// kills it. It returns an error unless the process exited with status 0
// (also when it had exited before).
func (p *Process) Stop(grace time.Duration) error {
	if !p.Running() {
		if p.err != nil {
			return fmt.Errorf("%s (pid %d) had exited: %v%s", p.name, p.Pid(), p.err, p.tail())
		}
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop %s: %w", p.name, err)
	}
	select {
	case <-p.exited:
		if p.err != nil {
			return fmt.Errorf("stop %s: %w%s", p.name, p.err, p.tail())
		}
		return nil
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("stop %s: still running %v after SIGTERM, killed", p.name, grace)
	}
}

// LogTail returns the end of the process's log file, for error messages
// ("" without one).
func (p *Process) LogTail() string {
	if p.log == "" {
		return ""
	}
	return FileTail(p.log, 2000)
}

func (p *Process) tail() string {
	if t := p.LogTail(); t != "" {
		return ": " + t
	}
	return ""
}

// WaitLog waits up to timeout for the process's log to match re and returns
// the match. It fails early when the process exits.
func (p *Process) WaitLog(ctx context.Context, re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	deadline := time.Now().Add(timeout)
	for {
		if b, err := os.ReadFile(p.log); err == nil {
			if m := re.FindStringSubmatch(string(b)); m != nil {
				return m, nil
			}
		}
		if !p.Running() {
			return nil, fmt.Errorf("%s exited (%v) before logging %q: %s", p.name, p.err, re, p.LogTail())
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s: no %q in its log after %v: %s", p.name, re, timeout, p.LogTail())
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// FileTail returns the last n bytes of a file, or the error reading it.
func FileTail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > n {
		f.Seek(fi.Size()-n, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}
