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
	"strings"
	"syscall"
	"time"
)

// Config configures a benchmark run.
type Config struct {
	// Quick shortens every window so that the run takes about 4 minutes.
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
	// ABReps is the repetitions of the A/B section (default 15, quick 6);
	// ABOnly runs the A/B and idle sections alone.
	ABReps int
	ABOnly bool
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
	// the A/B section: repetitions, block length, pause around blocks; the
	// idle section: warm-up after start and the measured window
	abReps                               int
	abBlock, abSettle, idleWarm, idleDur time.Duration
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
		abReps: 15, abBlock: time.Second, abSettle: 300 * time.Millisecond,
		idleWarm: 5 * time.Second, idleDur: 30 * time.Second,
	}
	if quick {
		p.execDur, p.settle = 3*time.Second, 1500*time.Millisecond
		p.perLife, p.procRate = 40, 30
		p.perConn, p.connRate = 5, 12
		p.captureFiles = 6 * time.Second
		p.costDur = 3 * time.Second
		p.abReps, p.idleWarm, p.idleDur = 6, 3*time.Second, 10*time.Second
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
	// exitProg is the A/B section's workload (ExitProgram)
	exitProg string
	n        int // scratch directory counter
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

	if cfg.ABOnly {
		if err := h.abSection(ctx); err != nil {
			return nil, err
		}
		return h.report(h.checks), nil
	}
	for rep := range cfg.Reps {
		order := []string{condNone, condAuditd, condFloor, condCollectorCnproc, condCollectorNoHash, condCollector}
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
			for _, cond := range []string{condNone, condAuditd, condFloor, condCollectorCnproc, condCollectorNoHash, condCollector} {
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
	if err := h.abSection(ctx); err != nil {
		return nil, err
	}
	for _, sec := range []struct {
		what string
		run  func(context.Context) error
	}{
		{"capture section: collector and poller side by side", h.capture},
		{"cost section: connections and file churn", h.costs},
	} {
		if h.collectorErr != nil {
			break
		}
		cfg.Log.Info(sec.what)
		if err := sec.run(ctx); err != nil {
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
	checks := append(h.targetChecks(), h.checks...)
	if cfg.Loader == nil {
		why := "not measured: " + cmp.Or(cfg.NoLoaderWhy, "no loader benchmark in this run (Config.Loader)")
		checks = append(checks, skipChecks(why, why)...)
	}
	return h.report(checks), nil
}

// report returns the run's report with checks, the notes on what was not
// measured, and Failed set by a FAIL check or a collector that did not run.
func (h *harness) report(checks []Check) *Report {
	rep := &Report{Results: h.results, Machine: Machine(), Checks: checks}
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
	return rep
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
