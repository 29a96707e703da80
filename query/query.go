package query

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

//go:embed *.sql
var files embed.FS

// Sentinel errors.
var (
	// ErrUnknownHost reports a --host that is neither a host id nor a
	// hostname in the hosts table.
	ErrUnknownHost = errors.New("query: unknown host")
	// ErrAmbiguousHost reports a hostname that several registered hosts have.
	ErrAmbiguousHost = errors.New("query: hostname names several hosts")
	// ErrNoProcess reports a pid (or pid@start) that no recorded process has.
	ErrNoProcess = errors.New("query: no such process")
)

// SQL returns the text of the embedded query file name (without .sql), or
// for export_TABLE the statement Export runs for TABLE.
func SQL(name string) (string, error) {
	if table, ok := strings.CutPrefix(name, "export_"); ok {
		return exportSQL(table)
	}
	b, err := files.ReadFile(name + ".sql")
	if err != nil {
		return "", fmt.Errorf("query %s: %w", name, err)
	}
	return string(b), nil
}

// Names lists the embedded query files, without .sql.
func Names() []string {
	ents, _ := files.ReadDir(".")
	var out []string
	for _, e := range ents {
		out = append(out, strings.TrimSuffix(e.Name(), ".sql"))
	}
	return out
}

// OpenDB opens a go-sql-driver/mysql DSN for queries: DATETIME columns are
// read as UTC times, and one statement per call. Connections to a Spider
// head get the session settings fleet queries need (fleet.HeadSession).
func OpenDB(dsn string) (*sql.DB, error) {
	cfg, err := mysql.ParseDSN(strings.TrimSpace(dsn))
	if err != nil {
		return nil, fmt.Errorf("parse DSN: %w", err)
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	cfg.MultiStatements = false
	cfg.AllowAllFiles = false
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	return sql.OpenDB(headConnector{conn}), nil
}

// Param is one user variable a query file reads (@Name).
type Param struct {
	Name  string
	Value any
}

// Querier answers the analysts' questions from a pofr database.
type Querier struct {
	DB *sql.DB
	// Log gets notes (which process life was chosen, …); nil discards.
	Log *slog.Logger
	// Enrich adds reverse DNS and geolocation to address columns; nil adds
	// nothing.
	Enrich *Enricher
	// Page, when its Limit is positive, bounds the rows of every query Run
	// runs (LIMIT and OFFSET appended to the file's text, after its final
	// ORDER BY, or put in place of its /*page*/ mark: timeline.sql pages
	// before its lookups, and bounds each of its parts to LIMIT+OFFSET rows
	// at its /*rows*/ marks). Export is never paged.
	Page Page
	// Trace, when set, gets every statement just before it runs, for
	// showing the SQL behind an answer.
	Trace func(Statement)
}

// Page is a window of a query's rows: at most Limit rows after the first
// Offset. A zero Limit means every row.
type Page struct {
	Limit, Offset int
}

// Marks in a query's text (comments: the file run by hand is unpaged).
// pageMark is where a Page's LIMIT goes instead of the end; each partMark
// ends a part of a UNION ordered like the whole, which needs no more than
// the page's last row: LIMIT Limit+Offset.
const (
	pageMark = "/*page*/"
	partMark = "/*rows*/"
)

// apply returns text with p's LIMIT clause at its pageMark or else at its
// end, and its parts' LIMIT at every partMark.
func (p Page) apply(text string) string {
	part := ""
	if p.Limit > 0 {
		part = fmt.Sprintf("LIMIT %d", p.Limit+max(p.Offset, 0))
	}
	text = strings.ReplaceAll(text, partMark, part)
	if strings.Contains(text, pageMark) {
		return strings.Replace(text, pageMark, p.clause(), 1)
	}
	return text + p.clause()
}

// clause returns the LIMIT clause of p ("" when unlimited).
func (p Page) clause() string {
	if p.Limit <= 0 {
		return ""
	}
	return fmt.Sprintf("\nLIMIT %d OFFSET %d", p.Limit, max(p.Offset, 0))
}

func (q *Querier) log() *slog.Logger {
	if q.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return q.Log
}

// Run executes the embedded query name with its parameters set as user
// variables (SET @p = ?, … on the same connection, exactly what an analyst
// types before running the file) and returns its rows. Columns whose name
// starts with _ are helpers, never printed: _tz_offset gives the host's UTC
// offset of every time in the row, _ts_ns the nanoseconds of the column named
// time.
func (q *Querier) Run(ctx context.Context, name string, params ...Param) (*Table, error) {
	text, err := SQL(name)
	if err != nil {
		return nil, err
	}
	return q.RunSQL(ctx, name, text, params...)
}

// RunSQL is Run for a query text that is not one of this package's files
// (the web interface keeps its own, in the same form): it sets params as
// user variables, runs text with q.Page applied and returns its rows.
func (q *Querier) RunSQL(ctx context.Context, name, text string, params ...Param) (*Table, error) {
	var t *Table
	err := q.stream(ctx, name, q.Page.apply(text), params, func(rows *sql.Rows) error {
		var err error
		t, err = scanTable(rows)
		return err
	})
	return t, err
}

// stream runs text (query name) with params and hands its rows to fn.
func (q *Querier) stream(ctx context.Context, name, text string, params []Param, fn func(*sql.Rows) error) error {
	if q.Trace != nil {
		q.Trace(Statement{Name: name, Params: params, SQL: text})
	}
	conn, err := q.DB.Conn(ctx)
	if err != nil {
		return fmt.Errorf("query %s: connect: %w", name, err)
	}
	defer conn.Close()
	if len(params) > 0 {
		var set strings.Builder
		args := make([]any, len(params))
		set.WriteString("SET ")
		for i, p := range params {
			if i > 0 {
				set.WriteString(", ")
			}
			fmt.Fprintf(&set, "@%s = %s", p.Name, bindExpr(p, "?"))
			args[i] = p.Value
		}
		if _, err := conn.ExecContext(ctx, set.String(), args...); err != nil {
			return fmt.Errorf("query %s: set parameters: %w", name, err)
		}
	}
	rows, err := conn.QueryContext(ctx, text)
	if err != nil {
		return fmt.Errorf("query %s: %w", name, err)
	}
	defer rows.Close()
	if err := fn(rows); err != nil {
		return fmt.Errorf("query %s: %w", name, err)
	}
	return nil
}

// scanTable reads rows into a Table, choosing each column's Kind from its
// name and database type.
func scanTable(rows *sql.Rows) (*Table, error) {
	t := &Table{}
	cols, err := scanRows(rows, func(_ []Column, row []any) error {
		t.Rows = append(t.Rows, row)
		return nil
	})
	t.Columns = cols
	return t, err
}

// layout maps a result set's columns to a Table's.
type layout struct {
	cols                  []Column
	keep                  []int // result column of each Table column
	isInt                 []bool
	tzCol, nsCol, timeCol int
}

func newLayout(types []*sql.ColumnType) *layout {
	l := &layout{isInt: make([]bool, len(types)), tzCol: -1, nsCol: -1, timeCol: -1}
	for i, ct := range types {
		name, db := ct.Name(), strings.ToUpper(ct.DatabaseTypeName())
		l.isInt[i] = strings.Contains(db, "INT") || db == "DECIMAL" || db == "YEAR"
		switch name {
		case "_tz_offset":
			l.tzCol = i
			continue
		case "_ts_ns":
			l.nsCol = i
			continue
		}
		k := Text
		switch {
		case db == "DATETIME" || db == "TIMESTAMP":
			k = Time
			if name == "time" {
				l.timeCol = i
			}
		case name == "argv":
			k = Argv
		case strings.HasSuffix(name, "addr"):
			k = Addr
		case l.isInt[i]:
			k = Int
		}
		c := Column{Name: name, Kind: k}
		if strings.HasPrefix(name, "_") {
			c.Show = ShowNone
		}
		l.cols = append(l.cols, c)
		l.keep = append(l.keep, i)
	}
	return l
}

// scanRows calls fn with every row of rows, converted to Table values, and
// returns the columns. The columns passed are the same slice for every row.
func scanRows(rows *sql.Rows, fn func(cols []Column, row []any) error) ([]Column, error) {
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	l := newLayout(types)
	vals := make([]any, len(types))
	ptrs := make([]any, len(types))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		clear(vals)
		if err := rows.Scan(ptrs...); err != nil {
			return l.cols, err
		}
		for i, v := range vals {
			vals[i] = normalize(v, l.isInt[i])
		}
		offset := 0
		if l.tzCol >= 0 {
			if v, ok := vals[l.tzCol].(int64); ok {
				offset = int(v)
			}
		}
		row := make([]any, len(l.keep))
		for j, i := range l.keep {
			v := vals[i]
			if tm, ok := v.(time.Time); ok {
				if i == l.timeCol && l.nsCol >= 0 {
					if ns, ok := vals[l.nsCol].(int64); ok {
						tm = tm.Add(time.Duration(ns))
					}
				}
				v = Cell{T: tm.UTC(), Offset: offset}
			}
			row[j] = v
		}
		if err := fn(l.cols, row); err != nil {
			return l.cols, err
		}
	}
	return l.cols, rows.Err()
}

// normalize turns the driver's values into the Table's: integers as int64
// (uint64 when too large), bytes copied.
func normalize(v any, isInt bool) any {
	switch x := v.(type) {
	case []byte:
		if isInt {
			if n, err := strconv.ParseInt(string(x), 10, 64); err == nil {
				return n
			}
			if n, err := strconv.ParseUint(string(x), 10, 64); err == nil {
				return n
			}
		}
		return append([]byte{}, x...)
	case int32:
		return int64(x)
	case uint32:
		return int64(x)
	case uint64:
		if x <= 1<<63-1 {
			return int64(x)
		}
	case float64:
		if isInt && x == float64(int64(x)) {
			return int64(x)
		}
	}
	return v
}

// column returns the index of the column named name, or -1.
func (t *Table) column(name string) int {
	for i, c := range t.Columns {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// Value returns row r's value of the column named name (nil if there is no
// such column).
func (t *Table) Value(r int, name string) any {
	if i := t.column(name); i >= 0 {
		return t.Rows[r][i]
	}
	return nil
}

// dropColumns removes the named columns.
func (t *Table) dropColumns(names ...string) {
	for _, n := range names {
		i := t.column(n)
		if i < 0 {
			continue
		}
		t.Columns = append(t.Columns[:i:i], t.Columns[i+1:]...)
		for r, row := range t.Rows {
			t.Rows[r] = append(row[:i:i], row[i+1:]...)
		}
	}
}

// ResolveHost returns the host id that h names: a host id, or the hostname of
// exactly one registered host.
func (q *Querier) ResolveHost(ctx context.Context, h string) (string, error) {
	rows, err := q.DB.QueryContext(ctx,
		"SELECT host_id FROM hosts WHERE host_id = ? UNION SELECT host_id FROM hosts WHERE hostname = ? ORDER BY host_id", h, h)
	if err != nil {
		return "", fmt.Errorf("resolve host %q: %w", h, err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return "", fmt.Errorf("resolve host %q: %w", h, err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("resolve host %q: %w", h, err)
	}
	for _, id := range ids {
		if id == h {
			return id, nil
		}
	}
	switch len(ids) {
	case 0:
		// A host id that only the ledger knows (registry not synced).
		var n int
		if err := q.DB.QueryRowContext(ctx, "SELECT COUNT(*) FROM segments WHERE host_id = ?", h).Scan(&n); err == nil && n > 0 {
			return h, nil
		}
		return "", fmt.Errorf("%w: %q is neither a host id nor a hostname (see pofr-server query hosts)", ErrUnknownHost, h)
	case 1:
		return ids[0], nil
	}
	return "", fmt.Errorf("%w: %q: %s; give the host id", ErrAmbiguousHost, h, strings.Join(ids, ", "))
}

// optHost resolves h if it is not empty, for fleet-wide queries.
func (q *Querier) optHost(ctx context.Context, h string) (any, error) {
	if h == "" {
		return nil, nil
	}
	return q.ResolveHost(ctx, h)
}

// rangeParams are @from and @to.
func rangeParams(r Range) []Param {
	return []Param{{"from", sqlTime(r.From)}, {"to", sqlTime(r.To)}}
}

// optString is NULL for "".
func optString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// optBytes is s as bytes (compared byte for byte with VARBINARY columns),
// or NULL for "".
func optBytes(s string) any {
	if s == "" {
		return nil
	}
	return []byte(s)
}

// userParams are @user and @uid for a --user value (name or number).
func userParams(u string) []Param {
	ps := []Param{{"user", optString(u)}, {"uid", nil}}
	if n, err := strconv.ParseUint(u, 10, 32); err == nil {
		ps[1].Value = int64(n)
	}
	return ps
}
