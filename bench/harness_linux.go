package bench

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Config configures a benchmark run.
type Config struct {
	// Quick shortens every window so that the run takes under 2 minutes.
	Quick bool
	// Reps repeats the exec section (default 3, 1 when Quick). Conditions
	// alternate their order between repetitions.
	Reps int
	// CollectorBin is pofr-collector; Profile the profile it runs.
	CollectorBin string
	Profile      string
	// LoadBin is the pofr-load binary (bench/cmd/pofr-load).
	LoadBin string
	// WorkDir is a scratch directory on a real file system (the collector's
	// spool, the churn directory, the audit log, the poller's snapshots).
	WorkDir string
	// NoAudit skips the auditd comparison.
	NoAudit bool
	// Out receives the benchmark lines as they are measured.
	Out io.Writer
	Log *slog.Logger
	// Loader, when set, measures the server side: the loader's rows/s into a
	// private MariaDB against a plain LOAD DATA of the same rows, and exec →
	// queryable latency ([LoaderBench.Run]). Nil skips both; the report
	// then says so.
	Loader func(ctx context.Context, workDir string) ([]Result, []Check, error)
	// NoLoaderWhy says, in the report's SKIP lines, why Loader is nil.
	NoLoaderWhy string
}

// plan holds the sizes of one run.
type plan struct {
	execDur, settle, drain  time.Duration
	rate                    float64 // the fixed exec rate
	lifetimes               []time.Duration
	perLife                 int
	procRate                float64
	connLifetimes           []time.Duration
	perConn                 int
	connRate                float64
	fileRate                float64
	captureFiles            time.Duration
	costDur                 time.Duration
	costConnRate, costFiles float64
}

func newPlan(quick bool) plan {
	p := plan{
		execDur: 10 * time.Second, settle: 2 * time.Second, drain: time.Second, rate: 1000,
		lifetimes: []time.Duration{0, time.Millisecond, 5 * time.Millisecond, 50 * time.Millisecond, time.Second},
		perLife:   200, procRate: 40,
		connLifetimes: []time.Duration{time.Millisecond, 10 * time.Millisecond, 100 * time.Millisecond, time.Second},
		perConn:       25, connRate: 20,
		fileRate: 100, captureFiles: 20 * time.Second,
		costDur: 8 * time.Second, costConnRate: 400, costFiles: 500,
	}
	if quick {
		p.execDur, p.settle = 3*time.Second, 1500*time.Millisecond
		p.perLife, p.procRate = 40, 30
		p.perConn, p.connRate = 5, 12
		p.captureFiles = 6 * time.Second
		p.costDur = 3 * time.Second
	}
	return p
}

// harness is one run in progress.
type harness struct {
	cfg     Config
	p       plan
	proc    ProcFS
	procs   int
	results []Result
	checks  []Check
	notes   []string
	static  string
	n       int // scratch directory counter
	// collector windows, for the budget checks
	maxCore, maxRSS float64
	collectorErr    error
	auditErr        error
}

// Run measures the collector and its peers and returns the report. The
// benchmark lines are written to cfg.Out as they are measured.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("run as root: the collector, auditd and auditctl need it")
	}
	if cfg.Reps <= 0 {
		cfg.Reps = 3
		if cfg.Quick {
			cfg.Reps = 1
		}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	h := &harness{cfg: cfg, p: newPlan(cfg.Quick), proc: "/proc", procs: runtime.NumCPU()}
	var err error
	if h.static, err = StaticProgram(ctx, cfg.WorkDir); err != nil {
		return nil, err
	}
	if _, err := os.Stat(cfg.CollectorBin); err != nil {
		h.collectorErr = fmt.Errorf("collector binary: %w (run make build)", err)
	}
	if cfg.NoAudit {
		h.auditErr = errors.New("skipped (-no-audit)")
	}

	for rep := range cfg.Reps {
		order := []string{condNone, condAuditd, condFloor, condCollectorCnproc, condCollector}
		if rep%2 == 1 {
			slices.Reverse(order)
		}
		cfg.Log.Info("exec section", "rep", rep+1, "of", cfg.Reps, "order", order)
		byCond := map[string][]*Result{}
		for _, cond := range order {
			rs, err := h.execCondition(ctx, cond)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if err != nil {
				cfg.Log.Warn("exec condition not measured", "condition", cond, "err", err)
				continue
			}
			byCond[cond] = rs
		}
		// Slowdown against no observer in the same repetition: throughput at
		// max rate, fork→reap latency (p50) at both rates.
		for i := range 2 {
			for _, cond := range []string{condNone, condAuditd, condFloor, condCollectorCnproc, condCollector} {
				if byCond[cond] == nil {
					continue
				}
				r := byCond[cond][i]
				if base := byCond[condNone]; base != nil && cond != condNone {
					if i == 1 {
						b, _ := base[i].Get("exec/s")
						v, _ := r.Get("exec/s")
						r.Add(100*(1-v/b), "slowdown-%")
					}
					b, _ := base[i].Get("lat-p50-us")
					v, _ := r.Get("lat-p50-us")
					r.Add(100*(v/b-1), "lat-slowdown-%")
				}
				h.emit(*r)
			}
		}
	}
	h.noiseNote()
	if h.collectorErr == nil {
		cfg.Log.Info("capture section: collector and poller side by side")
		if err := h.capture(ctx); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			h.collectorErr = err
		}
	}
	if h.collectorErr == nil {
		cfg.Log.Info("cost section: connections and file churn")
		if err := h.costs(ctx); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			h.collectorErr = err
		}
	}
	if cfg.Loader != nil {
		rs, cs, err := cfg.Loader(ctx, h.scratch("loader"))
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			h.notes = append(h.notes, "loader not measured: "+err.Error())
		}
		for _, r := range rs {
			h.emit(r)
		}
		h.checks = append(h.checks, cs...)
	}
	rep := &Report{Results: h.results, Machine: Machine()}
	rep.Checks = append(h.targetChecks(), h.checks...)
	if cfg.Loader == nil {
		why := "not measured: " + cmp.Or(cfg.NoLoaderWhy, "no loader benchmark in this run (Config.Loader)")
		rep.Checks = append(rep.Checks, skipChecks(why, why)...)
	}
	if h.collectorErr != nil {
		h.notes = append(h.notes, "collector not measured: "+h.collectorErr.Error())
		rep.Failed = true
	}
	if h.auditErr != nil {
		h.notes = append(h.notes, "auditd not measured: "+h.auditErr.Error())
	}
	rep.Notes = h.notes
	for _, c := range rep.Checks {
		if c.Verdict() == Fail {
			rep.Failed = true
		}
	}
	return rep, nil
}

// emit records a result and prints its benchmark line.
func (h *harness) emit(r Result) {
	h.results = append(h.results, r)
	WriteBench(h.cfg.Out, r, h.procs)
}

// scratch returns a new directory under the work directory.
func (h *harness) scratch(name string) string {
	h.n++
	d := filepath.Join(h.cfg.WorkDir, fmt.Sprintf("%02d-%s", h.n, name))
	os.MkdirAll(d, 0o700)
	return d
}

// load is a pofr-load process.
type load struct {
	cmd *exec.Cmd
	out bytes.Buffer
	err bytes.Buffer
}

func (h *harness) startLoad(args ...string) (*load, error) {
	l := &load{cmd: exec.Command(h.cfg.LoadBin, args...)}
	l.cmd.Stdout, l.cmd.Stderr = &l.out, &l.err
	// A workload, above all the poller, must not outlive a harness that died.
	l.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := l.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start pofr-load %s: %w", args[0], err)
	}
	return l, nil
}

// wait waits for the load and decodes its JSON report into v.
func (l *load) wait(v any) error {
	if err := l.cmd.Wait(); err != nil {
		return fmt.Errorf("pofr-load %s: %w: %s", l.cmd.Args[1], err, bytes.TrimSpace(l.err.Bytes()))
	}
	if v == nil {
		return nil
	}
	if err := json.Unmarshal(l.out.Bytes(), v); err != nil {
		return fmt.Errorf("pofr-load %s: decode report: %w", l.cmd.Args[1], err)
	}
	return nil
}

func (h *harness) runExec(rate float64) (ExecResult, error) {
	var r ExecResult
	l, err := h.startLoad("exec", "-rate", strconv.FormatFloat(rate, 'f', -1, 64), "-duration", h.p.execDur.String())
	if err != nil {
		return r, err
	}
	return r, l.wait(&r)
}

// execName names a result of the exec section.
func execName(rate float64, cond string) string {
	if rate == 0 {
		return "Exec/rate=max/" + cond
	}
	return fmt.Sprintf("Exec/rate=%g/%s", rate, cond)
}

// workloadMetrics adds what the storm itself measured.
func workloadMetrics(r *Result, e ExecResult) {
	r.N = e.Spawned
	r.Add(e.Rate, "exec/s")
	r.Add(float64(e.LatP50)/1e3, "lat-p50-us")
	r.Add(float64(e.SelfCPU+e.ChildCPU)/1e3/float64(max(e.Spawned, 1)), "wl-cpu-us/exec")
}

// execCondition runs the fixed-rate and the max-rate storm under one
// condition and returns their results, not yet emitted, so that the
// slowdown against no observer can be added.
func (h *harness) execCondition(ctx context.Context, cond string) ([]*Result, error) {
	rates := []float64{h.p.rate, 0}
	out := make([]*Result, 0, 2)
	switch cond {
	case condNone:
		for _, rate := range rates {
			time.Sleep(h.p.drain)
			e, err := h.runExec(rate)
			if err != nil {
				return nil, err
			}
			r := &Result{Name: execName(rate, cond)}
			workloadMetrics(r, e)
			out = append(out, r)
		}
		return out, nil
	case condAuditd:
		if h.auditErr != nil {
			return nil, h.auditErr
		}
		rs, err := h.execAuditd(ctx, rates)
		if err != nil && !errors.Is(err, context.Canceled) {
			h.auditErr = err
		}
		return rs, err
	case condFloor:
		for _, rate := range rates {
			r, err := h.execFloor(rate)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
		return out, nil
	case condCollector, condCollectorCnproc:
		if h.collectorErr != nil {
			return nil, h.collectorErr
		}
		for _, rate := range rates {
			r, err := h.execCollector(ctx, rate, cond)
			if err != nil {
				h.collectorErr = err
				return nil, err
			}
			out = append(out, r)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown condition %q", cond)
}

// execAuditd runs the storms under auditd with the execve rule.
func (h *harness) execAuditd(ctx context.Context, rates []float64) (out []*Result, err error) {
	a, err := StartAuditd(ctx, h.scratch("auditd"), h.proc, h.cfg.Log)
	if err != nil {
		return nil, err
	}
	defer func() {
		if serr := a.Stop(context.WithoutCancel(ctx)); serr != nil {
			err = errors.Join(err, serr)
			h.notes = append(h.notes, "audit state restore: "+serr.Error())
		}
	}()
	if err := a.AddRule(ctx); err != nil {
		return nil, err
	}
	for _, rate := range rates {
		time.Sleep(h.p.drain)
		a0, err := h.proc.Stat(a.PID)
		if err != nil {
			return nil, fmt.Errorf("auditd: %w", err)
		}
		k0, err := h.proc.Stat(a.Kauditd)
		if err != nil {
			return nil, fmt.Errorf("kauditd: %w", err)
		}
		st0, err := AuditStatusNow(ctx)
		if err != nil {
			return nil, err
		}
		t0 := time.Now()
		e, err := h.runExec(rate)
		if err != nil {
			return nil, err
		}
		a.Drain(1500*time.Millisecond, 20*time.Second)
		a1, err := h.proc.Stat(a.PID)
		if err != nil {
			return nil, fmt.Errorf("auditd: %w", err)
		}
		k1, err := h.proc.Stat(a.Kauditd)
		if err != nil {
			return nil, fmt.Errorf("kauditd: %w", err)
		}
		wall := time.Since(t0)
		st1, err := AuditStatusNow(ctx)
		if err != nil {
			return nil, err
		}
		f, err := os.Open(a.Log)
		if err != nil {
			return nil, fmt.Errorf("read audit log: %w", err)
		}
		cnt, err := CountAuditExecs(f, float64(e.Start)/1e9-0.5, float64(e.End)/1e9+1, e.Spawner, e.PIDs)
		f.Close()
		if err != nil {
			return nil, err
		}
		r := &Result{Name: execName(rate, condAuditd)}
		workloadMetrics(r, e)
		execs := float64(max(cnt.Execs, e.Spawned))
		ad, kd := a1.CPU()-a0.CPU(), k1.CPU()-k0.CPU()
		r.Add(float64(ad+kd)/1e3/execs, "cpu-us/exec")
		r.Add(float64(ad)/1e3/execs, "auditd-us/exec")
		r.Add(float64(kd)/1e3/execs, "kauditd-us/exec")
		r.Add(100*float64(ad+kd)/float64(wall), "cpu-%core")
		r.Add(Percent(cnt.Matched, e.Spawned), "exec-%")
		r.Add(float64(st1.Lost-st0.Lost), "kernel-lost")
		r.Add(float64(cnt.Bytes)/execs, "log-B/exec")
		out = append(out, r)
	}
	return out, nil
}

// execFloor runs one storm under the cn_proc floor reader (RunProcFloor):
// what any reader that keeps argv pays, beside the collector.
func (h *harness) execFloor(rate float64) (*Result, error) {
	l, err := h.startLoad("cnproc-floor")
	if err != nil {
		return nil, err
	}
	defer l.cmd.Process.Kill()
	time.Sleep(h.p.settle)
	pid := l.cmd.Process.Pid
	s0, err := h.proc.Sample(pid)
	if err != nil {
		return nil, fmt.Errorf("cn_proc floor reader: %w", err)
	}
	e, err := h.runExec(rate)
	if err != nil {
		return nil, err
	}
	time.Sleep(h.p.drain)
	s1, err := h.proc.Sample(pid)
	if err != nil {
		return nil, fmt.Errorf("cn_proc floor reader: %w", err)
	}
	l.cmd.Process.Signal(syscall.SIGTERM)
	var fr FloorResult
	if err := l.wait(&fr); err != nil {
		return nil, err
	}
	withArgv := make(map[int32]bool, len(fr.ArgvPIDs))
	for _, p := range fr.ArgvPIDs {
		withArgv[p] = true
	}
	argv := 0
	for _, p := range e.PIDs {
		if withArgv[p] {
			argv++
		}
	}
	r := &Result{Name: execName(rate, condFloor)}
	workloadMetrics(r, e)
	cpu := s1.CPU - s0.CPU
	r.Add(float64(cpu)/1e3/float64(max(e.Spawned, 1)), "cpu-us/exec")
	r.Add(100*float64(cpu)/float64(s1.At.Sub(s0.At)), "cpu-%core")
	r.Add(Percent(argv, e.Spawned), "argv-%")
	if fr.Priority != "fifo" {
		h.notes = append(h.notes, "the cn_proc floor reader ran at normal priority (SCHED_FIFO refused)")
	}
	return r, nil
}

// execCollector runs one storm under a fresh collector.
func (h *harness) execCollector(ctx context.Context, rate float64, cond string) (*Result, error) {
	var extra []string
	if cond == condCollectorCnproc {
		extra = []string{"--no-proc-tracepoints"}
	}
	c, err := StartCollector(ctx, h.cfg.CollectorBin, h.cfg.Profile, h.scratch(cond+"-exec"), h.p.settle, extra...)
	if err != nil {
		return nil, err
	}
	defer c.Kill()
	s0, err := h.proc.Sample(c.PID)
	if err != nil {
		return nil, fmt.Errorf("collector: %w", err)
	}
	e, err := h.runExec(rate)
	if err != nil {
		return nil, err
	}
	time.Sleep(h.p.drain)
	ex, err := c.Stop(30 * time.Second)
	if err != nil {
		return nil, err
	}
	rows, err := ReadSpool(c.SpoolDir)
	if err != nil {
		return nil, err
	}
	m := MatchExecs(rows.Procs, e, time.Second)
	r := &Result{Name: execName(rate, cond)}
	workloadMetrics(r, e)
	cpu := ex.CPU - s0.CPU
	execs := float64(max(m.Machine, e.Spawned))
	core := 100 * float64(cpu) / float64(ex.At.Sub(s0.At))
	r.Add(float64(cpu)/1e3/execs, "cpu-us/exec")
	r.Add(core, "cpu-%core")
	r.Add(Percent(m.Recorded, m.Spawned), "exec-%")
	r.Add(Percent(m.Argv, m.Spawned), "argv-%")
	r.Add(Percent(m.Exe, m.Spawned), "exe-%")
	r.Add(float64(ex.MaxRSS)/(1<<20), "rss-MB")
	r.Add(Ratio(float64(rows.Bytes), float64(rows.Rows)), "spool-B/row")
	r.Add(float64(len(rows.Gaps)), "gaps")
	h.budget(core, ex.MaxRSS)
	return r, nil
}

// budget records the worst collector CPU and RSS for the seed's budget.
func (h *harness) budget(core float64, rss int64) {
	h.maxCore = max(h.maxCore, core)
	h.maxRSS = max(h.maxRSS, float64(rss)/(1<<20))
}

// capture runs the process, connection and file workloads at once under
// the collector and the POFR-style poller, side by side.
func (h *harness) capture(ctx context.Context) error {
	dir := h.scratch("capture")
	c, err := StartCollector(ctx, h.cfg.CollectorBin, h.cfg.Profile, filepath.Join(dir, "collector"), h.p.settle)
	if err != nil {
		return err
	}
	defer c.Kill()
	snaps := filepath.Join(dir, "poller")
	os.MkdirAll(snaps, 0o700)
	poll, err := h.startLoad("poll", "-out", snaps)
	if err != nil {
		return err
	}
	defer poll.cmd.Process.Kill()
	time.Sleep(time.Second)
	c0, err := h.proc.Sample(c.PID)
	if err != nil {
		return fmt.Errorf("collector: %w", err)
	}
	p0, err := h.proc.Sample(poll.cmd.Process.Pid)
	if err != nil {
		return fmt.Errorf("poller: %w", err)
	}
	churn := filepath.Join(dir, "churn")
	os.MkdirAll(churn, 0o700)
	lt := durList(h.p.lifetimes)
	procsL, err := h.startLoad("procs", "-path", h.static, "-lifetimes", lt, "-per", strconv.Itoa(h.p.perLife),
		"-rate", fmt.Sprint(h.p.procRate), "-tag", strconv.FormatInt(time.Now().Unix(), 36))
	if err != nil {
		return err
	}
	connsL, err := h.startLoad("conns", "-lifetimes", durList(h.p.connLifetimes), "-per", strconv.Itoa(h.p.perConn),
		"-rate", fmt.Sprint(h.p.connRate))
	if err != nil {
		return err
	}
	filesL, err := h.startLoad("files", "-dir", churn, "-rate", fmt.Sprint(h.p.fileRate), "-duration", h.p.captureFiles.String())
	if err != nil {
		return err
	}
	var pr ProcsResult
	var cr ConnsResult
	var fr FileResult
	errs := errors.Join(procsL.wait(&pr), connsL.wait(&cr), filesL.wait(&fr))
	if errs != nil {
		return errs
	}
	time.Sleep(h.p.drain)
	p1, err := h.proc.Sample(poll.cmd.Process.Pid)
	if err != nil {
		return fmt.Errorf("poller: %w", err)
	}
	poll.cmd.Process.Signal(syscall.SIGTERM)
	if err := poll.wait(nil); err != nil {
		return err
	}
	ex, err := c.Stop(30 * time.Second)
	if err != nil {
		return err
	}
	rows, err := ReadSpool(c.SpoolDir)
	if err != nil {
		return err
	}
	seen, err := ReadPoll(snaps)
	if err != nil {
		return err
	}

	for i, b := range MatchProcs(rows.Procs, pr, 50*time.Millisecond) {
		r := Result{Name: "Procs/life=" + b.Name + "/" + condCollector, N: b.N}
		r.Add(b.Pct("exec"), "exec-%")
		r.Add(b.Pct("argv"), "argv-%")
		r.Add(b.Pct("exe"), "exe-%")
		h.emit(r)
		pb := PollProcs(seen, pr)[i]
		r = Result{Name: "Procs/life=" + pb.Name + "/" + condPoller, N: pb.N}
		r.Add(pb.Pct("seen"), "argv-%")
		h.emit(r)
	}
	pc := PollConns(seen, cr)
	for i, b := range MatchConns(rows.Socks, cr, time.Second) {
		r := Result{Name: "Conns/" + b.Name + "/" + condCollector, N: b.N}
		r.Add(b.Pct("seen"), "seen-%")
		r.Add(b.Pct("close"), "close-%")
		r.Add(b.Pct("owner"), "owner-%")
		h.emit(r)
		r = Result{Name: "Conns/" + pc[i].Name + "/" + condPoller, N: pc[i].N}
		r.Add(pc[i].Pct("seen"), "seen-%")
		r.Add(pc[i].Pct("owner"), "owner-%")
		h.emit(r)
	}
	for _, b := range MatchFiles(rows.Files, fr) {
		r := Result{Name: "Files/op=" + b.Name + "/" + condCollector, N: b.N}
		r.Add(b.Pct("seen"), "seen-%")
		h.emit(r)
	}
	cpu := ex.CPU - c0.CPU
	core := 100 * float64(cpu) / float64(ex.At.Sub(c0.At))
	r := Result{Name: "Capture/" + condCollector, N: int(rows.Rows)}
	r.Add(core, "cpu-%core")
	r.Add(float64(ex.MaxRSS)/(1<<20), "rss-MB")
	r.Add(Ratio(float64(rows.Bytes), float64(rows.Rows)), "spool-B/row")
	h.emit(r)
	h.budget(core, ex.MaxRSS)
	pwall := p1.At.Sub(p0.At)
	r = Result{Name: "Capture/" + condPoller, N: seen.Passes}
	r.Add(100*float64(p1.CPU-p0.CPU)/float64(pwall), "cpu-%core")
	r.Add(float64(p1.Mem.HWM)/(1<<20), "rss-MB")
	r.Add(float64(seen.Bytes)/1e3/pwall.Minutes(), "snap-kB/min")
	h.emit(r)
	return nil
}

// costs measures the collector's CPU per connection and per file event,
// each workload alone under a fresh collector.
func (h *harness) costs(ctx context.Context) error {
	type work struct {
		name, unit string
		args       func(dir string) []string
		events     func(out []byte) (int, error)
	}
	works := []work{
		{"Conn", "cpu-us/conn", func(string) []string {
			n := int(h.p.costConnRate * h.p.costDur.Seconds() / float64(len(ConnKinds)))
			return []string{"conns", "-lifetimes", "1ms", "-per", strconv.Itoa(n), "-rate", fmt.Sprint(h.p.costConnRate)}
		}, func(out []byte) (int, error) {
			var r ConnsResult
			err := json.Unmarshal(out, &r)
			return len(r.Conns), err
		}},
		{"File", "cpu-us/event", func(dir string) []string {
			return []string{"files", "-dir", dir, "-rate", fmt.Sprint(h.p.costFiles), "-duration", h.p.costDur.String()}
		}, func(out []byte) (int, error) {
			var r FileResult
			err := json.Unmarshal(out, &r)
			return r.Cycles * FileOpsPerCycle, err
		}},
	}
	for _, w := range works {
		dir := h.scratch("cost-" + w.name)
		c, err := StartCollector(ctx, h.cfg.CollectorBin, h.cfg.Profile, filepath.Join(dir, "collector"), h.p.settle)
		if err != nil {
			return err
		}
		s0, err := h.proc.Sample(c.PID)
		if err != nil {
			c.Kill()
			return fmt.Errorf("collector: %w", err)
		}
		l, err := h.startLoad(w.args(dir)...)
		if err != nil {
			c.Kill()
			return err
		}
		if err := l.wait(nil); err != nil {
			c.Kill()
			return err
		}
		n, err := w.events(l.out.Bytes())
		if err != nil {
			c.Kill()
			return fmt.Errorf("pofr-load %s: %w", w.name, err)
		}
		time.Sleep(h.p.drain)
		ex, err := c.Stop(30 * time.Second)
		if err != nil {
			return err
		}
		rows, err := ReadSpool(c.SpoolDir)
		if err != nil {
			return err
		}
		cpu := ex.CPU - s0.CPU
		core := 100 * float64(cpu) / float64(ex.At.Sub(s0.At))
		r := Result{Name: w.name + "/" + condCollector, N: n}
		r.Add(float64(cpu)/1e3/float64(max(n, 1)), w.unit)
		r.Add(core, "cpu-%core")
		r.Add(float64(ex.MaxRSS)/(1<<20), "rss-MB")
		r.Add(Ratio(float64(rows.Bytes), float64(rows.Rows)), "spool-B/row")
		h.emit(r)
		h.budget(core, ex.MaxRSS)
	}
	return nil
}

func durList(ds []time.Duration) string {
	var b []byte
	for i, d := range ds {
		if i > 0 {
			b = append(b, ',')
		}
		if d == 0 {
			b = append(b, '0')
		} else {
			b = append(b, d.String()...)
		}
	}
	return string(b)
}

// targetChecks evaluates the seed's budget and our targets.
func (h *harness) targetChecks() []Check {
	rs := h.results
	sums := Aggregate(rs)
	nan := math.NaN()
	core, rss := h.maxCore, h.maxRSS
	if h.collectorErr != nil && core == 0 {
		core, rss = nan, nan
	}
	lifeAtLeast5ms := func(name string) bool {
		life, _, _ := strings.Cut(strings.TrimPrefix(name, "Procs/life="), "/")
		d, err := time.ParseDuration(life)
		return err == nil && d >= 5*time.Millisecond
	}
	minExec := math.NaN()
	for _, v := range []float64{
		extreme(rs, "Exec/", "/collector", "exec-%", nil, true),
		extreme(rs, "Procs/", "/collector", "exec-%", nil, true),
	} {
		if !math.IsNaN(v) && (math.IsNaN(minExec) || v < minExec) {
			minExec = v
		}
	}
	checks := []Check{
		{Name: "seed budget: collector CPU ≤ 1 core (worst window)", Got: core, Limit: 100, AtMost: true, Unit: "%core", Budget: true},
		{Name: "seed budget: collector peak RSS ≤ 400 MB (worst run)", Got: rss, Limit: 400, AtMost: true, Unit: "MB", Budget: true},
	}
	floorNote := func(v float64, unit string) string {
		if math.IsNaN(v) {
			return ""
		}
		return "a cn_proc reader doing only the argv reads, same run: " + checkValue(v) + " " + unit
	}
	for _, rate := range []string{"1000", "max"} {
		auditd := median(sums, "Exec/rate="+rate+"/auditd", "cpu-us/exec")
		floor := median(sums, "Exec/rate="+rate+"/"+condFloor, "cpu-us/exec")
		checks = append(checks, Check{
			Name:  "collector CPU per exec ≤ 0.5× auditd + kauditd at rate=" + rate,
			Got:   Ratio(median(sums, "Exec/rate="+rate+"/collector", "cpu-us/exec"), auditd),
			Limit: 0.5, AtMost: true, Unit: "×", Why: "needs both the collector and auditd measured",
			Context: floorNote(Ratio(floor, auditd), "×"),
		})
	}
	// The tracepoint capture's bar, with the cn_proc collector it replaced
	// beside it (same run).
	for _, rate := range []string{"1000", "max"} {
		auditd := median(sums, "Exec/rate="+rate+"/auditd", "cpu-us/exec")
		cn := Ratio(median(sums, "Exec/rate="+rate+"/"+condCollectorCnproc, "cpu-us/exec"), auditd)
		ctx := ""
		if !math.IsNaN(cn) {
			ctx = "the collector with --no-proc-tracepoints (cn_proc), same run: " + checkValue(cn) + " ×"
		}
		checks = append(checks, Check{
			Name:  "collector CPU per exec ≤ 0.1× auditd + kauditd at rate=" + rate + " (tracepoint capture)",
			Got:   Ratio(median(sums, "Exec/rate="+rate+"/collector", "cpu-us/exec"), auditd),
			Limit: 0.1, AtMost: true, Unit: "×", Why: "needs both the collector and auditd measured",
			Context: ctx,
		})
	}
	// The regression guard: the whole collector (process, file and socket
	// sources, spool) against that floor in the same run; 1.5× when set.
	for _, rate := range []string{"1000", "max"} {
		checks = append(checks, Check{
			Name:  "regression guard: collector CPU per exec ≤ 2× the cn_proc floor at rate=" + rate,
			Got:   Ratio(median(sums, "Exec/rate="+rate+"/collector", "cpu-us/exec"), median(sums, "Exec/rate="+rate+"/"+condFloor, "cpu-us/exec")),
			Limit: 2, AtMost: true, Unit: "×", Why: "needs both the collector and the floor reader measured",
		})
	}
	checks = append(checks,
		Check{Name: "workload slowdown under the collector at max exec rate ≤ 3 %", Got: median(sums, "Exec/rate=max/collector", "slowdown-%"), Limit: 3, AtMost: true, Unit: "%",
			Context: floorNote(median(sums, "Exec/rate=max/"+condFloor, "slowdown-%"), "%")},
		Check{Name: "exec events recorded (worst run) = 100 %", Got: minExec, Limit: 100, Unit: "%"},
		Check{Name: "argv captured for lifetimes ≥ 5 ms (worst bucket) ≥ 99 %", Got: extreme(rs, "Procs/", "/collector", "argv-%", lifeAtLeast5ms, true), Limit: 99, Unit: "%"},
		Check{Name: "connection owner, TCP, lifetimes 1 ms … 1 s (worst bucket) ≥ 99 %", Got: extreme(rs, "Conns/tcp", "/collector", "owner-%", nil, true), Limit: 99, Unit: "%"},
		Check{Name: "connection owner, connected UDP, lifetimes 1 ms … 1 s (worst bucket) ≥ 95 %", Got: extreme(rs, "Conns/udp", "/collector", "owner-%", nil, true), Limit: 95, Unit: "%"},
		Check{Name: "collector CPU per connection ≤ 10 µs", Got: median(sums, "Conn/collector", "cpu-us/conn"), Limit: 10, AtMost: true, Unit: "µs"},
		Check{Name: "collector peak RSS at 1000 exec/s ≤ 64 MB", Got: extreme(rs, "Exec/rate=1000/", "/collector", "rss-MB", nil, false), Limit: 64, AtMost: true, Unit: "MB"},
		Check{Name: "spool bytes per row at 1000 exec/s ≤ 40 B", Got: median(sums, "Exec/rate=1000/collector", "spool-B/row"), Limit: 40, AtMost: true, Unit: "B"},
	)
	return checks
}

// noiseNote warns in the report when the machine was too busy for the
// slowdown figures to mean much: the max-rate storm without an observer
// varied by more than 20 % between repetitions.
func (h *harness) noiseNote() {
	var v []float64
	for _, r := range h.results {
		if r.Name == execName(0, condNone) {
			if x, ok := r.Get("exec/s"); ok {
				v = append(v, x)
			}
		}
	}
	if len(v) > 1 && slices.Min(v) > 0 && slices.Max(v)/slices.Min(v) > 1.2 {
		h.notes = append(h.notes, fmt.Sprintf("the machine was busy: the max-rate storm without an observer ran at %s–%s exec/s "+
			"across repetitions, so throughput slowdowns in this run are noise; CPU per exec and capture are less affected", FormatValue(slices.Min(v)), FormatValue(slices.Max(v))))
	}
}
