package testutil

import "slices"

// Interleaved returns conds in order on even rounds and reversed on odd
// ones, so that no condition of a benchmark always runs first or last on a
// machine whose load drifts.
func Interleaved(conds []string, round int) []string {
	out := slices.Clone(conds)
	if round%2 == 1 {
		slices.Reverse(out)
	}
	return out
}

// Median returns the middle value of v (the upper one of an even count), or
// 0 for none; v is not reordered.
func Median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
