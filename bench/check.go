package bench

import (
	"fmt"
	"io"
	"math"
	"strconv"
)

// Verdict is the outcome of one threshold check.
type Verdict string

// The verdicts. FAIL is reserved for the seed's hard budget and makes the run
// exit non-zero; MISS marks a missed target, visible but not fatal; SKIP says
// the value could not be measured in this run, and why; UNDECIDED says it
// was measured but the run cannot tell (a noisy reference, a busy host).
const (
	Pass      Verdict = "PASS"
	Miss      Verdict = "MISS"
	Fail      Verdict = "FAIL"
	Skip      Verdict = "SKIP"
	Undecided Verdict = "UNDECIDED"
)

// Check is one threshold: a measured value against a limit.
type Check struct {
	// Name says what is checked, e.g. "collector CPU per exec ≤ 0.5× auditd".
	Name string
	// Got is the measured value (NaN when not measured).
	Got float64
	// Limit is the threshold; AtMost says whether Got must stay ≤ Limit
	// (true) or reach ≥ Limit (false).
	Limit  float64
	AtMost bool
	// Unit is printed after Got and Limit.
	Unit string
	// Budget makes a violation FAIL (the seed's hard budget) instead of MISS.
	Budget bool
	// Why explains a SKIP.
	Why string
	// Context, when set, is printed after the verdict: what the same
	// measurement gave for a reference in the same run.
	Context string
	// Undecided, when set, says why the measured value decides nothing
	// (the verdict is then UNDECIDED, never FAIL).
	Undecided string
}

// Verdict evaluates the check.
func (c Check) Verdict() Verdict {
	switch {
	case math.IsNaN(c.Got):
		return Skip
	case c.Undecided != "":
		return Undecided
	case c.AtMost && c.Got <= c.Limit, !c.AtMost && c.Got >= c.Limit:
		return Pass
	case c.Budget:
		return Fail
	default:
		return Miss
	}
}

// String prints the check as one line: "PASS collector RSS at 1000 exec/s: 31.2 MB (≤ 64 MB)".
func (c Check) String() string {
	v := c.Verdict()
	if v == Skip {
		why := c.Why
		if why == "" {
			why = "not measured"
		}
		return fmt.Sprintf("%s %s: %s", v, c.Name, why)
	}
	op := "≥"
	if c.AtMost {
		op = "≤"
	}
	line := fmt.Sprintf("%s %s: %s %s (%s %s %s)", v, c.Name, checkValue(c.Got), c.Unit, op, checkValue(c.Limit), c.Unit)
	if c.Context != "" {
		line += " — " + c.Context
	}
	if v == Undecided {
		line += " — " + c.Undecided
	}
	return line
}

// checkValue prints a checked value with four significant digits, so that a
// value just over its limit does not print as equal to it.
func checkValue(v float64) string {
	if math.Abs(v) >= 1e4 {
		return FormatValue(v)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// WriteChecks prints one line per check and reports whether any FAILed.
func WriteChecks(w io.Writer, checks []Check) (failed bool, err error) {
	for _, c := range checks {
		if c.Verdict() == Fail {
			failed = true
		}
		if _, err := fmt.Fprintln(w, c.String()); err != nil {
			return failed, err
		}
	}
	return failed, nil
}
