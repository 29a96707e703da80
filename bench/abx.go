package bench

import (
	"fmt"
	"math"
	"slices"
)

// The A/B section measures what an observer adds to the CPU of the task
// that execs: short blocks, one per condition and repetition, the order
// rotated each repetition; in each block a spawner forks and execs the
// cheapest program there is as fast as it can and reports its own and its
// children's CPU per exec. The figure per condition is the median over
// repetitions of block − the same repetition's none block, so slow drifts
// of a shared machine cancel.

// abCondCnproc, abCondCollector, abCondAuditd name the observers of the A/B
// section beside condNone; abCondControl is a second block without an
// observer, the A/A control whose paired delta is the run's noise.
const (
	abCondCollector = condCollector
	abCondCnproc    = condCollectorCnproc
	abCondAuditd    = condAuditd
	abCondControl   = "none-again"
)

// abConds is the A/B section's conditions in their first repetition's order.
var abConds = []string{condNone, abCondCollector, abCondAuditd, abCondCnproc, abCondControl}

// abOrder returns the conditions of repetition rep: conds rotated left by
// rep, so that every condition runs in every position.
func abOrder(conds []string, rep int) []string {
	n := len(conds)
	out := make([]string, n)
	for i := range conds {
		out[i] = conds[(i+rep)%n]
	}
	return out
}

// DeltaStats summarises the paired differences of one condition.
type DeltaStats struct {
	N              int // repetitions with both blocks measured
	Median, Q1, Q3 float64
}

// IQR is Q3 − Q1.
func (d DeltaStats) IQR() float64 { return d.Q3 - d.Q1 }

// String prints "+33.1 [+30.2 … +35.0]" (median [Q1 … Q3]).
func (d DeltaStats) String() string {
	if d.N == 0 {
		return "–"
	}
	return fmt.Sprintf("%+.1f [%+.1f … %+.1f]", d.Median, d.Q1, d.Q3)
}

// PairedDelta returns the statistics of cond[i] − base[i] over the
// repetitions where both are measured (not NaN). The slices are indexed by
// repetition.
func PairedDelta(base, cond []float64) DeltaStats {
	var d []float64
	for i := range min(len(base), len(cond)) {
		if !math.IsNaN(base[i]) && !math.IsNaN(cond[i]) {
			d = append(d, cond[i]-base[i])
		}
	}
	if len(d) == 0 {
		return DeltaStats{Median: math.NaN(), Q1: math.NaN(), Q3: math.NaN()}
	}
	slices.Sort(d)
	return DeltaStats{N: len(d), Median: quantile(d, 0.5), Q1: quantile(d, 0.25), Q3: quantile(d, 0.75)}
}

// quantile returns the q-quantile of sorted s by linear interpolation
// between closest ranks (R's type 7, numpy's default).
func quantile(s []float64, q float64) float64 {
	if len(s) == 1 {
		return s[0]
	}
	h := q * float64(len(s)-1)
	lo := int(math.Floor(h))
	if lo >= len(s)-1 {
		return s[len(s)-1]
	}
	return s[lo] + (h-float64(lo))*(s[lo+1]-s[lo])
}

// abMinReps is the fewest paired repetitions that decide the A/B bar.
const abMinReps = 4

// abAboveNoise reports whether auditd's paired delta is clearly above
// noise: at least abMinReps pairs, its lower quartile positive, at least
// half its spread and above the A/A control's upper quartile (when the
// control was measured), so that the ratio's denominator is not noise.
func abAboveNoise(auditd, control DeltaStats) (bool, string) {
	switch {
	case auditd.N < abMinReps:
		return false, fmt.Sprintf("auditd's delta has %d paired repetitions, fewer than %d", auditd.N, abMinReps)
	case auditd.Q1 <= 0 || auditd.Q1 < auditd.IQR()/2:
		return false, fmt.Sprintf("auditd's delta %s µs/exec is not clearly above noise (lower quartile ≤ 0 or below half the spread)", auditd)
	case control.N > 0 && auditd.Q1 <= control.Q3:
		return false, fmt.Sprintf("auditd's delta %s µs/exec overlaps the A/A control's %s", auditd, control)
	}
	return true, ""
}

// ExecABCheck is the bar "extra CPU in the exec'ing task ≤ 0.25× auditd's":
// the collector's median paired delta ÷ auditd's. It is undecided, not
// passed or missed, when auditd's delta is not clearly above noise; the
// ratio at the collector's quartiles, the cn_proc collector's ratio and the
// A/A control (none against none) are printed beside it.
func ExecABCheck(collector, cnproc, auditd, control DeltaStats) Check {
	c := Check{Name: "extra CPU in the exec'ing task ≤ 0.25× auditd's (A/B blocks)", Limit: 0.25, AtMost: true, Unit: "×",
		Got: math.NaN(), Why: "needs the collector and auditd measured in the A/B blocks"}
	if collector.N == 0 || auditd.N == 0 {
		return c
	}
	c.Got = collector.Median / auditd.Median
	c.Context = fmt.Sprintf("collector %s, auditd %s µs/exec (median [Q1 … Q3] of %d pairs; the collector's quartiles give %s … %s ×)",
		collector, auditd, min(collector.N, auditd.N), checkValue(collector.Q1/auditd.Median), checkValue(collector.Q3/auditd.Median))
	if cnproc.N > 0 {
		c.Context += fmt.Sprintf("; the collector with --no-proc-tracepoints (cn_proc): %s µs/exec, %s ×", cnproc, checkValue(cnproc.Median/auditd.Median))
	}
	if control.N > 0 {
		c.Context += fmt.Sprintf("; A/A control (no observer in either block): %s µs/exec", control)
	}
	if ok, why := abAboveNoise(auditd, control); !ok {
		c.Undecided = why
	}
	return c
}

// idleBusyRate is the event rate (exec and file rows per second seen by the
// idle collector) above which the host was not idle and the idle bar is
// undecided: other processes' execs and file writes wake the collector.
const idleBusyRate = 1.0

// IdleCheck is the bar "idle collector ≤ 0.1 % of a core": core is the
// collector's CPU over the window in % of a core, execs and files the
// events it recorded in the window of secs seconds. With more than
// idleBusyRate events per second the host was not idle and the check is
// undecided.
func IdleCheck(core float64, execs, files int, secs float64) Check {
	c := Check{Name: "idle collector ≤ 0.1 % of a core", Got: core, Limit: 0.1, AtMost: true, Unit: "%core",
		Why: "the idle collector was not measured"}
	if math.IsNaN(core) || secs <= 0 {
		c.Got = math.NaN()
		return c
	}
	rate := float64(execs+files) / secs
	c.Context = fmt.Sprintf("%d exec + %d file events in %s s (%s/s)", execs, files, FormatValue(secs), FormatValue(rate))
	if rate > idleBusyRate {
		c.Undecided = fmt.Sprintf("the host was not idle: %s events/s > %s/s", FormatValue(rate), FormatValue(idleBusyRate))
	}
	return c
}
