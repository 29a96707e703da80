// Package defaults fills the unset fields of an options struct: the one rule
// every Options, Limits and Config in pofr follows, that a zero or negative
// size, count or duration means "use the default" and an empty string or nil
// value means the same.
package defaults

// number is what Positive compares with zero (time.Duration included).
type number interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 |
		~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 |
		~float32 | ~float64
}

// Positive sets *p to d when *p is zero or negative.
func Positive[T number](p *T, d T) {
	if *p <= 0 {
		*p = d
	}
}

// Zero sets *p to d when *p is its type's zero value ("" or nil).
func Zero[T comparable](p *T, d T) {
	var zero T
	if *p == zero {
		*p = d
	}
}
