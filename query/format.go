package query

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Kind says how a column's values are printed.
type Kind int

// Column kinds.
const (
	// Text is a byte or string column printed with [Safe] (table, CSV) and
	// as a JSON string or {"b64": …} (JSON).
	Text Kind = iota
	// Argv is a NUL-separated argument list printed with [FormatArgv]
	// (table, CSV) and as a JSON array of arguments.
	Argv
	// Int is an integer column.
	Int
	// Time is a timestamp: "2006-01-02 15:04:05.000000Z" in UTC or, with
	// Local, in the host's own offset ("…+02:00"); RFC 3339 with
	// nanoseconds in JSON.
	Time
	// Addr is an IP address stored as 4 or 16 bytes, printed as text.
	Addr
	// display is text already made safe by this package (indented trees).
	display
)

// Show says in which formats a column appears.
type Show int

// Column visibility.
const (
	ShowAll  Show = iota // every format
	ShowText             // table and CSV only
	ShowJSON             // JSON only
	ShowNone             // a helper column, never printed
)

// Column is one output column.
type Column struct {
	Name string
	Kind Kind
	Show Show
}

// shown reports whether c is printed in format f.
func (c Column) shown(f Format) bool {
	switch c.Show {
	case ShowText:
		return f != FormatJSON
	case ShowJSON:
		return f == FormatJSON
	case ShowNone:
		return false
	}
	return true
}

// visible returns t's columns printed in format f, and their indexes.
func (t *Table) visible(f Format) ([]Column, []int) {
	var cols []Column
	var idx []int
	for i, c := range t.Columns {
		if c.shown(f) {
			cols = append(cols, c)
			idx = append(idx, i)
		}
	}
	return cols, idx
}

// Cell is one value of a Time column: the instant and the host's UTC offset
// in seconds at that time (for --local).
type Cell struct {
	T      time.Time
	Offset int
}

// Table is the result of a query: columns and rows. Values are nil (NULL),
// []byte, string, int64, uint64, Cell (Time columns) or netip.Addr.
type Table struct {
	Columns []Column
	Rows    [][]any
}

// Format is an output format.
type Format int

// Output formats.
const (
	FormatTable Format = iota // aligned columns, one header line
	FormatCSV                 // RFC 4180 with a header line
	FormatJSON                // JSON lines: one object per row
)

// Output holds the presentation options.
type Output struct {
	Format Format
	// Local prints times in each host's own UTC offset instead of UTC.
	Local bool
}

// Write prints t to w.
func (o Output) Write(w io.Writer, t *Table) error {
	bw := bufio.NewWriter(w)
	var err error
	switch o.Format {
	case FormatCSV:
		err = o.writeCSV(bw, t)
	case FormatJSON:
		err = o.writeJSON(bw, t)
	default:
		err = o.writeTable(bw, t)
	}
	if err != nil {
		return err
	}
	return bw.Flush()
}

// text returns the display form of v (table and CSV): safe to print.
func (o Output) text(k Kind, v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case []byte:
		switch k {
		case display:
			return string(x)
		case Argv:
			return FormatArgv(x)
		case Addr:
			return addrText(x)
		}
		return Safe(x)
	case string:
		if k == display {
			return x
		}
		return SafeString(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case int:
		return strconv.Itoa(x)
	case Cell:
		return o.timeText(x)
	case netip.Addr:
		return x.String()
	case time.Time:
		return o.timeText(Cell{T: x})
	}
	return SafeString(fmt.Sprint(v))
}

const timeLayout = "2006-01-02 15:04:05.000000Z07:00"

func (o Output) timeText(c Cell) string {
	if o.Local {
		return c.T.In(time.FixedZone("", c.Offset)).Format(timeLayout)
	}
	return c.T.UTC().Format(timeLayout)
}

// jsonValue returns the JSON form of v.
func (o Output) jsonValue(k Kind, v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case []byte:
		switch k {
		case Argv:
			return jsonArgv(x)
		case Addr:
			return addrText(x)
		}
		return jsonBytes(x)
	case string:
		if k == display {
			return x
		}
		return jsonBytes([]byte(x))
	case Cell:
		if o.Local {
			return x.T.In(time.FixedZone("", x.Offset)).Format(time.RFC3339Nano)
		}
		return x.T.UTC().Format(time.RFC3339Nano)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case netip.Addr:
		return x.String()
	}
	return v
}

func addrText(b []byte) string {
	a, ok := netip.AddrFromSlice(b)
	if !ok {
		return Safe(b)
	}
	return a.Unmap().String()
}

func (o Output) writeTable(w *bufio.Writer, t *Table) error {
	cols, idx := t.visible(FormatTable)
	cells := make([][]string, len(t.Rows)+1)
	width := make([]int, len(cols))
	cells[0] = make([]string, len(cols))
	for i, c := range cols {
		cells[0][i] = strings.ToUpper(c.Name)
		width[i] = utf8.RuneCountInString(cells[0][i])
	}
	for r, row := range t.Rows {
		cells[r+1] = make([]string, len(cols))
		for i, c := range cols {
			s := o.text(c.Kind, row[idx[i]])
			cells[r+1][i] = s
			width[i] = max(width[i], utf8.RuneCountInString(s))
		}
	}
	for _, row := range cells {
		var line strings.Builder
		for i, s := range row {
			line.WriteString(s)
			if i < len(row)-1 {
				line.WriteString(strings.Repeat(" ", width[i]-utf8.RuneCountInString(s)+2))
			}
		}
		if _, err := w.WriteString(strings.TrimRight(line.String(), " ") + "\n"); err != nil {
			return err
		}
	}
	return nil
}

func (o Output) writeCSV(w *bufio.Writer, t *Table) error {
	cw := csv.NewWriter(w)
	cols, idx := t.visible(FormatCSV)
	rec := make([]string, len(cols))
	for i, c := range cols {
		rec[i] = c.Name
	}
	if err := cw.Write(rec); err != nil {
		return err
	}
	for _, row := range t.Rows {
		for i, c := range cols {
			rec[i] = o.text(c.Kind, row[idx[i]])
			if c.Kind == Text || c.Kind == Argv || c.Kind == display {
				rec[i] = csvCell(rec[i])
			}
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// csvCell neutralises a text cell that a spreadsheet would run as a
// formula, as OWASP advises against CSV injection: a cell starting with =,
// +, -, @, tab or carriage return gets a leading single quote (a process
// may name itself "=cmd|' /C calc'!A0"). Numbers, times and addresses are
// not text cells and stay as they are; JSON output stays exact.
func csvCell(s string) string {
	if s != "" && strings.IndexByte("=+-@\t\r", s[0]) >= 0 {
		return "'" + s
	}
	return s
}

func (o Output) writeJSON(w *bufio.Writer, t *Table) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	cols, idx := t.visible(FormatJSON)
	for _, row := range t.Rows {
		obj := make(orderedObject, len(cols))
		for i, c := range cols {
			obj[i] = field{c.Name, o.jsonValue(c.Kind, row[idx[i]])}
		}
		if err := enc.Encode(obj); err != nil {
			return err
		}
	}
	return nil
}

type field struct {
	k string
	v any
}

// orderedObject marshals as a JSON object whose keys keep their order.
type orderedObject []field

// MarshalJSON implements json.Marshaler.
func (o orderedObject) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(f.k)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		v, err := marshalNoHTML(f.v)
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", f.k, err)
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}

func marshalNoHTML(v any) ([]byte, error) {
	var sb strings.Builder
	enc := json.NewEncoder(&sb)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return []byte(strings.TrimSuffix(sb.String(), "\n")), nil
}
