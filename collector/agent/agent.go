package agent

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/pofr/pofr/collector"
	"github.com/pofr/pofr/collector/cnproc"
	"github.com/pofr/pofr/collector/containers"
	"github.com/pofr/pofr/collector/dnspkt"
	"github.com/pofr/pofr/collector/exehash"
	"github.com/pofr/pofr/collector/fanotify"
	"github.com/pofr/pofr/collector/logins"
	"github.com/pofr/pofr/collector/sockdiag"
	"github.com/pofr/pofr/collector/sockowner"
	"github.com/pofr/pofr/internal/defaults"
	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/procfs"
	"github.com/pofr/pofr/profiles"
	"github.com/pofr/pofr/spool"
	"github.com/pofr/pofr/uplink"
)

// ErrConfig reports an invalid Config.
var ErrConfig = errors.New("agent: invalid configuration")

// Config is what Run needs: the profile and the directories, the host's
// identity, and the switches of the run command.
type Config struct {
	// Profile is the validated collection profile.
	Profile *profiles.Profile
	// StateDir receives status.json; SpoolDir holds the segments;
	// ConfigDir holds the uplink's registration (not read when
	// Standalone). All three are excluded from file events.
	StateDir, SpoolDir, ConfigDir string
	// HostID and Key name and sign the segments.
	HostID string
	Key    ed25519.PrivateKey
	// Standalone keeps the segments in the spool instead of uploading them.
	Standalone bool
	// BootID is the kernel's boot id (/proc/sys/kernel/random/boot_id);
	// "" reads it.
	BootID string
	// ProcRoot is the procfs mount point of the sources ("" is /proc).
	ProcRoot string
	// Log receives the sources' and the uplink's messages; nil discards.
	Log *slog.Logger
	// StatusInterval is the period of the status log line (0: 1 min);
	// status.json is rewritten every 5 s.
	StatusInterval time.Duration
	// MetricsFile, if set, is rewritten with the status (every 5 s) as a
	// node_exporter textfile (name it *.prom in the textfile directory).
	MetricsFile string
	// DrainTimeout bounds the final push of what the stop sealed (0: none).
	DrainTimeout time.Duration
	// Switches of the run command: poll /proc instead of cn_proc, no file
	// source, no socket source, socket owners from fd scans only, cn_proc
	// instead of the process tracepoints.
	ForcePoll, NoFile, NoSock, NoSockTracepoints, NoProcTracepoint bool
	// NoDNS turns the DNS packet capture off.
	NoDNS bool
	// NoExeHash turns the SHA-256 of executed files off; ExeHashMaxSize is
	// the largest file hashed (0: exehash.DefaultMaxSize).
	NoExeHash      bool
	ExeHashMaxSize int64
	// NoLogins turns the wtmp/btmp login source off.
	NoLogins bool
	// NoContainers turns container names off; ContainerRoots are the
	// runtimes' state directories (zero: the real paths).
	NoContainers   bool
	ContainerRoots containers.Roots
}

// Run records this host until ctx ends or a source fails: it opens the
// spool, starts the process, file, socket and account sources and the
// uplink, and keeps status.json current; then it stops the sources, seals
// the spool and pushes what the stop sealed. It returns the error that
// stopped a source, or nil.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Profile == nil || cfg.StateDir == "" || cfg.SpoolDir == "" || cfg.HostID == "" || cfg.Key == nil {
		return fmt.Errorf("%w: Profile, StateDir, SpoolDir, HostID and Key are required", ErrConfig)
	}
	if !cfg.Standalone && cfg.ConfigDir == "" {
		return fmt.Errorf("%w: ConfigDir is required to upload", ErrConfig)
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	defaults.Positive(&cfg.StatusInterval, time.Minute)
	prof := cfg.Profile
	bootID := cfg.BootID
	if bootID == "" {
		b, err := os.ReadFile(procfs.New(cfg.ProcRoot).Path("sys/kernel/random/boot_id"))
		if err != nil {
			return fmt.Errorf("read boot id: %w", err)
		}
		bootID = strings.TrimSpace(string(b))
	}
	self := int32(os.Getpid())

	stats := &runStats{}
	w, err := spool.Open(cfg.SpoolDir, spool.Options{
		HostID:          cfg.HostID,
		BootID:          bootID,
		Key:             cfg.Key,
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

	// Container names ride on the process rows' container ids.
	var procSink event.Sink = w
	var ctrs *containers.Resolver
	if !cfg.NoContainers {
		if ctrs, err = containers.New(containers.Options{Sink: w, Roots: cfg.ContainerRoots, Log: log}); err != nil {
			w.Close()
			return err
		}
		procSink = containers.Watch(w, ctrs)
		stats.set(func(s *runStats) { s.ctrs = ctrs })
	}
	procs, err := cnproc.New(cnproc.Options{
		Sink: procSink, Log: log, ArgvMax: prof.Proc.ArgvMax, Priority: cnproc.Priority(prof.Proc.Priority),
		EnrichRate: prof.Proc.EnrichRate, SelfPID: self, ForcePoll: cfg.ForcePoll,
		ResyncInterval: time.Duration(prof.Proc.ResyncInterval), FullEnrich: prof.Proc.FullEnrich,
		Tracepoint: prof.Proc.Tracepoint && !cfg.NoProcTracepoint, TraceRingBytes: prof.Proc.RingPerCPU(runtime.NumCPU()),
		TraceStackBytes: prof.Proc.StackBytes, ExecGuard: prof.Proc.ExecGuard, ProcRoot: cfg.ProcRoot,
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
	if ctrs != nil {
		start("containers", ctrs.Run)
	}

	if prof.File.Enabled && !cfg.NoFile {
		// Executable hashes ride on the file source's FAN_OPEN_EXEC events.
		var hasher collector.ExecHasher
		if !cfg.NoExeHash {
			h, err := exehash.New(exehash.Options{Exes: w, Gaps: w, MaxSize: cfg.ExeHashMaxSize, Log: log, ProcRoot: cfg.ProcRoot})
			if err != nil {
				log.Warn("executables are not hashed", "err", err)
			} else {
				hasher = h
				stats.set(func(s *runStats) { s.hashes = h })
				start("exe_hash", h.Run)
			}
		}
		fsrc, err := fanotify.New(fanotify.Options{
			Sink: w, Procs: procs, Exec: procs, Hash: hasher, Profile: prof.File, Driver: procs,
			ExcludeDirs: []string{cfg.SpoolDir, cfg.StateDir, cfg.ConfigDir}, ProcRoot: cfg.ProcRoot, SelfPID: self, Log: log,
		})
		if err != nil {
			log.Warn("file access is not recorded", "err", err)
		} else {
			stats.set(func(s *runStats) { s.files = fsrc })
			start("file", fsrc.Run)
		}
	}
	if prof.Sock.Enabled && !cfg.NoSock {
		// Owners of connections too short for a dump come from tracepoints;
		// without them (no CAP_PERFMON, a seccomp profile, no tracefs) only
		// the fd scan of each dump names owners, as before.
		var owners sockdiag.ConnOwners
		var dnsOwners dnspkt.Owners
		if !cfg.NoSockTracepoints {
			co, err := sockowner.Open(sockowner.Options{UDP: prof.Sock.UDP})
			if err != nil {
				log.Warn("connection owners from /proc fd scans only: owners of connections shorter than a dump are unknown", "err", err)
			} else {
				defer co.Close() // after the sources stopped (wg.Wait below)
				owners, dnsOwners = co, co
				start("sock_owner", co.Run)
				stats.set(func(s *runStats) { s.owners = co })
				log.Info("connection owners from tracepoints", "events", co.Stats().Events)
			}
		}
		allNetns := !prof.Sock.HostNetnsOnly
		if allNetns {
			// Other namespaces are the business of the collector of the
			// initial one: a collector inside a namespace (a host simulated
			// in a netns, a container with its own network) records its
			// own, or two collectors would record the same sockets as
			// their own.
			switch initial, err := inInitialNetns(cfg.ProcRoot); {
			case err != nil:
				allNetns = false
				log.Warn("sockets of this network namespace only: cannot tell whether it is the initial one", "err", err)
			case !initial:
				allNetns = false
				log.Info("sockets of this network namespace only: the collector does not run in the initial one")
			}
		}
		ssrc, err := sockdiag.New(sockdiag.Options{
			Sink: w, Procs: procs, Log: log, DumpInterval: time.Duration(prof.Sock.DumpInterval),
			UDP: prof.Sock.UDP, SelfPID: self, AllNetns: allNetns, ConnOwners: owners,
			ProcRoot: cfg.ProcRoot, Driver: procs,
		})
		if err != nil {
			log.Warn("sockets are not recorded", "err", err)
		} else {
			stats.set(func(s *runStats) { s.socks = ssrc })
			start("sock", ssrc.Run)
		}
		if !cfg.NoDNS {
			// DNS messages are tied to processes by the same connection
			// owners; without them every row's owner is unknown.
			dsrc, err := dnspkt.New(dnspkt.Options{Sink: w, DNS: w, Owners: dnsOwners, Procs: procs, ProcRoot: cfg.ProcRoot, Log: log, Driver: procs})
			if err != nil {
				log.Warn("DNS is not recorded", "err", err)
			} else {
				defer dsrc.Close() // after the sources stopped (wg.Wait below)
				stats.set(func(s *runStats) { s.dns = dsrc })
				start("dns", dsrc.Run)
			}
		}
	}
	accts := &collector.AccountSource{Sink: w}
	start("accounts", accts.Run)
	if !cfg.NoLogins {
		if ls, err := logins.New(logins.Options{Logins: w, Gaps: w, Log: log, Driver: procs}); err != nil {
			log.Warn("logins are not recorded", "err", err)
		} else {
			stats.set(func(s *runStats) { s.logins = ls })
			start("logins", ls.Run)
		}
	}

	if !cfg.Standalone {
		p, err := uplink.NewPusher(uplink.PushOptions{
			ConfigDir: cfg.ConfigDir, Queue: SpoolQueue(cfg.SpoolDir), Log: log,
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

	log.Info("collector started", "pid", self, "host_id", cfg.HostID, "profile", prof.Name, "spool", cfg.SpoolDir,
		"standalone", cfg.Standalone)
	started := time.Now()
	statusPath := filepath.Join(cfg.StateDir, "status.json")
	st := &Status{PID: os.Getpid(), Started: started.UTC(), HostID: cfg.HostID, Profile: prof.Name}
	var lastStats spool.Stats
	var window rateWindow
	writeSt := func() {
		stats.snapshot(st)
		st.Summary = stats.summary(time.Now(), &window)
		st.Segments, st.Bytes = Backlog(cfg.SpoolDir)
		WriteStatus(statusPath, st, log)
		if cfg.MetricsFile != "" {
			m := &Metrics{Started: started, Updated: st.Updated, Sources: stats.spoolStats(), SpoolSegments: st.Segments, SpoolBytes: st.Bytes}
			stats.set(func(s *runStats) {
				if s.push != nil {
					ps := s.push.Stats()
					m.Upload = &ps
				}
			})
			if err := WriteMetricsFile(cfg.MetricsFile, m); err != nil {
				log.Warn("write metrics file", "err", err)
			}
		}
	}
	writeSt()
	tick := time.NewTicker(cfg.StatusInterval)
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
			stats.logLine(log, cfg.SpoolDir, &lastStats, cfg.StatusInterval)
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
	if healthy && cfg.DrainTimeout > 0 {
		// Push what the stop sealed, so that a planned stop leaves no backlog.
		dctx, dcancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
		var p *uplink.Pusher
		stats.set(func(s *runStats) { p = s.push })
		if n, err := p.Drain(dctx); err != nil {
			log.Warn("final segments stay in the spool for the next start", "pushed", n, "err", err)
		}
		dcancel()
	} else if cfg.DrainTimeout > 0 {
		log.Info("uploads were failing: the last segments stay in the spool for the next start")
	}
	writeSt()
	log.Info("collector stopped")
	return runErr
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
	dns    *dnspkt.Source
	hashes *exehash.Hasher
	logins *logins.Source
	ctrs   *containers.Resolver
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
		st.Modes[event.SourceProc] = string(p.Mode)
		st.Modes["capture"] = p.Capture
		st.Counters[event.SourceProc] = spool.Counter{Seen: p.Seen, Lost: p.Lost + p.QueueDrops}
	}
	if s.files != nil {
		f := s.files.Stats()
		st.Modes[event.SourceFile] = string(f.Mode)
		st.Counters[event.SourceFile] = spool.Counter{Seen: f.Events, Lost: f.Overflows}
	}
	if s.socks != nil {
		k := s.socks.Stats()
		st.Modes[event.SourceSock] = string(k.Mode)
		// Whether owners of connections shorter than a dump can be known.
		st.Modes["sock_owner"] = "fd_scan"
		if s.owners != nil {
			st.Modes["sock_owner"] = "tracepoint"
		}
		st.Counters[event.SourceSock] = spool.Counter{Seen: k.Destroys + k.Opens + k.Listens, Lost: k.Overruns + k.Lost}
	}
	if s.dns != nil {
		d := s.dns.Stats()
		st.Modes[event.SourceDNS] = "packet"
		st.Counters[event.SourceDNS] = spool.Counter{Seen: d.Messages, Lost: d.Drops}
	}
	if s.hashes != nil {
		h := s.hashes.Stats()
		st.Counters[event.SourceExe] = spool.Counter{Seen: h.Execs, Lost: h.Lost}
	}
	if s.logins != nil {
		l := s.logins.Stats()
		st.Counters[event.SourceLogin] = spool.Counter{Seen: l.Records, Lost: l.Truncated}
	}
	return st
}

func (s *runStats) snapshot(st *Status) {
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
	if s.hashes != nil {
		put(event.SourceExe, s.hashes.Stats())
	}
	if s.logins != nil {
		put(event.SourceLogin, s.logins.Stats())
	}
	if s.ctrs != nil {
		put("containers", s.ctrs.Stats())
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

// summary computes the status summary at now, adding a sample to w.
func (s *runStats) summary(now time.Time, w *rateWindow) Summary {
	cur := s.spoolStats()
	base := w.add(now, cur.Counters)
	sum := Summary{Capture: cur.Modes["capture"], Window: now.Sub(base.at).Seconds(), Sources: map[string]SourceSummary{}}
	for src, c := range cur.Counters {
		b := base.c[src]
		ss := SourceSummary{Mode: cur.Modes[src], Seen: c.Seen, Lost: c.Lost}
		if sum.Window > 0 && c.Seen >= b.Seen {
			ss.PerSecond = float64(c.Seen-b.Seen) / sum.Window
		}
		if c.Lost >= b.Lost {
			ss.LostInWindow = c.Lost - b.Lost
		}
		sum.Sources[src] = ss
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.spool != nil {
		ws := s.spool.Stats()
		sum.Spool = SpoolSummary{Rows: ws.Appended, Lost: ws.Lost, Sealed: ws.Sealed, Evicted: ws.Evicted}
	}
	if s.push != nil {
		p := s.push.Stats()
		u := &UplinkSummary{Connected: p.Connected, Uploaded: p.Uploaded, Bytes: p.Bytes, Failures: p.Failures, LastError: p.LastError}
		if !p.LastUpload.IsZero() {
			u.LastUpload = &p.LastUpload
		}
		sum.Uplink = u
	}
	return sum
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
	segs, bytes := Backlog(spoolDir)
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

// inInitialNetns reports whether the collector runs in the network namespace
// of PID 1 (as the proc file system at procRoot shows it).
func inInitialNetns(procRoot string) (bool, error) {
	fs := procfs.New(procRoot)
	self, err := os.Readlink(fs.Path("self/ns/net"))
	if err != nil {
		return false, err
	}
	initial, err := os.Readlink(fs.Path("1/ns/net"))
	if err != nil {
		return false, err
	}
	return self == initial, nil
}
