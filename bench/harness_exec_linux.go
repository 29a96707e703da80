package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

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
	case condCollector, condCollectorCnproc, condCollectorNoHash:
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
	// stats reads the stat of auditd and of the kernel's kauditd.
	stats := func() (Stat, Stat, error) {
		ad, err := h.proc.Stat(a.PID)
		if err != nil {
			return Stat{}, Stat{}, fmt.Errorf("auditd: %w", err)
		}
		kd, err := h.proc.Stat(a.Kauditd)
		if err != nil {
			return Stat{}, Stat{}, fmt.Errorf("kauditd: %w", err)
		}
		return ad, kd, nil
	}
	for _, rate := range rates {
		time.Sleep(h.p.drain)
		a0, k0, err := stats()
		if err != nil {
			return nil, err
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
		a1, k1, err := stats()
		if err != nil {
			return nil, err
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

// observedStorm samples the observer pid (named who in errors), runs one
// storm at rate and waits for the observer to drain it; the observer's
// second sample is the caller's.
func (h *harness) observedStorm(pid int, rate float64, who string) (Sample, ExecResult, error) {
	s0, err := h.proc.Sample(pid)
	if err != nil {
		return Sample{}, ExecResult{}, fmt.Errorf("%s: %w", who, err)
	}
	e, err := h.runExec(rate)
	if err != nil {
		return Sample{}, ExecResult{}, err
	}
	time.Sleep(h.p.drain)
	return s0, e, nil
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
	s0, e, err := h.observedStorm(pid, rate, "cn_proc floor reader")
	if err != nil {
		return nil, err
	}
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
	switch cond {
	case condCollectorCnproc:
		extra = []string{"--no-proc-tracepoints"}
	case condCollectorNoHash:
		extra = []string{"--no-exe-hash"}
	}
	c, err := StartCollector(ctx, h.cfg.CollectorBin, h.cfg.Profile, h.scratch(cond+"-exec"), h.p.settle, extra...)
	if err != nil {
		return nil, err
	}
	defer c.Kill()
	s0, e, err := h.observedStorm(c.PID, rate, "collector")
	if err != nil {
		return nil, err
	}
	ex, rows, err := c.StopAndRead(30 * time.Second)
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
