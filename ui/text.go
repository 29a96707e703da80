package ui

import (
	"fmt"
	"html/template"
	"net/url"
	"strconv"
	"time"

	"github.com/pofr/pofr/query"
)

// timeLayout is how pages print instants: UTC, microseconds.
const timeLayout = "2006-01-02 15:04:05.000000Z"

// inputLayout is how time fields are filled in (query.ParseTime reads it).
const inputLayout = "2006-01-02 15:04:05.999999"

var funcs = template.FuncMap{
	"time": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(timeLayout)
	},
	"script": func(s query.Statement) string { return s.Script() },
	"add":    func(a, b int) int { return a + b },
	"pct":    func(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) },
}

// text returns a value of a query table as safe text ("" for NULL).
func text(t *query.Table, r int, col string) string {
	for _, c := range t.Columns {
		if c.Name == col {
			return query.Output{}.Text(c, t.Value(r, col))
		}
	}
	return ""
}

// num returns an integer value of a query table (0 for NULL or none).
func num(t *query.Table, r int, col string) int64 {
	switch v := t.Value(r, col).(type) {
	case int64:
		return v
	case uint64:
		return int64(v)
	case []byte:
		n, _ := strconv.ParseInt(string(v), 10, 64)
		return n
	}
	return 0
}

// optNum is num with NULL as nil.
func optNum(t *query.Table, r int, col string) *int64 {
	if t.Value(r, col) == nil {
		return nil
	}
	n := num(t, r, col)
	return &n
}

// instant returns a time value of a query table (zero for NULL).
func instant(t *query.Table, r int, col string) time.Time {
	switch v := t.Value(r, col).(type) {
	case query.Cell:
		return v.T
	case time.Time:
		return v.UTC()
	}
	return time.Time{}
}

// raw returns a byte value of a query table exactly.
func raw(t *query.Table, r int, col string) []byte {
	switch v := t.Value(r, col).(type) {
	case []byte:
		return v
	case string:
		return []byte(v)
	}
	return nil
}

// args returns argv's arguments, each made safe text.
func args(argv []byte) []string {
	var out []string
	for _, a := range query.SplitArgv(argv) {
		out = append(out, query.Safe(a))
	}
	return out
}

// hostURL is the host page of id with the query values q.
func hostURL(id string, q url.Values) string {
	u := "/host/" + url.PathEscape(id)
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// procURL is the process page of pid on host (start 0: the newest life).
func procURL(host string, pid, start int64) string {
	u := "/host/" + url.PathEscape(host) + "/proc/" + strconv.FormatInt(pid, 10)
	if start > 0 {
		u += "?start=" + strconv.FormatInt(start, 10)
	}
	return u
}

// inputTime formats t for a time field.
func inputTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(inputLayout)
}

// duration prints d briefly (3d4h, 2h5m, 40s, 250ms).
func duration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd%dh", d/(24*time.Hour), d%(24*time.Hour)/time.Hour)
	case d >= time.Hour:
		if m := d % time.Hour / time.Minute; m != 0 {
			return fmt.Sprintf("%dh%dm", d/time.Hour, m)
		}
		return fmt.Sprintf("%dh", d/time.Hour)
	case d >= time.Second:
		return d.Truncate(time.Second).String()
	}
	return d.Round(time.Millisecond).String()
}
