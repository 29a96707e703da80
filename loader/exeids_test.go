package loader

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/servertest"
	"github.com/pofr/pofr/schema"
)

// TestExeIDsMerge: the loader's merge is the migration's with the segment
// filter in the inner SELECT.
func TestExeIDsMerge(t *testing.T) {
	if !strings.HasPrefix(exeIDsMerge, "INSERT INTO exe_ids") || !strings.Contains(exeIDsMerge, "  FROM executables x\n  WHERE x.segment_id = ?\n  GROUP BY x.host_id") {
		t.Fatalf("merge statement:\n%s", exeIDsMerge)
	}
}

// TestExeIDsAtLoad: the executables rows of several segments,
// loaded in order, make one exe_ids row per identity: first and last exec, execs
// summed, the hash once one row brought it, path of the first exec
// byte-exact; the migration's merge over the same rows makes the same
// table.
func TestExeIDsAtLoad(t *testing.T) {
	db, _ := newDB(t)
	f := servertest.NewFixture(t, "h1", "h2")
	base := servertest.HostileBase()
	hostile := servertest.HostileExes(base)
	sum := func(b byte) []byte { return []byte(strings.Repeat(string(rune(b)), 32)) }
	exe := func(ts, last int64, count uint32, inode uint64, sha []byte, skip, path string) event.Executable {
		x := event.Executable{TS: base + ts, LastTS: base + last, Count: count, PID: 7, Dev: 2049, Inode: inode, Size: 100,
			MTimeNS: 5, CTimeNS: 6, SHA256: sha, Skip: skip, Path: []byte(path)}
		x.How = event.ExeByHandle
		return x
	}
	segs := [][]event.Executable{
		// Identity 1 first seen, refreshed in later segments; identity 2
		// skipped first (changed while read), hashed by a later row.
		append([]event.Executable{exe(1e9, 2e9, 3, 1, sum('a'), "", "/usr/bin/a"), exe(1e9, 1e9, 1, 2, nil, event.ExeSkipChanged, "/opt/b\x00\xff")}, hostile...),
		{exe(5e9, 9e9, 10, 1, sum('a'), "", "/usr/bin/a-renamed"), exe(6e9, 6e9, 1, 2, sum('b'), "", "/opt/b\x00\xff")},
		{exe(20e9, 30e9, 4, 1, sum('a'), "", "/usr/bin/a"), exe(21e9, 21e9, 1, 3, nil, event.ExeSkipTooLarge, "/big")},
		append([]event.Executable(nil), hostile...),
	}
	for _, rows := range segs {
		f.Seal("h1", func(s event.Sink) {
			for i := range rows {
				s.(event.ExeSink).AppendExecutable(&rows[i])
			}
		})
	}
	f.Seal("h2", func(s event.Sink) {
		x := exe(1e9, 1e9, 1, 1, sum('z'), "", "/usr/bin/a")
		s.(event.ExeSink).AppendExecutable(&x)
	})
	if s := run(t, db, f.State, 1); s.Loaded != len(segs)+1 {
		t.Fatalf("run: %s, want %d loaded", s, len(segs)+1)
	}
	read := func() []string {
		rows, err := db.QueryContext(t.Context(), `SELECT host_id, dev, inode, size, mtime_ns, ctime_ns,
			DATE_FORMAT(first_ts, '%s.%f'), DATE_FORMAT(last_ts, '%s.%f'), execs, HEX(sha256), how, skip, HEX(path), rows_merged,
			(SELECT seq FROM segments s WHERE s.segment_id = first_segment_id), (SELECT seq FROM segments s WHERE s.segment_id = last_segment_id)
			FROM exe_ids ORDER BY host_id, dev, inode, size, mtime_ns, ctime_ns`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		cols, _ := rows.Columns()
		for rows.Next() {
			v := make([]any, len(cols))
			for i := range v {
				v[i] = new(any)
			}
			if err := rows.Scan(v...); err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for _, p := range v {
				x := *(p.(*any))
				if bs, ok := x.([]byte); ok {
					x = string(bs)
				}
				fmt.Fprintf(&b, "%v|", x)
			}
			out = append(out, b.String())
		}
		return out
	}
	got := read()
	checkExeKeys(t, db, len(got))
	// h1: the 14 hostile identities (inode 0..13 on dev 2^64-1, loaded
	// twice: execs doubled), the too-large one (dev 0), and 1, 2, 3 on 2049.
	if len(got) != len(hostile)+3+1 {
		t.Fatalf("exe_ids: %d rows, want %d:\n%s", len(got), len(hostile)+4, strings.Join(got, "\n"))
	}
	sec := func(ns int64) string { return fmt.Sprintf("%02d.%06d", (base+ns)/1e9%60, (base+ns)%1e9/1e3) }
	for _, want := range []string{
		fmt.Sprintf("h1|2049|1|100|5|6|%s|%s|17|%X|handle|<nil>|%X|3|1|3|", sec(1e9), sec(30e9), sum('a'), "/usr/bin/a"),
		fmt.Sprintf("h1|2049|2|100|5|6|%s|%s|2|%X|handle|<nil>|%X|2|1|2|", sec(1e9), sec(6e9), sum('b'), "/opt/b\x00\xff"),
		fmt.Sprintf("h1|2049|3|100|5|6|%s|%s|1|<nil>|<nil>|too_large|%X|1|3|3|", sec(21e9), sec(21e9), "/big"),
		fmt.Sprintf("h2|2049|1|100|5|6|%s|%s|1|%X|handle|<nil>|%X|1|1|1|", sec(1e9), sec(1e9), sum('z'), "/usr/bin/a"),
	} {
		if !strings.Contains(strings.Join(got, "\n"), want) {
			t.Errorf("exe_ids lacks\n%s\nin\n%s", want, strings.Join(got, "\n"))
		}
	}
	for i, x := range hostile[:len(hostile)-1] {
		want := fmt.Sprintf("h1|18446744073709551615|%d|%d|%d|9223372036854775807|", x.Inode, x.Size, x.MTimeNS)
		row := ""
		for _, g := range got {
			if strings.HasPrefix(g, want) {
				row = g
			}
		}
		if !strings.Contains(row, fmt.Sprintf("|%d|%X|handle|<nil>|%X|2|1|4|", 2*(i+1), x.SHA256, x.Path)) {
			t.Errorf("hostile identity %d: row %q, want execs %d, its hash and path, 2 rows merged", i, row, 2*(i+1))
		}
	}
	// The migration's merge over the same executables rows.
	if _, err := db.ExecContext(t.Context(), "DELETE FROM exe_ids"); err != nil {
		t.Fatal(err)
	}
	for _, m := range schema.Migrations() {
		if strings.HasSuffix(m.Name, "_exe_ids.sql") {
			sts := schema.Statements(m.SQL)
			if _, err := db.ExecContext(t.Context(), sts[len(sts)-1]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if diff := cmp.Diff(got, read()); diff != "" {
		t.Errorf("exe_ids from the migration's merge (-loader +migration):\n%s", diff)
	}
	// Migration 018's key statement keys them as the loader did.
	for _, m := range schema.Migrations() {
		if strings.HasSuffix(m.Name, "_exe_key.sql") {
			sts := schema.Statements(m.SQL)
			if _, err := db.ExecContext(t.Context(), sts[len(sts)-1]); err != nil {
				t.Fatal(err)
			}
		}
	}
	checkExeKeys(t, db, len(got))
}

// checkExeKeys checks that each of the n exe_ids rows has the exe_key that
// the collector gives its exec rows (event.ExeKey), extreme identities
// (the hostile ones: dev 2^64-1, negative times) included.
func checkExeKeys(t *testing.T, db *sql.DB, n int) {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), "SELECT dev, inode, size, mtime_ns, ctime_ns, exe_key FROM exe_ids")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seen := 0
	for rows.Next() {
		var dev, inode uint64
		var size, mtime, ctime int64
		var key sql.Null[uint64]
		if err := rows.Scan(&dev, &inode, &size, &mtime, &ctime, &key); err != nil {
			t.Fatal(err)
		}
		seen++
		if want := event.ExeKey(dev, inode, size, mtime, ctime); !key.Valid || key.V != want {
			t.Errorf("exe_ids %d,%d,%d,%d,%d: exe_key %v, want %d", dev, inode, size, mtime, ctime, key, want)
		}
	}
	if err := rows.Err(); err != nil || seen != n {
		t.Errorf("exe_ids: %d rows keyed, want %d (%v)", seen, n, err)
	}
}
