package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"syscall"
	"time"
)

// daemon is a long-running program the harness started (mariadbd,
// pofr-server serve, pofr-collector run, pofr-server load --watch), its
// output in a log file.
type daemon struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{} // closed when the process has exited
	err    error         // what Wait returned; read after exited is closed
}

// startDaemon starts cmd with its stdout and stderr appended to logPath. It
// starts and waits for it from a goroutine locked to its OS thread, because
// the kernel sends the parent-death signal (SIGTERM, so that nothing
// outlives a harness that died) when the starting thread ends, not the
// process.
func startDaemon(name, logPath string, cmd *exec.Cmd) (*daemon, error) {
	out, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	d := &daemon{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with this goroutine, after the daemon.
		runtime.LockOSThread()
		err := cmd.Start()
		out.Close()
		if err != nil {
			started <- err
			return
		}
		started <- nil
		d.err = cmd.Wait()
		close(d.exited)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return d, nil
}

// running reports whether the process has not exited yet.
func (d *daemon) running() bool {
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and waits up to grace for the process to exit, then
// kills it. It returns an error unless the process exited with status 0.
func (d *daemon) stop(grace time.Duration) error {
	if !d.running() {
		if d.err != nil {
			return fmt.Errorf("%s (pid %d) had exited: %v: %s", d.name, d.cmd.Process.Pid, d.err, d.logTail())
		}
		return nil
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop %s: %w", d.name, err)
	}
	select {
	case <-d.exited:
		if d.err != nil {
			return fmt.Errorf("stop %s: %w: %s", d.name, d.err, d.logTail())
		}
		return nil
	case <-time.After(grace):
		d.cmd.Process.Kill()
		<-d.exited
		return fmt.Errorf("stop %s: still running %v after SIGTERM, killed", d.name, grace)
	}
}

// logTail returns the end of the daemon's log, for error messages.
func (d *daemon) logTail() string {
	return fileTail(d.log, 2000)
}

// fileTail returns the last n bytes of a file, or the error reading it.
func fileTail(path string, n int64) string {
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

// waitLog waits up to timeout for a line of the daemon's log to match re
// and returns the match. It fails early when the daemon exits.
func (d *daemon) waitLog(ctx context.Context, re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	deadline := time.Now().Add(timeout)
	for {
		if b, err := os.ReadFile(d.log); err == nil {
			if m := re.FindStringSubmatch(string(b)); m != nil {
				return m, nil
			}
		}
		if !d.running() {
			return nil, fmt.Errorf("%s exited (%v) before logging %q: %s", d.name, d.err, re, d.logTail())
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s: no %q in its log after %v: %s", d.name, re, timeout, d.logTail())
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// runTool runs a short command and returns its standard output; the error
// carries its standard error.
func runTool(ctx context.Context, name string, args ...string) ([]byte, error) {
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
