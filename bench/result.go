package bench

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Metric is one measured value with its unit, in Go benchmark format
// ("52.1 cpu-us/exec"). The unit never holds spaces.
type Metric struct {
	Value float64
	Unit  string
}

// Result is one measured run of one benchmark: a line in Go benchmark format.
// Several Results with the same Name are repetitions; benchstat and
// [Aggregate] summarise them.
type Result struct {
	// Name is the benchmark name without the "Benchmark" prefix and the
	// GOMAXPROCS suffix, e.g. "Exec/rate=1000/auditd".
	Name string
	// N is the number of operations the run made (execs, connections, file
	// cycles); it is printed where Go prints iterations.
	N       int
	Metrics []Metric
}

// Add appends a metric to r. NaN values (nothing measured) are skipped, so
// a missing measurement is absent rather than printed as a number.
func (r *Result) Add(v float64, unit string) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	r.Metrics = append(r.Metrics, Metric{v, unit})
}

// Get returns the value of the metric with the given unit.
func (r Result) Get(unit string) (float64, bool) {
	for _, m := range r.Metrics {
		if m.Unit == unit {
			return m.Value, true
		}
	}
	return 0, false
}

// WriteBench writes r as one line of Go benchmark format, the form
// benchstat reads:
//
//	BenchmarkExec/rate=1000/auditd-2   20000   52.1 cpu-us/exec   5.21 cpu-%core
//
// procs is the GOMAXPROCS-style suffix (the machine's CPU count).
func WriteBench(w io.Writer, r Result, procs int) error {
	var b strings.Builder
	name := "Benchmark" + strings.ReplaceAll(r.Name, " ", "_")
	if procs > 1 {
		name += "-" + strconv.Itoa(procs)
	}
	fmt.Fprintf(&b, "%-48s %8d", name, max(r.N, 1))
	for _, m := range r.Metrics {
		fmt.Fprintf(&b, " %12s %s", FormatValue(m.Value), m.Unit)
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}

// FormatValue prints v with three significant digits, as benchstat does,
// without exponent notation for the magnitudes a benchmark produces.
func FormatValue(v float64) string {
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

// Summary is the aggregate of one metric over the repetitions of one
// benchmark.
type Summary struct {
	Name     string
	Unit     string
	Median   float64
	Min, Max float64
	Runs     int
}

// String prints the median, and the range when there was more than one run:
// "105 [101–116]".
func (s Summary) String() string {
	if s.Runs <= 1 || s.Min == s.Max {
		return FormatValue(s.Median)
	}
	return fmt.Sprintf("%s [%s–%s]", FormatValue(s.Median), FormatValue(s.Min), FormatValue(s.Max))
}

// Aggregate summarises results by (name, unit): the median, minimum and
// maximum over the repetitions. The order is that of first appearance.
func Aggregate(results []Result) []Summary {
	type key struct{ name, unit string }
	var order []key
	vals := map[key][]float64{}
	for _, r := range results {
		for _, m := range r.Metrics {
			k := key{r.Name, m.Unit}
			if _, ok := vals[k]; !ok {
				order = append(order, k)
			}
			vals[k] = append(vals[k], m.Value)
		}
	}
	out := make([]Summary, 0, len(order))
	for _, k := range order {
		v := vals[k]
		out = append(out, Summary{Name: k.name, Unit: k.unit, Median: Median(v), Min: slices.Min(v), Max: slices.Max(v), Runs: len(v)})
	}
	return out
}

// Find returns the summary of unit for the benchmark name.
func Find(sums []Summary, name, unit string) (Summary, bool) {
	for _, s := range sums {
		if s.Name == name && s.Unit == unit {
			return s, true
		}
	}
	return Summary{}, false
}

// Median returns the median of v (the mean of the two middle values for an
// even count), or NaN for an empty slice. v is not modified.
func Median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Percentile returns the p-th percentile (0 ≤ p ≤ 100, nearest rank) of v,
// or the zero value for an empty slice. v is not modified.
func Percentile[T cmp.Ordered](v []T, p float64) T {
	var zero T
	if len(v) == 0 {
		return zero
	}
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// Ratio returns a/b, or NaN when b is zero or either is NaN.
func Ratio(a, b float64) float64 {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return math.NaN()
	}
	return a / b
}

// Percent returns 100·n/total, or NaN when total is zero.
func Percent(n, total int) float64 {
	if total == 0 {
		return math.NaN()
	}
	return 100 * float64(n) / float64(total)
}
