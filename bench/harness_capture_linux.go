package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

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
	ex, rows, err := c.StopAndRead(30 * time.Second)
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
		// One tiny run of the workload binary first, outside the
		// measurement: the collector hashes a binary it has not seen
		// (pofr-load is new after every build, ≈ 20 % of the CPU of a
		// quick run) and enriches its exec once, which is not a cost per
		// connection or file event.
		if err := h.warmLoad(); err != nil {
			c.Kill()
			return err
		}
		// The collector records the whole host: its CPU over an equal
		// window just before the workload is the host's background, which
		// the net figure subtracts (on a quiet host it is about zero).
		b0, err := h.proc.Sample(c.PID)
		if err != nil {
			c.Kill()
			return fmt.Errorf("collector: %w", err)
		}
		time.Sleep(h.p.costDur)
		s0, err := h.proc.Sample(c.PID)
		if err != nil {
			c.Kill()
			return fmt.Errorf("collector: %w", err)
		}
		bgRate := float64(s0.CPU-b0.CPU) / float64(s0.At.Sub(b0.At)) // CPU ns per ns
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
		// The stop seals the whole segment (every row of the host since
		// the collector started, not only the workload's): its CPU is
		// part of the figure, and shown apart.
		pre, err := h.proc.Sample(c.PID)
		if err != nil {
			c.Kill()
			return fmt.Errorf("collector: %w", err)
		}
		ex, rows, err := c.StopAndRead(30 * time.Second)
		if err != nil {
			return err
		}
		cpu := ex.CPU - s0.CPU
		core := 100 * float64(cpu) / float64(ex.At.Sub(s0.At))
		r := Result{Name: w.name + "/" + condCollector, N: n}
		r.Add(float64(cpu)/1e3/float64(max(n, 1)), w.unit)
		net := float64(cpu) - bgRate*float64(ex.At.Sub(s0.At))
		r.Add(net/1e3/float64(max(n, 1)), w.unit+"-net")
		r.Add(float64(ex.CPU-pre.CPU)/1e3/float64(max(n, 1)), w.unit+"-stop")
		r.Add(100*bgRate, "bg-%core")
		r.Add(core, "cpu-%core")
		r.Add(float64(ex.MaxRSS)/(1<<20), "rss-MB")
		r.Add(Ratio(float64(rows.Bytes), float64(rows.Rows)), "spool-B/row")
		h.emit(r)
		h.budget(core, ex.MaxRSS)
	}
	return nil
}

// warmLoad runs pofr-load once with a handful of connections and waits
// for the collector to have drained them.
func (h *harness) warmLoad() error {
	l, err := h.startLoad("conns", "-lifetimes", "1ms", "-per", "1", "-rate", "100")
	if err != nil {
		return err
	}
	if err := l.wait(nil); err != nil {
		return err
	}
	time.Sleep(h.p.drain)
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
