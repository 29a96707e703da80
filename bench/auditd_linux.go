package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// execRule is the audit rule under test: every execve and execveat of
// 64-bit programs, the baseline pofr is compared with.
var execRule = []string{"always,exit", "-F", "arch=b64", "-S", "execve", "-S", "execveat"}

// auditdConf is Debian's auditd.conf with the baseline's changes: RAW
// format, a private log that never rotates, no plugins, no libwrap, no
// actions that could suspend logging.
const auditdConf = `local_events = yes
write_logs = yes
log_file = %[1]s/audit.log
log_group = root
log_format = RAW
flush = INCREMENTAL_ASYNC
freq = 50
max_log_file = 8
num_logs = 5
priority_boost = 4
name_format = NONE
max_log_file_action = IGNORE
space_left = 75
space_left_action = IGNORE
admin_space_left = 50
admin_space_left_action = IGNORE
disk_full_action = IGNORE
disk_error_action = IGNORE
use_libwrap = no
tcp_listen_queue = 5
tcp_max_per_addr = 1
tcp_client_max_idle = 0
transport = TCP
distribute_network = no
q_depth = 2000
overflow_action = IGNORE
max_restarts = 10
plugin_dir = %[1]s/plugins.d
end_of_event_timeout = 2
`

// Auditd is an auditd the harness started without systemd, writing a RAW
// log into a private directory, and the audit state to restore.
type Auditd struct {
	Dir     string
	Log     string // the RAW log
	PID     int
	Kauditd int // pid of the kauditd kernel thread
	prior   AuditStatus
	cmd     *exec.Cmd
	done    chan error
	log     *slog.Logger
	ruled   bool
}

func auditctl(ctx context.Context, args ...string) ([]byte, error) {
	out, err := exec.CommandContext(ctx, "auditctl", args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("auditctl %v: %w: %s", args, err, out)
	}
	return out, nil
}

// AuditStatusNow runs auditctl -s.
func AuditStatusNow(ctx context.Context) (AuditStatus, error) {
	out, err := auditctl(ctx, "-s")
	if err != nil {
		return AuditStatus{}, err
	}
	return ParseAuditStatus(out)
}

// StartAuditd starts auditd -n with a private configuration in dir (which
// must exist), after checking that the harness may: audit not locked, no
// other audit daemon, no rules loaded. It sets the baseline's kernel
// settings (backlog 8192, backlog wait 60 s). Stop undoes everything.
func StartAuditd(ctx context.Context, dir string, proc ProcFS, log *slog.Logger) (*Auditd, error) {
	if _, err := exec.LookPath("auditd"); err != nil {
		return nil, fmt.Errorf("find auditd (apt-get install auditd): %w", err)
	}
	prior, err := AuditStatusNow(ctx)
	if err != nil {
		return nil, err
	}
	switch {
	case prior.Enabled == 2:
		return nil, ErrAuditLocked
	case prior.PID != 0:
		return nil, fmt.Errorf("%w (pid %d)", ErrAuditBusy, prior.PID)
	}
	out, err := auditctl(ctx, "-l")
	if err != nil {
		return nil, err
	}
	if rules := ParseAuditRules(out); len(rules) > 0 {
		return nil, fmt.Errorf("%w: %q", ErrAuditRules, rules)
	}
	if err := os.MkdirAll(filepath.Join(dir, "plugins.d"), 0o700); err != nil {
		return nil, fmt.Errorf("start auditd: %w", err)
	}
	conf := filepath.Join(dir, "auditd.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, auditdConf, dir), 0o600); err != nil {
		return nil, fmt.Errorf("start auditd: %w", err)
	}
	a := &Auditd{Dir: dir, Log: filepath.Join(dir, "audit.log"), prior: prior, done: make(chan error, 1), log: log}
	a.cmd = exec.Command("auditd", "-n", "-c", dir)
	a.cmd.Stdout, a.cmd.Stderr = nil, nil
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := a.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start auditd: %w", err)
	}
	a.PID = a.cmd.Process.Pid
	go func() { a.done <- a.cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := AuditStatusNow(ctx)
		if err == nil && st.PID == a.PID && st.Enabled == 1 {
			break
		}
		select {
		case err := <-a.done:
			a.done <- err
			a.restore(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("start auditd: exited at once: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			a.Stop(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("start auditd: pid %d did not register with the kernel in 10 s", a.PID)
		}
	}
	if _, err := auditctl(ctx, "-b", "8192", "--backlog_wait_time", "60000"); err != nil {
		a.Stop(context.WithoutCancel(ctx))
		return nil, err
	}
	if a.Kauditd, err = proc.KernelThread("kauditd"); err != nil {
		a.Stop(context.WithoutCancel(ctx))
		return nil, err
	}
	return a, nil
}

// AddRule loads the execve rule.
func (a *Auditd) AddRule(ctx context.Context) error {
	if _, err := auditctl(ctx, append([]string{"-a"}, execRule...)...); err != nil {
		return err
	}
	a.ruled = true
	return nil
}

// DeleteRule removes the execve rule.
func (a *Auditd) DeleteRule(ctx context.Context) error {
	if !a.ruled {
		return nil
	}
	if _, err := auditctl(ctx, append([]string{"-d"}, execRule...)...); err != nil {
		return err
	}
	a.ruled = false
	return nil
}

// LogSize returns the size of the log now.
func (a *Auditd) LogSize() int64 {
	fi, err := os.Stat(a.Log)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// Drain waits until the log has stopped growing for quiet, or max passed.
func (a *Auditd) Drain(quiet, max time.Duration) {
	last, since, end := a.LogSize(), time.Now(), time.Now().Add(max)
	for time.Now().Before(end) {
		time.Sleep(100 * time.Millisecond)
		if s := a.LogSize(); s != last {
			last, since = s, time.Now()
		} else if time.Since(since) >= quiet {
			return
		}
	}
}

// Stop removes the rule, stops auditd and puts the kernel's audit state
// back to what StartAuditd found. It is safe to call more than once.
func (a *Auditd) Stop(ctx context.Context) error {
	var errs []error
	if err := a.DeleteRule(ctx); err != nil {
		errs = append(errs, err)
	}
	if a.cmd != nil && a.cmd.Process != nil {
		a.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-a.done:
		case <-time.After(10 * time.Second):
			a.cmd.Process.Kill()
			<-a.done
			errs = append(errs, fmt.Errorf("stop auditd pid %d: killed after 10 s", a.PID))
		}
		a.cmd = nil
	}
	errs = append(errs, a.restore(ctx))
	return errors.Join(errs...)
}

// restore sets enabled, failure, rate limit, backlog limit and backlog wait
// back to the values found at start.
func (a *Auditd) restore(ctx context.Context) error {
	p := a.prior
	_, err := auditctl(ctx, "-e", strconv.Itoa(p.Enabled), "-f", strconv.Itoa(p.Failure),
		"-r", strconv.Itoa(p.RateLimit), "-b", strconv.Itoa(p.BacklogLimit),
		"--backlog_wait_time", strconv.Itoa(p.BacklogWaitTime))
	if err != nil {
		return fmt.Errorf("restore audit state: %w", err)
	}
	now, err := AuditStatusNow(ctx)
	if err != nil {
		return fmt.Errorf("restore audit state: %w", err)
	}
	if now.Enabled != p.Enabled || now.PID != 0 || now.BacklogLimit != p.BacklogLimit {
		return fmt.Errorf("restore audit state: now enabled %d pid %d backlog_limit %d, want %d 0 %d",
			now.Enabled, now.PID, now.BacklogLimit, p.Enabled, p.BacklogLimit)
	}
	a.log.Debug("audit state restored", "enabled", now.Enabled, "backlog_limit", now.BacklogLimit)
	return nil
}
