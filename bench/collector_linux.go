package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pofr/pofr/internal/daemon"
)

// Collector is a pofr-collector the harness runs as a black box:
//
//	pofr-collector run --standalone --config-dir DIR --spool-dir DIR --profile NAME
//
// standalone means no server, a local signing key and host id "local";
// SIGTERM makes it seal the open segment and exit.
type Collector struct {
	PID       int
	Dir       string // its scratch directory: config/, spool/, collector.log
	SpoolDir  string
	ConfigDir string
	LogPath   string
	cmd       *exec.Cmd
	done      chan error
}

// CollectorExit is the kernel's account of a collector's whole life, from
// wait4: CPU of all its threads and its peak resident set.
type CollectorExit struct {
	At     time.Time
	CPU    time.Duration
	MaxRSS int64 // bytes
}

// StartCollector starts bin in dir (created if missing), with extra flags
// after the profile, and waits settle for it to subscribe to its sources.
// It fails if the collector exits during that time.
func StartCollector(ctx context.Context, bin, profile, dir string, settle time.Duration, extra ...string) (*Collector, error) {
	c := &Collector{Dir: dir, SpoolDir: filepath.Join(dir, "spool"), ConfigDir: filepath.Join(dir, "config"),
		LogPath: filepath.Join(dir, "collector.log"), done: make(chan error, 1)}
	for _, d := range []string{c.SpoolDir, c.ConfigDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("start collector: %w", err)
		}
	}
	logf, err := os.Create(c.LogPath)
	if err != nil {
		return nil, fmt.Errorf("start collector: %w", err)
	}
	defer logf.Close()
	c.cmd = exec.Command(bin, append([]string{"run", "--standalone", "--config-dir", c.ConfigDir, "--spool-dir", c.SpoolDir,
		"--profile", profile}, extra...)...)
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	// If the harness dies, the collector seals and exits rather than
	// recording on.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start collector %s: %w", bin, err)
	}
	c.PID = c.cmd.Process.Pid
	go func() { c.done <- c.cmd.Wait() }()
	select {
	case err := <-c.done:
		c.cmd = nil
		return nil, fmt.Errorf("start collector: exited during the first %v (%v): %s", settle, err, c.logTail())
	case <-time.After(settle):
		return c, nil
	case <-ctx.Done():
		c.Kill()
		return nil, ctx.Err()
	}
}

// logTail returns the end of the collector's log, for error messages.
func (c *Collector) logTail() string {
	return strings.TrimSpace(daemon.FileTail(c.LogPath, 2000))
}

// Stop sends SIGTERM and waits up to timeout for the collector to seal and
// exit 0.
func (c *Collector) Stop(timeout time.Duration) (CollectorExit, error) {
	if c.cmd == nil {
		return CollectorExit{}, fmt.Errorf("stop collector: not running")
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case err = <-c.done:
	case <-time.After(timeout):
		c.cmd.Process.Kill()
		<-c.done
		err = fmt.Errorf("killed: no exit %v after SIGTERM", timeout)
	}
	ex := CollectorExit{At: time.Now()}
	if ps := c.cmd.ProcessState; ps != nil {
		ex.CPU = ps.UserTime() + ps.SystemTime()
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			ex.MaxRSS = ru.Maxrss << 10
		}
	}
	c.cmd = nil
	if err != nil {
		return ex, fmt.Errorf("stop collector pid %d: %w: %s", c.PID, err, c.logTail())
	}
	return ex, nil
}

// StopAndRead stops the collector (see Stop) and reads what it sealed into
// its spool.
func (c *Collector) StopAndRead(timeout time.Duration) (CollectorExit, *SpoolRows, error) {
	ex, err := c.Stop(timeout)
	if err != nil {
		return ex, nil, err
	}
	rows, err := ReadSpool(c.SpoolDir)
	return ex, rows, err
}

// Kill ends a collector that is still running, without waiting for a seal.
func (c *Collector) Kill() {
	if c.cmd != nil {
		c.cmd.Process.Kill()
		<-c.done
		c.cmd = nil
	}
}
