package testutil

import (
	"context"
	"database/sql"
	"testing"
	"time"
)

// Queryer is a *sql.DB, *sql.Conn or *sql.Tx.
type Queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Row is the current row of an EachRow query.
type Row struct {
	t    testing.TB
	rows *sql.Rows
	cols []string
}

// Scan reads the row into dest; an error fails the test.
func (r Row) Scan(dest ...any) {
	r.t.Helper()
	if err := r.rows.Scan(dest...); err != nil {
		r.t.Fatal(err)
	}
}

// Text returns the column names and the row's values as text (Valid false
// for NULL), for queries whose columns the test does not fix (EXPLAIN).
func (r Row) Text() ([]string, []sql.NullString) {
	r.t.Helper()
	vals := make([]sql.NullString, len(r.cols))
	dst := make([]any, len(r.cols))
	for i := range vals {
		dst[i] = &vals[i]
	}
	r.Scan(dst...)
	return r.cols, vals
}

// rowsTimeout bounds an EachRow query, iteration included.
const rowsTimeout = 2 * time.Minute

// EachRow runs query with args on q and calls each for every row; any error
// of the query, a scan or the iteration fails the test, and so does a query
// that takes longer than two minutes.
func EachRow(t testing.TB, q Queryer, each func(Row), query string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), rowsTimeout)
	defer cancel()
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		each(Row{t: t, rows: rows, cols: cols})
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}
