package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pofr/pofr/collector"
	"github.com/pofr/pofr/collector/cnproc"
	"github.com/pofr/pofr/collector/fanotify"
	"github.com/pofr/pofr/collector/sockdiag"
	"github.com/pofr/pofr/collector/sockowner"
	"github.com/pofr/pofr/internal/cli"
	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/profiles"
	"github.com/pofr/pofr/spool"
	"github.com/pofr/pofr/uplink"
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
	logFile    string
	status     time.Duration
	argvMax    int
	priority   string
	noFile     bool
	noSock     bool
	noSockTP   bool
	noProcTP   bool
	fileOps    string
	segBytes   int64
	segAge     time.Duration
	quota      int64
	forcePoll  bool
	drain      time.Duration
}

func init() {
	var f runFlags
	cli.Register(prog, &cli.Command{
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
			fs.StringVar(&f.logFile, "log-file", "/var/log/pofr-collector.log", "log file with --daemon")
			fs.DurationVar(&f.status, "status-interval", time.Minute, "how often to log a status line")
			fs.IntVar(&f.argvMax, "argv-max", 0, "override the profile's argv cap (bytes)")
			fs.StringVar(&f.priority, "priority", "", "override the reader priority: fifo, nice or normal")
			fs.BoolVar(&f.noFile, "no-file", false, "do not record file access")
			fs.BoolVar(&f.noSock, "no-sock", false, "do not record sockets")
			fs.BoolVar(&f.noProcTP, "no-proc-tracepoints", false, "capture processes with cn_proc only, not from kernel tracepoint rings (the fallback)")
			fs.BoolVar(&f.noSockTP, "no-sock-tracepoints", false, "name connection owners from /proc fd scans only, not from kernel tracepoints")
			fs.StringVar(&f.fileOps, "file-ops", "", "override the profile's file ops, comma-separated: open, exec, write, create, delete, rename")
			fs.Int64Var(&f.segBytes, "segment-bytes", 0, "override the profile's segment size")
			fs.DurationVar(&f.segAge, "segment-age", 0, "override the profile's segment age")
			fs.Int64Var(&f.quota, "quota", 0, "override the profile's spool quota (bytes)")
			fs.DurationVar(&f.drain, "drain-timeout", 5*time.Second, "at stop, push the last segments for up to this long")
			fs.BoolVar(&f.forcePoll, "poll", false, "use /proc polling instead of cn_proc (diagnostics)")
		},
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			if len(args) > 0 {
				return cli.Usagef("run takes no arguments, got %q", args)
			}
			return runCollector(ctx, env, &f)
		},
	})
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
	bootID, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return fmt.Errorf("read boot id: %w", err)
	}
	self := int32(os.Getpid())
	if os.Getenv("GOMAXPROCS") == "" {
		// While events flow, the process source's real-time reader keeps one P
		// for itself (see cnproc.Source, "CPU"); give the rest of the collector
		// the cores it would otherwise have.
		runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + 1)
	}

	stats := &runStats{}
	w, err := spool.Open(spoolDir, spool.Options{
		HostID:          id.hostID,
		BootID:          strings.TrimSpace(string(bootID)),
		Key:             id.key,
		MaxSegmentBytes: prof.Spool.SegmentBytes,
		MaxSegmentAge:   time.Duration(prof.Spool.SegmentAge),
		Quota:           prof.Spool.QuotaBytes,
		Stats:           stats.spoolStats,
		Sealed:          stats.sealed,
		Log:             log,
	})
	if err != nil {
		return fmt.Errorf("open spool: %w", err)
	}
	stats.set(func(s *runStats) { s.spool = w })

	procs, err := cnproc.New(cnproc.Options{
		Sink: w, Log: log, ArgvMax: prof.Proc.ArgvMax, Priority: prof.Proc.Priority,
		EnrichRate: prof.Proc.EnrichRate, SelfPID: self, ForcePoll: f.forcePoll,
		ResyncInterval: time.Duration(prof.Proc.ResyncInterval), FullEnrich: prof.Proc.FullEnrich,
		Tracepoint: prof.Proc.Tracepoint && !f.noProcTP, TraceRingBytes: prof.Proc.RingPerCPU(runtime.NumCPU()),
		TraceStackBytes: prof.Proc.StackBytes, ExecGuard: prof.Proc.ExecGuard,
	})
	if err != nil {
		w.Close()
		return err
	}
	stats.set(func(s *runStats) { s.procs = procs })

	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 8)
	start := func(name string, run func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(ctx); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	start("proc", procs.Run)

	if prof.File.Enabled && !f.noFile {
		fsrc, err := fanotify.New(fanotify.Options{
			Sink: w, Procs: procs, Exec: procs, Profile: prof.File,
			ExcludeDirs: []string{spoolDir, state, f.configDir}, SelfPID: self, Log: log,
		})
		if err != nil {
			log.Warn("file access is not recorded", "err", err)
		} else {
			stats.set(func(s *runStats) { s.files = fsrc })
			start("file", fsrc.Run)
		}
	}
	if prof.Sock.Enabled && !f.noSock {
		// Owners of connections too short for a dump come from tracepoints;
		// without them (no CAP_PERFMON, a seccomp profile, no tracefs) only
		// the fd scan of each dump names owners, as before.
		var owners sockdiag.ConnOwners
		if !f.noSockTP {
			co, err := sockowner.Open(sockowner.Options{UDP: prof.Sock.UDP})
			if err != nil {
				log.Warn("connection owners from /proc fd scans only: owners of connections shorter than a dump are unknown", "err", err)
			} else {
				defer co.Close() // after the sources stopped (wg.Wait below)
				owners = co
				start("sock_owner", co.Run)
				stats.set(func(s *runStats) { s.owners = co })
				log.Info("connection owners from tracepoints", "events", co.Stats().Events)
			}
		}
		ssrc, err := sockdiag.New(sockdiag.Options{
			Sink: w, Procs: procs, Log: log, DumpInterval: time.Duration(prof.Sock.DumpInterval),
			UDP: prof.Sock.UDP, SelfPID: self, AllNetns: !prof.Sock.HostNetnsOnly, ConnOwners: owners,
		})
		if err != nil {
			log.Warn("sockets are not recorded", "err", err)
		} else {
			stats.set(func(s *runStats) { s.socks = ssrc })
			start("sock", ssrc.Run)
		}
	}
	accts := &collector.AccountSource{Sink: w}
	start("accounts", accts.Run)

	if !id.standalone {
		p, err := uplink.NewPusher(uplink.PushOptions{
			ConfigDir: f.configDir, Queue: spoolQueue(spoolDir), Log: log,
			Interval: time.Duration(prof.Upload.Interval), MaxBackoff: time.Duration(prof.Upload.MaxBackoff),
			BandwidthBPS: prof.Upload.BandwidthBPS,
		})
		if err != nil {
			cancel()
			wg.Wait()
			w.Close()
			return fmt.Errorf("start uplink: %w", err)
		}
		stats.set(func(s *runStats) { s.push = p })
		start("uplink", p.Run)
	}

	log.Info("collector started", "pid", self, "host_id", id.hostID, "profile", prof.Name, "spool", spoolDir,
		"standalone", id.standalone)
	started := time.Now()
	statusPath := filepath.Join(state, "status.json")
	st := &statusFile{PID: os.Getpid(), Started: started.UTC(), HostID: id.hostID, Profile: prof.Name}
	var lastStats spool.Stats
	writeSt := func() {
		stats.snapshot(st)
		st.Segments, st.Bytes = backlog(spoolDir)
		writeStatus(statusPath, st, log)
	}
	writeSt()
	tick := time.NewTicker(f.status)
	defer tick.Stop()
	sw := time.NewTicker(5 * time.Second)
	defer sw.Stop()

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errc:
			runErr = err
			log.Error("source stopped", "err", err)
			break loop
		case <-tick.C:
			stats.logLine(log, spoolDir, &lastStats, f.status)
		case <-sw.C:
			writeSt()
		}
	}
	log.Info("collector stopping")
	var healthy bool
	stats.set(func(s *runStats) { healthy = s.push != nil && s.push.Stats().LastError == "" })
	// Stop the sources first, then seal, then push what was sealed.
	cancel()
	wg.Wait()
	if err := w.Close(); err != nil {
		return fmt.Errorf("seal spool: %w", err)
	}
	if healthy && f.drain > 0 {
		// Push what the stop sealed, so that a planned stop leaves no backlog.
		dctx, dcancel := context.WithTimeout(context.Background(), f.drain)
		var p *uplink.Pusher
		stats.set(func(s *runStats) { p = s.push })
		if n, err := p.Drain(dctx); err != nil {
			log.Warn("final segments stay in the spool for the next start", "pushed", n, "err", err)
		}
		dcancel()
	}
	writeSt()
	log.Info("collector stopped")
	return runErr
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

var _ event.Sink = (*spool.Writer)(nil)

// runStats gathers the sources' counters for the manifests, the status file
// and the periodic log line. Sources are added as they start.
type runStats struct {
	mu     sync.Mutex
	procs  *cnproc.Source
	files  *fanotify.Source
	socks  *sockdiag.Source
	owners *sockowner.Source
	push   *uplink.Pusher
	spool  *spool.Writer
}

func (s *runStats) set(f func(*runStats)) { s.mu.Lock(); f(s); s.mu.Unlock() }

// sealed wakes the uplink as soon as a segment is sealed.
func (s *runStats) sealed(string) {
	s.mu.Lock()
	p := s.push
	s.mu.Unlock()
	if p != nil {
		p.Notify()
	}
}

// spoolStats is the spool's Stats callback: modes and counters per source.
func (s *runStats) spoolStats() spool.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := spool.Stats{Modes: map[string]string{}, Counters: map[string]spool.Counter{}}
	if s.procs != nil {
		p := s.procs.Stats()
		st.Modes[event.SourceProc] = p.Mode
		st.Modes["capture"] = p.Capture
		st.Counters[event.SourceProc] = spool.Counter{Seen: p.Seen, Lost: p.Lost + p.QueueDrops}
	}
	if s.files != nil {
		f := s.files.Stats()
		st.Modes[event.SourceFile] = f.Mode
		st.Counters[event.SourceFile] = spool.Counter{Seen: f.Events, Lost: f.Overflows}
	}
	if s.socks != nil {
		k := s.socks.Stats()
		st.Modes[event.SourceSock] = k.Mode
		st.Counters[event.SourceSock] = spool.Counter{Seen: k.Destroys + k.Opens + k.Listens, Lost: k.Overruns + k.Lost}
	}
	return st
}

func (s *runStats) snapshot(st *statusFile) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st.Sources = map[string]json.RawMessage{}
	put := func(name string, v any) {
		if b, err := json.Marshal(v); err == nil {
			st.Sources[name] = b
		}
	}
	if s.procs != nil {
		put(event.SourceProc, s.procs.Stats())
	}
	if s.files != nil {
		put(event.SourceFile, s.files.Stats())
	}
	if s.socks != nil {
		put(event.SourceSock, s.socks.Stats())
	}
	if s.owners != nil {
		put("sock_owner", s.owners.Stats())
	}
	if s.spool != nil {
		put(event.SourceSpool, s.spool.Stats())
	}
	if s.push != nil {
		if b, err := json.Marshal(s.push.Stats()); err == nil {
			st.Uplink = b
		}
	}
}

// logLine logs one summary line: events/s since the last line, losses and
// the spool backlog.
func (s *runStats) logLine(log *slog.Logger, spoolDir string, last *spool.Stats, every time.Duration) {
	cur := s.spoolStats()
	args := []any{}
	for _, src := range []string{event.SourceProc, event.SourceFile, event.SourceSock} {
		c, ok := cur.Counters[src]
		if !ok {
			continue
		}
		prev := last.Counters[src]
		rate := float64(c.Seen-prev.Seen) / every.Seconds()
		args = append(args, src+"_per_s", fmt.Sprintf("%.0f", rate), src+"_lost", c.Lost)
	}
	segs, bytes := backlog(spoolDir)
	args = append(args, "backlog_segments", segs, "backlog_bytes", bytes)
	s.mu.Lock()
	if s.push != nil {
		p := s.push.Stats()
		args = append(args, "uploaded", p.Uploaded, "connected", p.Connected)
		if p.LastError != "" {
			args = append(args, "upload_error", p.LastError)
		}
	}
	s.mu.Unlock()
	log.Info("status", args...)
	*last = cur
}
