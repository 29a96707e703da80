package testutil

import (
	"database/sql"
	"testing"
)

// EachRow runs query with args on db and calls each for every row with a
// scan that reads the row into dest; any error of the query, a scan or the
// iteration fails the test.
func EachRow(t testing.TB, db *sql.DB, each func(scan func(dest ...any)), query string, args ...any) {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	scan := func(dest ...any) {
		t.Helper()
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
	}
	for rows.Next() {
		each(scan)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}
