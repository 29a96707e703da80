package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/pofr/pofr/collector/agent"
	"github.com/pofr/pofr/collector/containers"
	"github.com/pofr/pofr/internal/cli"
	"github.com/pofr/pofr/profiles"
)

// Exit codes of run.
const (
	exitAlreadyRunning = 4 // another collector holds the lock
	exitNotRegistered  = 5 // no server.json and no --standalone
)

type runFlags struct {
	profile    string
	configDir  string
	stateDir   string
	spoolDir   string
	standalone bool
	hostID     string
	daemon     bool
	ifNotRun   bool
	replace    bool
	logFile    string
	status     time.Duration
	argvMax    int
	priority   string
	noFile     bool
	noSock     bool
	noSockTP   bool
	noDNS      bool
	noProcTP   bool
	noExeHash  bool
	noLogins   bool
	noCtrs     bool
	ctrRoot    string
	exeHashMax int64
	fileOps    string
	segBytes   int64
	segAge     time.Duration
	quota      int64
	forcePoll  bool
	drain      time.Duration
	metrics    string
}

// runCommand is 'run', the collector itself.
func runCommand() *cli.Command {
	var f runFlags
	return &cli.Command{
		Name:    "run",
		Summary: "record this host: processes, file access and sockets into the spool, and push it",
		Usage:   "[flags]",
		Help: `Runs the collector in the foreground until SIGTERM or SIGINT, which seal the open
segment before exiting. Needs root (cn_proc, fanotify, sock_diag, SCHED_FIFO).

The host must be registered first ('pofr-collector register --server HOST'), unless
--standalone is given: then segments are signed with a local key under --config-dir,
named with host id "local" (or --host-id) and kept in the spool, not uploaded.

Only one collector runs per state directory: a second one exits 4 with a message,
or 0 with --if-not-running, so that a cron line works as a watchdog:

  */5 * * * * root pofr-collector run --daemon --if-not-running

--replace stops the running collector first and waits for it, so that
'pofr-collector run --daemon --replace' restarts it after an upgrade.

--daemon detaches (new session, logs to --log-file) once the collector has started.

Exit codes: 0 stopped cleanly (or already running with --if-not-running),
1 error, 2 usage, 4 already running, 5 not registered.`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&f.profile, "profile", "default", "collection profile: "+strings.Join(profiles.Names(), ", ")+", or a JSON file in their format")
			fs.StringVar(&f.configDir, "config-dir", "/etc/pofr", "keys and server registration")
			fs.StringVar(&f.stateDir, "state-dir", "", "lock, status file and (by default) the spool (default /var/lib/pofr, or the parent of --spool-dir)")
			fs.StringVar(&f.spoolDir, "spool-dir", "", "segment spool (default STATE-DIR/spool)")
			fs.BoolVar(&f.standalone, "standalone", false, "record locally without a server (no upload)")
			fs.StringVar(&f.hostID, "host-id", "local", "host id for --standalone")
			fs.BoolVar(&f.daemon, "daemon", false, "detach once started")
			fs.BoolVar(&f.ifNotRun, "if-not-running", false, "exit 0 quietly if a collector already runs")
			fs.BoolVar(&f.replace, "replace", false, "stop a running collector first (waits up to 30 s for it to finish), e.g. after an upgrade")
			fs.StringVar(&f.logFile, "log-file", "/var/log/pofr-collector.log", "log file with --daemon")
			fs.DurationVar(&f.status, "status-interval", time.Minute, "how often to log a status line")
			fs.IntVar(&f.argvMax, "argv-max", 0, "override the profile's argv cap (bytes)")
			fs.StringVar(&f.priority, "priority", "", "override the reader priority: fifo, nice or normal")
			fs.BoolVar(&f.noFile, "no-file", false, "do not record file access")
			fs.BoolVar(&f.noSock, "no-sock", false, "do not record sockets")
			fs.BoolVar(&f.noProcTP, "no-proc-tracepoints", false, "capture processes with cn_proc only, not from kernel tracepoint rings (the fallback)")
			fs.BoolVar(&f.noSockTP, "no-sock-tracepoints", false, "name connection owners from /proc fd scans only, not from kernel tracepoints")
			fs.BoolVar(&f.noDNS, "no-dns", false, "do not record DNS queries and answers (packet socket on port 53)")
			fs.BoolVar(&f.noExeHash, "no-exe-hash", false, "do not record the SHA-256 of executed files")
			fs.BoolVar(&f.noLogins, "no-logins", false, "do not record logins from /var/log/wtmp and /var/log/btmp")
			fs.BoolVar(&f.noCtrs, "no-containers", false, "do not record container names (runtime name, image, pod) from the container runtimes' state")
			fs.StringVar(&f.ctrRoot, "container-root", "", "`dir` prefixed to the container runtimes' state paths (/var/lib/docker, /run/containerd, /var/lib/containerd, /var/lib/containers/storage, /home); default /")
			fs.Int64Var(&f.exeHashMax, "exe-hash-max-size", 0, "largest executable hashed, in bytes (0: 256 MiB); larger ones are recorded with skip too_large")
			fs.StringVar(&f.fileOps, "file-ops", "", "override the profile's file ops, comma-separated: open, exec, write, create, delete, rename")
			fs.Int64Var(&f.segBytes, "segment-bytes", 0, "override the profile's segment size")
			fs.DurationVar(&f.segAge, "segment-age", 0, "override the profile's segment age")
			fs.Int64Var(&f.quota, "quota", 0, "override the profile's spool quota (bytes)")
			fs.StringVar(&f.metrics, "metrics-file", "", "write Prometheus metrics to this node_exporter textfile every 5 s (e.g. /var/lib/node_exporter/textfile_collector/pofr.prom)")
			fs.DurationVar(&f.drain, "drain-timeout", 5*time.Second, "at stop, push the last segments for up to this long")
			fs.BoolVar(&f.forcePoll, "poll", false, "use /proc polling instead of cn_proc (diagnostics)")
		},
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			if len(args) > 0 {
				return cli.Usagef("run takes no arguments, got %q", args)
			}
			return runCollector(ctx, env, &f)
		},
	}
}

// paths resolves the state and spool directories from the flags.
func (f *runFlags) paths() (state, spoolDir string) {
	state, spoolDir = f.stateDir, f.spoolDir
	switch {
	case state == "" && spoolDir != "":
		state = filepath.Dir(filepath.Clean(spoolDir))
	case state == "":
		state = "/var/lib/pofr"
	}
	if spoolDir == "" {
		spoolDir = filepath.Join(state, "spool")
	}
	return state, spoolDir
}

func runCollector(ctx context.Context, env *cli.Env, f *runFlags) error {
	log := env.Log
	prof, err := profiles.Load(f.profile)
	if err != nil {
		return cli.Usagef("%v", err)
	}
	applyOverrides(prof, f)
	if err := prof.Validate(); err != nil {
		return cli.Usagef("%v", err)
	}
	state, spoolDir := f.paths()
	for _, d := range []string{state, spoolDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}

	if f.replace && !f.ifNotRun && os.Getenv("POFR_DAEMON_CHILD") == "" {
		if pid, err := stopCollector(ctx, filepath.Join(state, "collector.pid"), 30*time.Second); err != nil {
			return err
		} else if pid != 0 {
			log.Info("stopped the running collector", "pid", pid)
		}
	}
	lock, err := acquireLock(filepath.Join(state, "collector.pid"))
	if errors.Is(err, errLocked) {
		if f.ifNotRun {
			log.Debug("collector already running", "state", state)
			return nil
		}
		return cli.Exit(exitAlreadyRunning, fmt.Errorf("another collector is running on %s (pid %s); stop it first", state, lock.holder()))
	}
	if err != nil {
		return err
	}
	if f.daemon && os.Getenv("POFR_DAEMON_CHILD") == "" {
		lock.release()
		return daemonize(env, f)
	}
	defer lock.release()

	id, err := loadIdentity(f)
	if err != nil {
		return err
	}
	if os.Getenv("GOMAXPROCS") == "" {
		// While events flow, the process source's real-time reader keeps one P
		// for itself (docs/design.md, "Process source, CPU"); give the rest of
		// the collector the cores it would otherwise have.
		runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + 1)
	}

	return agent.Run(ctx, agent.Config{
		Profile: prof, StateDir: state, SpoolDir: spoolDir, ConfigDir: f.configDir,
		HostID: id.hostID, Key: id.key, Standalone: id.standalone, Log: log,
		StatusInterval: f.status, DrainTimeout: f.drain, MetricsFile: f.metrics,
		ForcePoll: f.forcePoll, NoFile: f.noFile, NoSock: f.noSock, NoSockTracepoints: f.noSockTP, NoProcTracepoint: f.noProcTP, NoDNS: f.noDNS,
		NoExeHash: f.noExeHash, ExeHashMaxSize: f.exeHashMax, NoLogins: f.noLogins,
		NoContainers: f.noCtrs, ContainerRoots: containers.Roots{Prefix: f.ctrRoot},
	})
}

func applyOverrides(p *profiles.Profile, f *runFlags) {
	if f.argvMax > 0 {
		p.Proc.ArgvMax = f.argvMax
	}
	if f.priority != "" {
		p.Proc.Priority = f.priority
	}
	if f.segBytes > 0 {
		p.Spool.SegmentBytes = f.segBytes
	}
	if f.segAge > 0 {
		p.Spool.SegmentAge = profiles.Duration(f.segAge)
	}
	if f.quota > 0 {
		p.Spool.QuotaBytes = f.quota
	}
	if f.fileOps != "" {
		p.File.Ops = nil
		for op := range strings.SplitSeq(f.fileOps, ",") {
			if op = strings.TrimSpace(op); op != "" {
				p.File.Ops = append(p.File.Ops, op)
			}
		}
	}
}

// daemonize re-executes the collector in a new session with its output in
// the log file and returns once the child holds the lock or has failed.
func daemonize(env *cli.Env, f *runFlags) error {
	lf, err := os.OpenFile(f.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open log file: %w", err)
	}
	defer lf.Close()
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), "POFR_DAEMON_CHILD=1")
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start daemon: %w", err)
	}
	state, _ := f.paths()
	pidFile := filepath.Join(state, "collector.pid")
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("daemon exited at start (%v); see %s", err, f.logFile)
		case <-deadline:
			return fmt.Errorf("daemon did not start within 10s; see %s", f.logFile)
		case <-time.After(50 * time.Millisecond):
			if b, _ := os.ReadFile(pidFile); strings.TrimSpace(string(b)) == fmt.Sprint(cmd.Process.Pid) {
				fmt.Fprintf(env.Stdout, "pofr-collector running as pid %d; log: %s\n", cmd.Process.Pid, f.logFile)
				return nil
			}
		}
	}
}
