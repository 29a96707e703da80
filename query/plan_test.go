package query

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pofr/pofr/internal/servertest"
	"github.com/pofr/pofr/internal/testutil"
)

// Sizes of the synthetic fleet of the plan test: planHosts hosts of
// planProcs process lives each (fork, exec and exit rows), with a file and a
// socket row per life.
const (
	planHosts = 12
	planProcs = 400
)

// newFleet returns a database holding planHosts synthetic hosts (h1, h2, …),
// written with plain SQL: the plans depend on the rows' spread over hosts,
// not on how they were loaded. It runs ANALYZE TABLE so the optimizer's
// estimates are current.
func newFleet(t testing.TB, hosts, procs int) *sql.DB {
	t.Helper()
	db, _ := servertest.SchemaDB(t, OpenDB)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	h := fmt.Sprintf("seq_1_to_%d h", hosts)
	p := fmt.Sprintf("seq_1_to_%d p", procs)
	for _, st := range []string{
		`INSERT INTO hosts (host_id, hostname, status) SELECT CONCAT('h', h.seq), CONCAT('host', h.seq), 'active' FROM ` + h,
		`INSERT INTO segments (segment_id, host_id, boot_id, seq, digest, ts_from, ts_to, file_name, file_bytes, chain_ok)
		 SELECT h.seq, CONCAT('h', h.seq), CONCAT('b', h.seq), 1, UNHEX(SHA2(h.seq, 256)),
		   '2026-01-01 00:00:00', '2026-01-01 01:00:00', CONCAT('s', h.seq), 1, 1 FROM ` + h,
		`INSERT INTO proc_events (segment_id, row_no, host_id, boot_id, ts, ts_ns, tz_offset, event, pid, tid, ppid,
		   proc_start, parent_start, uid, euid, auid, comm, exe, argv, cwd, exit_code, flags, exe_key)
		 SELECT h.seq, p.seq * 3 + k.seq, CONCAT('h', h.seq), CONCAT('b', h.seq),
		   TIMESTAMP '2026-01-01 00:00:00' + INTERVAL p.seq SECOND + INTERVAL k.seq * 100000 MICROSECOND, 0, 0,
		   ELT(k.seq + 1, 'fork', 'exec', 'exit'), 1000 + p.seq, 1000 + p.seq, 1000 + p.seq DIV 2,
		   p.seq * 1000, (p.seq DIV 2) * 1000, 1000, 1000, 1000, 'sh',
		   IF(k.seq = 1, CONCAT('/usr/bin/prog', p.seq MOD 7), NULL),
		   IF(k.seq = 1, CONCAT('prog', p.seq MOD 7, 0x00, '-x', 0x00), NULL),
		   IF(k.seq = 1, '/tmp', NULL), IF(k.seq = 2, 0, NULL), 0, IF(k.seq = 1, p.seq MOD 7, NULL)
		 FROM ` + h + `, ` + p + `, seq_0_to_2 k`,
		// One identity per program path and host (exe_key = inode here).
		`INSERT INTO exe_ids (host_id, dev, inode, size, mtime_ns, ctime_ns, first_ts, last_ts, execs, sha256, how, path,
		   first_segment_id, last_segment_id, rows_merged, exe_key)
		 SELECT CONCAT('h', h.seq), 2049, i.seq, 4096, 1, 2, '2026-01-01 00:00:00', '2026-01-01 01:00:00', 1,
		   UNHEX(SHA2(CONCAT(h.seq, '/', i.seq), 256)), 'handle', CONCAT('/usr/bin/prog', i.seq), h.seq, h.seq, 1, i.seq
		 FROM ` + h + `, seq_0_to_6 i`,
		`INSERT INTO file_events (segment_id, row_no, host_id, boot_id, ts, ts_ns, tz_offset, last_ts, count, pid,
		   proc_start, uid, op, path, flags)
		 SELECT h.seq, p.seq, CONCAT('h', h.seq), CONCAT('b', h.seq),
		   TIMESTAMP '2026-01-01 00:00:00' + INTERVAL p.seq SECOND + INTERVAL 150000 MICROSECOND, 0, 0,
		   TIMESTAMP '2026-01-01 00:00:00' + INTERVAL p.seq SECOND + INTERVAL 150000 MICROSECOND, 1, 1000 + p.seq,
		   p.seq * 1000, 1000, 'open', CONCAT('/etc/f', p.seq MOD 50), 0
		 FROM ` + h + `, ` + p,
		`INSERT INTO sock_events (segment_id, row_no, host_id, boot_id, ts, ts_ns, tz_offset, event, proto, family,
		   direction, local_addr, local_port, remote_addr, remote_port, cookie, uid, pid, proc_start, flags)
		 SELECT h.seq, p.seq, CONCAT('h', h.seq), CONCAT('b', h.seq),
		   TIMESTAMP '2026-01-01 00:00:00' + INTERVAL p.seq SECOND + INTERVAL 160000 MICROSECOND, 0, 0,
		   'close', 'tcp', 4, 'out', INET6_ATON(CONCAT('10.0.0.', h.seq)), 40000 + p.seq,
		   INET6_ATON(CONCAT('10.1.', p.seq MOD 200, '.1')), 443, p.seq, 1000, 1000 + p.seq, p.seq * 1000, 0
		 FROM ` + h + `, ` + p,
		`INSERT INTO dns_events (segment_id, row_no, host_id, boot_id, ts, ts_ns, tz_offset, event, proto,
		   client_port, server_port, dns_id, qname, answer_addrs, flags)
		 SELECT h.seq, p.seq, CONCAT('h', h.seq), CONCAT('b', h.seq),
		   TIMESTAMP '2026-01-01 00:00:00' + INTERVAL p.seq SECOND + INTERVAL 155000 MICROSECOND, 0, 0,
		   'response', 'udp', 40000 + p.seq, 53, p.seq, CONCAT('n', p.seq MOD 200, '.example.'),
		   CONCAT(',', HEX(INET6_ATON(CONCAT('10.1.', p.seq MOD 200, '.1'))), ','), 0
		 FROM ` + h + `, ` + p,
		`INSERT INTO dns_names (host_id, addr, ts, boot_id, pid, proc_start, qname, segment_id, row_no)
		 SELECT host_id, UNHEX(SUBSTRING(answer_addrs, 2, 8)), ts, boot_id, pid, proc_start, qname, segment_id, row_no
		 FROM dns_events`,
		`INSERT INTO accounts (segment_id, row_no, host_id, boot_id, ts, kind, id, name)
		 SELECT h.seq, u.seq, CONCAT('h', h.seq), CONCAT('b', h.seq), '2026-01-01 00:00:00', 'user', 1000 + u.seq,
		   CONCAT('user', u.seq) FROM ` + h + `, seq_0_to_49 u`,
		`INSERT INTO gaps (segment_id, row_no, host_id, boot_id, from_ts, to_ts, source, lost, reason)
		 SELECT h.seq, 0, CONCAT('h', h.seq), CONCAT('b', h.seq), '2026-01-01 00:10:00', '2026-01-01 00:10:01', 'proc', 1, 'test' FROM ` + h,
		`ANALYZE TABLE hosts, segments, proc_events, file_events, sock_events, dns_events, dns_names, accounts, gaps, exe_ids`,
	} {
		if _, err := db.ExecContext(ctx, st); err != nil {
			t.Fatalf("%v\n%s", err, st)
		}
	}
	return db
}

// TestPlansPerHost runs EXPLAIN for every statement the per-host questions
// run (the documented query files, through the views), on a database of
// several hosts, and fails on any full scan of an event table and on any
// step the optimizer expects to read more than a host's share of a table.
func TestPlansPerHost(t *testing.T) {
	db := newFleet(t, planHosts, planProcs)
	ctx := testutil.Deadline(t, 2*time.Minute)
	var stmts []Statement
	q := &Querier{DB: db, Trace: func(s Statement) { stmts = append(stmts, s) }}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := Range{From: t0, To: t0.Add(time.Hour)}
	start := int64(100 * 1000)
	calls := []struct {
		name string
		run  func() error
	}{
		{"gaps", func() error { _, err := q.Gaps(ctx, "h3", r); return err }},
		{"tree", func() error { _, err := q.Tree(ctx, "h3", t0.Add(150*time.Second)); return err }},
		{"timeline", func() error { _, err := q.Timeline(ctx, "h3", r, 0); return err }},
		{"timeline pid", func() error { _, err := q.Timeline(ctx, "h3", r, 1100); return err }},
		{"proc", func() error { _, err := q.Proc(ctx, "h3", 1100, &start); return err }},
		{"ran", func() error { _, err := q.Ran(ctx, RanArgs{Host: "h3", Range: r}); return err }},
		{"touched", func() error { _, err := q.Touched(ctx, TouchedArgs{Path: "/etc/", Host: "h3", Range: r}); return err }},
		{"conns", func() error { _, err := q.Conns(ctx, ConnsArgs{Host: "h3", Range: r}); return err }},
	}
	for _, tb := range ExportTables {
		calls = append(calls, struct {
			name string
			run  func() error
		}{"export " + tb, func() error {
			_, err := q.Export(ctx, io.Discard, ExportArgs{Table: tb, Host: "h3", Range: r})
			return err
		}})
	}
	// The views, filtered to one host as an analyst would.
	for _, v := range []string{"processes", "proc_event_details", "process_tree", "timeline", "connections"} {
		calls = append(calls, struct {
			name string
			run  func() error
		}{"view " + v, func() error {
			stmts = append(stmts, Statement{Name: v, Params: []Param{{"host", "h3"}},
				SQL: "SELECT * FROM " + v + " WHERE host_id = @host"})
			return nil
		}})
	}
	// A host's rows in the largest table (proc_events), with slack for the
	// optimizer's estimates; a scan of all hosts' rows is planHosts times it.
	limit := 2*3*planProcs + 20
	for _, c := range calls {
		stmts = stmts[:0]
		if err := c.run(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(stmts) == 0 {
			t.Fatalf("%s: no statement traced", c.name)
		}
		for _, s := range stmts {
			for _, row := range explain(t, db, s) {
				if strings.HasPrefix(row.table, "<") {
					continue // derived tables, CTEs, unions: their sources are checked
				}
				if row.typ == "ALL" || row.typ == "index" || row.rows > limit {
					t.Errorf("%s (%s): select %s (%s) reads %s by %s, key %q, %d rows expected (one host has at most %d)",
						c.name, s.Name, row.id, row.selectType, row.table, row.typ, row.key, row.rows, 3*planProcs)
				}
			}
		}
	}
}

// planRow is one line of EXPLAIN.
type planRow struct {
	id, selectType, table, typ, key string
	rows                            int
}

// bound returns a connection of db with params set as the Querier sets
// them (name says whose they are in a failure); the caller closes it.
func bound(tb testing.TB, db *sql.DB, name string, params []Param) *sql.Conn {
	tb.Helper()
	conn, err := db.Conn(tb.Context())
	if err != nil {
		tb.Fatal(err)
	}
	for _, p := range params {
		if _, err := conn.ExecContext(tb.Context(), "SET @"+p.Name+" = "+bindExpr(p, "?"), p.Value); err != nil {
			conn.Close()
			tb.Fatalf("%s: set @%s: %v", name, p.Name, err)
		}
	}
	return conn
}

// explain runs EXPLAIN for s on one connection with its parameters set as
// the Querier sets them.
func explain(t testing.TB, db *sql.DB, s Statement) []planRow {
	t.Helper()
	conn := bound(t, db, s.Name, s.Params)
	defer conn.Close()
	var out []planRow
	testutil.EachRow(t, conn, func(row testutil.Row) {
		cols, vals := row.Text()
		var r planRow
		for i, c := range cols {
			switch strings.ToLower(c) {
			case "id":
				r.id = vals[i].String
			case "select_type":
				r.selectType = vals[i].String
			case "table":
				r.table = vals[i].String
			case "type":
				r.typ = vals[i].String
			case "key":
				r.key = vals[i].String
			case "rows":
				r.rows, _ = strconv.Atoi(vals[i].String)
			}
		}
		out = append(out, r)
	}, "EXPLAIN "+s.SQL)
	return out
}

// BenchmarkPerHost times the per-host views, filtered to one host, on a
// database of 50 hosts and on one holding only that host (same rows for
// it), and reports the ratio: the bar is fleet/alone ≤ 1.5.
func BenchmarkPerHost(b *testing.B) {
	const fleetHosts = 50
	alone := newFleet(b, 1, planProcs)
	fleet := newFleet(b, fleetHosts, planProcs)
	for _, v := range []string{"processes", "process_tree", "timeline"} {
		b.Run(v, func(b *testing.B) {
			text := "SELECT * FROM " + v + " WHERE host_id = @host"
			var tAlone, tFleet time.Duration
			for b.Loop() {
				for _, c := range []struct {
					db *sql.DB
					d  *time.Duration
				}{{alone, &tAlone}, {fleet, &tFleet}} {
					start := time.Now()
					n := runCount(b, c.db, text)
					*c.d += time.Since(start)
					if n == 0 {
						b.Fatalf("%s: no rows", v)
					}
				}
			}
			b.ReportMetric(float64(tAlone.Microseconds())/1e3/float64(b.N), "alone-ms/op")
			b.ReportMetric(float64(tFleet.Microseconds())/1e3/float64(b.N), "fleet-ms/op")
			b.ReportMetric(float64(tFleet)/float64(tAlone), "fleet/alone")
		})
	}
}

// runCount runs text with @host = h1 (bound as the Querier binds it) and
// reads every row, returning how many there were.
func runCount(tb testing.TB, db *sql.DB, text string) int {
	tb.Helper()
	return runCountParams(tb, db, text, nil)
}

// runCountParams is runCount with further parameters bound.
func runCountParams(tb testing.TB, db *sql.DB, text string, params []Param) int {
	tb.Helper()
	conn := bound(tb, db, "runCount", append([]Param{{"host", "h1"}}, params...))
	defer conn.Close()
	rows, err := conn.QueryContext(tb.Context(), text)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	n := 0
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			tb.Fatal(err)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return n
}
