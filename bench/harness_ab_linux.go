package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"time"

	"github.com/pofr/pofr/internal/event"
)

// abBlockResult is one A/B block: the spawner's own and its children's CPU
// per exec, in µs, and its exec rate.
type abBlockResult struct {
	usPerExec, rate float64
}

// runABBlock runs one max-rate block of the exit program and returns what
// the spawner measured.
func (h *harness) runABBlock() (abBlockResult, error) {
	l, err := h.startLoad("exec", "-path", h.exitProg, "-rate", "0", "-duration", h.p.abBlock.String())
	if err != nil {
		return abBlockResult{}, err
	}
	var e ExecResult
	if err := l.wait(&e); err != nil {
		return abBlockResult{}, err
	}
	if e.Spawned == 0 || e.Failed > 0 {
		return abBlockResult{}, fmt.Errorf("A/B block: %d execs, %d failed", e.Spawned, e.Failed)
	}
	return abBlockResult{usPerExec: float64(e.SelfCPU+e.ChildCPU) / 1e3 / float64(e.Spawned), rate: e.Rate}, nil
}

// abBlock runs one block under cond: the observer is started, the block
// runs, the observer is stopped.
func (h *harness) abBlock(ctx context.Context, cond string) (abBlockResult, error) {
	switch cond {
	case condNone, abCondControl:
		return h.runABBlock()
	case abCondAuditd:
		if h.auditErr != nil {
			return abBlockResult{}, h.auditErr
		}
		a, err := StartAuditd(ctx, h.scratch("ab-auditd"), h.proc, h.cfg.Log)
		if err != nil {
			// Another benchmark's auditd on a shared machine costs this
			// block only; anything else ends auditd's part of the run.
			if !errors.Is(err, ErrAuditBusy) {
				h.auditErr = err
			}
			return abBlockResult{}, err
		}
		r, err := func() (abBlockResult, error) {
			if err := a.AddRule(ctx); err != nil {
				return abBlockResult{}, err
			}
			time.Sleep(h.p.abSettle)
			return h.runABBlock()
		}()
		if serr := a.Stop(context.WithoutCancel(ctx)); serr != nil {
			h.notes = append(h.notes, "audit state restore: "+serr.Error())
			h.auditErr = serr
			err = errors.Join(err, serr)
		}
		return r, err
	case abCondCollector, abCondCnproc:
		if h.collectorErr != nil {
			return abBlockResult{}, h.collectorErr
		}
		var extra []string
		if cond == abCondCnproc {
			extra = []string{"--no-proc-tracepoints"}
		}
		c, err := StartCollector(ctx, h.cfg.CollectorBin, h.cfg.Profile, h.scratch("ab-"+cond), h.p.settle, extra...)
		if err != nil {
			return abBlockResult{}, err
		}
		defer c.Kill()
		r, err := h.runABBlock()
		if err != nil {
			return r, err
		}
		_, err = c.Stop(30 * time.Second)
		return r, err
	}
	return abBlockResult{}, fmt.Errorf("unknown A/B condition %q", cond)
}

// execAB runs the A/B section and emits one ExecAB/<cond> result per
// condition: the median absolute cost and the paired delta against none.
func (h *harness) execAB(ctx context.Context) error {
	reps := h.cfg.ABReps
	if reps <= 0 {
		reps = h.p.abReps
	}
	var err error
	if h.exitProg, err = ExitProgram(ctx, h.cfg.WorkDir); err != nil {
		return err
	}
	cost := map[string][]float64{}
	rate := map[string][]float64{}
	for _, cond := range abConds {
		cost[cond] = make([]float64, reps)
		rate[cond] = make([]float64, reps)
	}
	failed := map[string]error{}
	for rep := range reps {
		order := abOrder(abConds, rep)
		h.cfg.Log.Info("A/B section", "rep", rep+1, "of", reps, "order", order)
		for _, cond := range order {
			r, err := h.abBlock(ctx, cond)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				if failed[cond] == nil {
					h.cfg.Log.Warn("A/B block not measured", "condition", cond, "err", err)
				}
				failed[cond] = err
				r = abBlockResult{usPerExec: math.NaN(), rate: math.NaN()}
			}
			h.cfg.Log.Debug("A/B block", "rep", rep+1, "condition", cond, "us/exec", r.usPerExec, "exec/s", r.rate)
			cost[cond][rep], rate[cond][rep] = r.usPerExec, r.rate
			time.Sleep(h.p.abSettle)
		}
	}
	for _, cond := range abConds {
		if err := failed[cond]; err != nil {
			n := 0
			for _, v := range cost[cond] {
				if math.IsNaN(v) {
					n++
				}
			}
			h.notes = append(h.notes, fmt.Sprintf("A/B condition %s not measured in %d of %d blocks (last error: %v)", cond, n, reps, err))
		}
	}
	deltas := map[string]DeltaStats{}
	for _, cond := range abConds {
		r := Result{Name: "ExecAB/" + cond}
		var v, x []float64
		for i := range reps {
			if !math.IsNaN(cost[cond][i]) {
				v, x = append(v, cost[cond][i]), append(x, rate[cond][i])
			}
		}
		r.N = len(v)
		r.Add(Median(v), "us/exec")
		r.Add(Median(x), "exec/s")
		if cond != condNone {
			d := PairedDelta(cost[condNone], cost[cond])
			deltas[cond] = d
			r.N = d.N
			r.Add(d.Median, "delta-us/exec")
			r.Add(d.Q1, "delta-q1-us/exec")
			r.Add(d.Q3, "delta-q3-us/exec")
		}
		h.emit(r)
	}
	h.checks = append(h.checks, ExecABCheck(deltas[abCondCollector], deltas[abCondCnproc], deltas[abCondAuditd], deltas[abCondControl]))
	return nil
}

// idle measures the collector with nothing to do: started with the run's
// profile, left to finish its start-up work (the seal of its first segment,
// which holds the snapshot of every process and socket, then a warm-up),
// then its CPU from /proc/PID/stat over the idle window, and the exec and
// file events it recorded in that window (others' activity on a shared
// host). The start-up's CPU is reported beside it, not hidden.
func (h *harness) idle(ctx context.Context) error {
	if h.collectorErr != nil {
		h.checks = append(h.checks, IdleCheck(math.NaN(), 0, 0, 0))
		return nil
	}
	started := time.Now()
	c, err := StartCollector(ctx, h.cfg.CollectorBin, h.cfg.Profile, h.scratch("idle"), h.p.settle)
	if err != nil {
		return err
	}
	defer c.Kill()
	h.cfg.Log.Info("idle section", "first seal within", idleFirstSeal, "warm-up", h.p.idleWarm, "window", h.p.idleDur)
	sealed, err := waitFirstSeal(ctx, c.SpoolDir, idleFirstSeal)
	if err != nil {
		return err
	}
	if !sealed {
		h.notes = append(h.notes, fmt.Sprintf("idle collector: no segment sealed within %v of the start; its window may hold start-up work", idleFirstSeal))
	}
	if err := sleepCtx(ctx, h.p.idleWarm); err != nil {
		return err
	}
	s0, err := h.proc.Sample(c.PID)
	if err != nil {
		return fmt.Errorf("idle collector: %w", err)
	}
	rt0, err := h.proc.RunTime(c.PID)
	if err != nil {
		return fmt.Errorf("idle collector: %w", err)
	}
	startup := s0.At.Sub(started)
	if err := sleepCtx(ctx, h.p.idleDur); err != nil {
		return err
	}
	s1, err := h.proc.Sample(c.PID)
	if err != nil {
		return fmt.Errorf("idle collector: %w", err)
	}
	rt1, err := h.proc.RunTime(c.PID)
	if err != nil {
		return fmt.Errorf("idle collector: %w", err)
	}
	_, rows, err := c.StopAndRead(30 * time.Second)
	if err != nil {
		return err
	}
	from, to := s0.At.UnixNano(), s1.At.UnixNano()
	execs, files := 0, 0
	for _, p := range rows.Procs {
		if p.Event == event.ProcExec && p.TS >= from && p.TS <= to {
			execs++
		}
	}
	for _, f := range rows.FileEvents {
		if f.TS >= from && f.TS <= to {
			files += int(f.N)
		}
	}
	wall := s1.At.Sub(s0.At)
	// The threads' run time to the ns; the clock ticks of /proc/PID/stat
	// when a thread exited in the window.
	cpu, ok := rt1.Since(rt0)
	if !ok {
		cpu = s1.CPU - s0.CPU
		h.notes = append(h.notes, "idle collector: a thread exited in the window; its CPU is in clock ticks (10 ms)")
	}
	core := 100 * float64(cpu) / float64(wall)
	secs := wall.Seconds()
	r := Result{Name: "Idle/" + condCollector, N: int(math.Round(secs))}
	r.Add(core, "cpu-%core")
	r.Add(float64(execs)/secs, "exec/s")
	r.Add(float64(files)/secs, "file-events/s")
	r.Add(float64(s1.Mem.RSS)/(1<<20), "rss-MB")
	r.Add(float64(s0.CPU)/float64(time.Millisecond), "startup-cpu-ms")
	r.Add(startup.Seconds(), "startup-s")
	h.emit(r)
	h.checks = append(h.checks, IdleCheck(core, execs, files, secs))
	return nil
}

// idleFirstSeal bounds the wait for the idle collector's first segment:
// every profile seals the open batch well within it (MaxSegmentAge).
const idleFirstSeal = time.Minute

// waitFirstSeal waits until dir holds a sealed segment (*.pofr), at most
// limit; it reports whether one appeared.
func waitFirstSeal(ctx context.Context, dir string, limit time.Duration) (bool, error) {
	deadline := time.Now().Add(limit)
	for {
		if m, _ := filepath.Glob(filepath.Join(dir, "*.pofr")); len(m) > 0 {
			return true, nil
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return false, err
		}
	}
}

// abSection runs the A/B and idle sections; a failure is a note and a SKIP
// line, not the end of the run.
func (h *harness) abSection(ctx context.Context) error {
	for _, sec := range []struct {
		what string
		run  func(context.Context) error
		skip Check
	}{
		{"A/B", h.execAB, ExecABCheck(DeltaStats{}, DeltaStats{}, DeltaStats{}, DeltaStats{})},
		{"idle", h.idle, IdleCheck(math.NaN(), 0, 0, 0)},
	} {
		if err := sec.run(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			h.notes = append(h.notes, sec.what+" section not measured: "+err.Error())
			sec.skip.Why = "not measured: " + err.Error()
			h.checks = append(h.checks, sec.skip)
		}
	}
	return nil
}

// sleepCtx sleeps d, or returns ctx's error if it is done first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
