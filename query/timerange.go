package query

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrBadTime reports a time or duration that cannot be parsed.
var ErrBadTime = errors.New("query: bad time")

// timeLayouts are the accepted forms of --from, --to and --at, besides
// RFC 3339. A time without an offset is UTC.
var timeLayouts = []string{
	"2006-01-02 15:04:05.999999999",
	"2006-01-02 15:04:05",
	"2006-01-02 15:04",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04:05",
	"2006-01-02T15:04",
	"2006-01-02",
}

// ParseTime parses an RFC 3339 time (2024-06-20T19:23:00Z,
// 2024-06-20T21:23:00+02:00) or 'YYYY-MM-DD HH:MM[:SS[.frac]]' (also with a T,
// or a date alone), which is taken as UTC. The result is in UTC.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	for _, l := range timeLayouts {
		if t, err := time.ParseInLocation(l, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%w: %q is neither RFC 3339 nor 'YYYY-MM-DD HH:MM[:SS]'", ErrBadTime, s)
}

// ParseSince parses a --since duration: Go durations (90m, 2h30m) plus days
// and weeks (2d, 1w, 1d12h).
func ParseSince(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var total time.Duration
	rest := s
	for _, u := range []struct {
		suffix string
		d      time.Duration
	}{{"w", 7 * 24 * time.Hour}, {"d", 24 * time.Hour}} {
		if i := strings.Index(rest, u.suffix); i > 0 {
			n, err := strconv.Atoi(rest[:i])
			if err != nil || n < 0 {
				return 0, fmt.Errorf("%w: duration %q", ErrBadTime, s)
			}
			total += time.Duration(n) * u.d
			rest = rest[i+1:]
		}
	}
	if rest != "" {
		d, err := time.ParseDuration(rest)
		if err != nil {
			return 0, fmt.Errorf("%w: duration %q", ErrBadTime, s)
		}
		total += d
	}
	if total <= 0 {
		return 0, fmt.Errorf("%w: duration %q must be positive", ErrBadTime, s)
	}
	return total, nil
}

// Range is a time interval [From, To): From is included, To is not. A zero
// From or To leaves that side open.
type Range struct {
	From, To time.Time
}

// ParseRange builds a Range from the --since, --from and --to flag values
// (each may be empty). --since D means [now−D, open); it cannot be combined
// with --from.
func ParseRange(since, from, to string, now time.Time) (Range, error) {
	var r Range
	if since != "" && from != "" {
		return r, fmt.Errorf("%w: --since and --from both given", ErrBadTime)
	}
	if since != "" {
		d, err := ParseSince(since)
		if err != nil {
			return r, err
		}
		r.From = now.UTC().Add(-d)
	}
	if from != "" {
		t, err := ParseTime(from)
		if err != nil {
			return r, err
		}
		r.From = t
	}
	if to != "" {
		t, err := ParseTime(to)
		if err != nil {
			return r, err
		}
		r.To = t
	}
	if !r.From.IsZero() && !r.To.IsZero() && !r.From.Before(r.To) {
		return r, fmt.Errorf("%w: --from %s is not before --to %s", ErrBadTime, r.From.Format(time.RFC3339Nano), r.To.Format(time.RFC3339Nano))
	}
	return r, nil
}

// sqlTime is the value bound for an optional time: NULL when zero.
func sqlTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}

// ParseHours parses a time-of-day window "H1-H2" (hours 0–24, H1 < H2, or
// H1 > H2 for a window across midnight, e.g. 22-04). The window includes H1:00
// and excludes H2:00.
func ParseHours(s string) (from, to int, err error) {
	a, b, ok := strings.Cut(s, "-")
	if ok {
		from, err = strconv.Atoi(strings.TrimSpace(a))
		if err == nil {
			to, err = strconv.Atoi(strings.TrimSpace(b))
		}
	}
	if !ok || err != nil || from < 0 || from > 23 || to < 0 || to > 24 || from == to {
		return 0, 0, fmt.Errorf("%w: hours %q: want H1-H2 with 0 <= H1 <= 23, 0 <= H2 <= 24, H1 != H2", ErrBadTime, s)
	}
	return from, to, nil
}
