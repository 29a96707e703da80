package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pofr/pofr/fleet"
	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/geotest"
	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/internal/servertest"
	"github.com/pofr/pofr/internal/testutil"
	"github.com/pofr/pofr/loader"
	"github.com/pofr/pofr/query"
)

// fleetFixture is two shards (databases with the schema) and an empty head
// database on the test binary's MariaDB, a shard map naming them, and a
// state directory with hosts.
type fleetFixture struct {
	f      *servertest.Fixture
	shards map[string]*sql.DB
	head   string // head's DSN
	mapf   string
}

func newFleet(t testing.TB, hosts ...string) *fleetFixture {
	t.Helper()
	m := testutil.StartMariaDB(t)
	dir := t.TempDir()
	x := &fleetFixture{f: servertest.NewFixture(t, hosts...), shards: map[string]*sql.DB{}}
	var fm fleet.Map
	for _, s := range []string{"s1", "s2"} {
		db, dsn := servertest.NewDB(t, loader.OpenDB)
		x.shards[s] = db
		f := writeLine(t, dir, s+".dsn", dsn)
		fm.Shards = append(fm.Shards, fleet.Shard{Name: s, AdminDSNFile: f, ReaderDSNFile: f, LoaderDSNFiles: []string{f}})
	}
	x.head, _ = m.NewDatabase(t)
	hf := writeLine(t, dir, "head.dsn", x.head)
	fm.Head = &fleet.Head{AdminDSNFile: hf, ReaderDSNFile: hf}
	x.mapf = filepath.Join(dir, "shards.json")
	if err := fm.Save(x.mapf); err != nil {
		t.Fatal(err)
	}
	return x
}

func (x *fleetFixture) run(t testing.TB, want int, args ...string) string {
	t.Helper()
	code, out, errs := runApp(t, append(args, "--shards", x.mapf, "--state-dir", x.f.State.String())...)
	if code != want {
		t.Fatalf("%v: exit %d, want %d\n%s%s", args, code, want, out, errs)
	}
	return out
}

// TestFleetRouteAndHead: a pinned host and least-loaded hosts are each
// loaded onto their own shard only; the Spider head built by 'head apply'
// returns, for every table and every view, the union of the shards, and
// query sessions on the head get the fleet settings.
func TestFleetRouteAndHead(t *testing.T) {
	x := newFleet(t, "h1", "h2", "h3", "h4")
	x.run(t, 0, "shards", "pin", "h1", "s2")
	base := servertest.HostileBase()
	for i, h := range []string{"h1", "h2", "h3", "h4"} {
		procs, files, socks := servertest.BusyRows(base+int64(i)*1000, 200+50*i)
		x.f.Seal(h, func(s event.Sink) { event.AppendAll(s, procs, files, socks, nil, nil) })
	}
	out := x.run(t, 0, "load")
	if !strings.Contains(out, "shard s1:") || !strings.Contains(out, "shard s2:") {
		t.Errorf("load output:\n%s", out)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	perShard := map[string]int{}
	for _, h := range []string{"h1", "h2", "h3", "h4"} {
		r, err := registry.Load(x.f.State, h)
		if err != nil {
			t.Fatal(err)
		}
		perShard[r.Shard]++
		for name, db := range x.shards {
			var segs int
			if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM segments WHERE host_id = ?", h).Scan(&segs); err != nil {
				t.Fatal(err)
			}
			if (segs > 0) != (name == r.Shard) {
				t.Errorf("host %s (registry shard %q): %d segments on shard %s", h, r.Shard, segs, name)
			}
		}
	}
	if r, _ := registry.Load(x.f.State, "h1"); r.Shard != "s2" {
		t.Errorf("pinned h1 on %q", r.Shard)
	}
	if perShard["s1"] != 2 || perShard["s2"] != 2 {
		t.Errorf("hosts per shard %v, want 2 and 2 (least-loaded)", perShard)
	}
	x.run(t, 0, "load") // a second pass loads nothing twice
	// Admin commands run on every shard, or the one named.
	apply := func(want int, args ...string) string {
		t.Helper()
		code, out, errs := runApp(t, append([]string{"schema", "apply", "--shards", x.mapf}, args...)...)
		if code != want {
			t.Fatalf("schema apply %v: exit %d, want %d\n%s%s", args, code, want, out, errs)
		}
		return out
	}
	if out := apply(0); !strings.Contains(out, "shard s1:") || !strings.Contains(out, "shard s2:") {
		t.Errorf("schema apply on a fleet:\n%s", out)
	}
	if out := apply(0, "--shard", "s2"); strings.Contains(out, "shard s1:") || !strings.Contains(out, "shard s2:") {
		t.Errorf("schema apply --shard s2:\n%s", out)
	}
	apply(2, "--shard", "nosuch")
	x.applyHead(t)

	head, err := query.OpenDB(x.head)
	if err != nil {
		t.Fatal(err)
	}
	defer head.Close()
	var gb int
	if err := head.QueryRowContext(ctx, "SELECT @@spider_disable_group_by_handler").Scan(&gb); err != nil || gb != 1 {
		t.Errorf("head session: spider_disable_group_by_handler %d, %v", gb, err)
	}
	var objs []string
	views := 0
	testutil.EachRow(t, head, func(row testutil.Row) {
		var n, typ string
		row.Scan(&n, &typ)
		objs = append(objs, n)
		if typ == "VIEW" {
			views++
		}
	}, "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() ORDER BY 1")
	if views < 5 || len(objs) < 15 {
		t.Fatalf("head has %d objects, %d views: %v", len(objs), views, objs)
	}
	for _, o := range objs {
		if o == "schema_version" || o == "quarantine_classes" {
			continue // not per host: linked to the first shard
		}
		q := "SELECT COUNT(*) FROM `" + o + "`"
		var onHead, sum int64
		if err := head.QueryRowContext(ctx, q).Scan(&onHead); err != nil {
			t.Errorf("head: %s: %v", q, err)
			continue
		}
		for _, db := range x.shards {
			var n int64
			if err := db.QueryRowContext(ctx, q).Scan(&n); err != nil {
				t.Fatal(err)
			}
			sum += n
		}
		if onHead != sum {
			t.Errorf("%s: head %d rows, shards %d", o, onHead, sum)
		}
	}
	// Per-host byte-exact: a checksum of every process row's argv.
	const sumq = "SELECT host_id, COUNT(*), SUM(CRC32(argv)) FROM proc_events GROUP BY host_id ORDER BY host_id"
	got := dump(t, head, sumq)
	var want []string
	for _, s := range []string{"s1", "s2"} {
		want = append(want, dump(t, x.shards[s], sumq)...)
	}
	if len(got) != 4 || !sameSet(got, want) {
		t.Errorf("per-host checksums: head %v, shards %v", got, want)
	}
	// A host added later: a fleet-wide scan sees its rows at once (Spider
	// scans each shard's table whole), but a per-host query is pruned to
	// the partitions that list it, so it finds them only after head apply
	// has re-created the head's tables, which copies nothing (the shards'
	// rows stay exactly as many).
	x.f.Register("h5")
	procs, files, socks := servertest.BusyRows(base+9000, 300)
	x.f.Seal("h5", func(s event.Sink) { event.AppendAll(s, procs, files, socks, nil, nil) })
	x.run(t, 0, "load")
	h5 := func() (n int) {
		t.Helper()
		if err := head.QueryRowContext(ctx, "SELECT COUNT(*) FROM proc_events WHERE host_id = 'h5'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := h5()
	x.applyHead(t)
	const perHost = "SELECT host_id, COUNT(*), 0 FROM proc_events GROUP BY host_id ORDER BY host_id"
	after := dump(t, head, perHost)
	var shardRows []string
	for _, s := range []string{"s1", "s2"} {
		shardRows = append(shardRows, dump(t, x.shards[s], perHost)...)
	}
	if before != 0 || h5() == 0 || len(after) != 5 || !sameSet(after, shardRows) {
		t.Errorf("new host h5: %d rows per host before head apply, %d after; fleet %v, shards %v", before, h5(), after, shardRows)
	}
	// Every view answers per host through the head too.
	for v, col := range map[string]string{"processes": "host_id", "process_tree": "host_id", "timeline": "host_id", "connections": "host_id", "peer_connections": "client_host"} {
		var n int
		if err := head.QueryRowContext(ctx, "SELECT COUNT(*) FROM `"+v+"` WHERE "+col+" = 'h2'").Scan(&n); err != nil {
			t.Errorf("head: view %s: %v", v, err)
		}
	}
}

// applyHead runs 'head apply'. The shards and the head share the test's one
// server, so Spider must be allowed to link a server to itself (separate
// servers need not).
func (x *fleetFixture) applyHead(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	root, err := sql.Open("mysql", testutil.StartMariaDB(t).RootDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	var have int
	if err := root.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'SPIDER'").Scan(&have); err != nil {
		t.Fatal(err)
	}
	if have == 0 {
		if _, err := root.ExecContext(ctx, "INSTALL SONAME 'ha_spider'"); err != nil {
			t.Fatalf("install Spider (package mariadb-plugin-spider): %v", err)
		}
	}
	if _, err := root.ExecContext(ctx, "SET GLOBAL spider_same_server_link = ON"); err != nil {
		t.Fatal(err)
	}
	x.run(t, 0, "head", "apply")
}

// BenchmarkHeadPerHost: per-host questions on the host's shard directly
// (a single server) and through the Spider head.
//
//	POFR_TEST_REQUIRE=all go test ./cmd/pofr-server -run '^$' -bench HeadPerHost
func BenchmarkHeadPerHost(b *testing.B) {
	x := newFleet(b, "h1", "h2", "h3", "h4")
	base := servertest.HostileBase()
	for i, h := range []string{"h1", "h2", "h3", "h4"} {
		procs, files, socks := servertest.BusyRows(base+int64(i)*1000, 20000)
		x.f.Seal(h, func(s event.Sink) { event.AppendAll(s, procs, files, socks, nil, nil) })
	}
	b.Logf("load, one loader per shard in parallel:\n%s", x.run(b, 0, "load"))
	x.applyHead(b)
	r, err := registry.Load(x.f.State, "h2")
	if err != nil {
		b.Fatal(err)
	}
	head, err := query.OpenDB(x.head)
	if err != nil {
		b.Fatal(err)
	}
	defer head.Close()
	for _, q := range []struct{ name, sql string }{
		{"count", "SELECT COUNT(*) FROM proc_events WHERE host_id = 'h2'"},
		{"timeline", "SELECT COUNT(*) FROM (SELECT * FROM timeline WHERE host_id = 'h2' ORDER BY ts LIMIT 500) t"},
		{"processes", "SELECT COUNT(*) FROM processes WHERE host_id = 'h2'"},
	} {
		for _, side := range []struct {
			name string
			db   *sql.DB
		}{{"single", x.shards[r.Shard]}, {"head", head}} {
			b.Run(q.name+"/"+side.name, func(b *testing.B) {
				for b.Loop() {
					var n int64
					if err := side.db.QueryRow(q.sql).Scan(&n); err != nil || n == 0 {
						b.Fatalf("%s: %d, %v", q.sql, n, err)
					}
				}
			})
		}
	}
	// Why the views are slower through the head: the plans.
	for _, side := range []struct {
		name string
		db   *sql.DB
	}{{"single", x.shards[r.Shard]}, {"head", head}} {
		b.Logf("EXPLAIN processes per host, %s:\n%s", side.name, strings.Join(explain(b, side.db, "SELECT COUNT(*) FROM processes WHERE host_id = 'h2'"), "\n"))
	}
	// pofr's per-host questions (query tree, query timeline): on the
	// shard, through the head, and through the head with the shard map
	// (routeToShard, counted in: it looks the shard up and connects).
	ctx := context.Background()
	shardQ := &query.Querier{DB: x.shards[r.Shard]}
	headQ := &query.Querier{DB: head}
	questions := map[string]func(*query.Querier) (*query.Table, error){
		"query-tree": func(q *query.Querier) (*query.Table, error) { return q.Tree(ctx, "h2", time.Now().AddDate(1, 0, 0)) },
		"query-timeline": func(q *query.Querier) (*query.Table, error) {
			return q.Timeline(ctx, "h2", query.Range{From: time.Now().AddDate(0, 0, -2)}, 0)
		},
		// The first 100 rows (the web interface's page): timeline.sql
		// pages before its user/exe lookups.
		"query-timeline-page": func(q *query.Querier) (*query.Table, error) {
			pq := *q
			pq.Page = query.Page{Limit: 100}
			return pq.Timeline(ctx, "h2", query.Range{From: time.Now().AddDate(0, 0, -2)}, 0)
		},
	}
	for _, qn := range []string{"query-tree", "query-timeline", "query-timeline-page"} {
		ask := questions[qn]
		for _, side := range []string{"single", "head", "routed"} {
			b.Run(qn+"/"+side, func(b *testing.B) {
				for b.Loop() {
					q, done := shardQ, func() {}
					switch side {
					case "head":
						q = headQ
					case "routed":
						sq, closeS, err := routeToShard(ctx, slog.New(slog.DiscardHandler), headQ, "h2", x.mapf)
						if err != nil || sq == nil {
							b.Fatalf("route: %v", err)
						}
						q, done = sq, closeS
					}
					t, err := ask(q)
					done()
					if err != nil || len(t.Rows) == 0 {
						b.Fatalf("%s %s: %v", qn, side, err)
					}
				}
			})
		}
	}
}

// explain returns the EXPLAIN rows of q on db, one line each.
func explain(t testing.TB, db *sql.DB, q string) []string {
	t.Helper()
	var out []string
	testutil.EachRow(t, db, func(row testutil.Row) {
		cols, v := row.Text()
		var f []string
		for i, c := range cols {
			if v[i].Valid {
				f = append(f, c+"="+v[i].String)
			}
		}
		out = append(out, strings.Join(f, " "))
	}, "EXPLAIN "+q)
	return out
}

// dump returns the (host, n, c) rows of q on db, each as a JSON array.
func dump(t *testing.T, db *sql.DB, q string) []string {
	t.Helper()
	var out []string
	testutil.EachRow(t, db, func(row testutil.Row) {
		var h string
		var n, c int64
		row.Scan(&h, &n, &c)
		b, _ := json.Marshal([]any{h, n, c})
		out = append(out, string(b))
	}, q)
	return out
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, s := range a {
		m[s]++
	}
	for _, s := range b {
		if m[s]--; m[s] < 0 {
			return false
		}
	}
	return true
}

// TestFleetSchemaUsers: with a shard map 'schema users' makes the accounts
// on every shard (or the one --shard names), one password for all, and a
// DSN file per shard that loads into that shard.
func TestFleetSchemaUsers(t *testing.T) {
	x := newFleet(t, "h1")
	etc := t.TempDir()
	suffix := fmt.Sprintf("%d", time.Now().UnixNano()%1e6)
	lu, ru := "fl_loader_"+suffix, "fl_reader_"+suffix
	users := []string{"schema", "users", "--shards", x.mapf, "--loader-user", lu, "--reader-user", ru,
		"--loader-password-file", filepath.Join(etc, "loader.pw"), "--reader-password-file", filepath.Join(etc, "reader.pw")}
	code, out, errs := runApp(t, append(users, "--shard", "s2")...)
	if code != 0 || strings.Contains(out, "shard s1:") || !strings.Contains(out, "shard s2:") {
		t.Fatalf("schema users --shard s2: exit %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(etc, "loader-s1.dsn")); err == nil {
		t.Errorf("--shard s2 wrote s1's DSN file")
	}
	code, out, errs = runApp(t, users...)
	if code != 0 || !strings.Contains(out, "shard s1:") || !strings.Contains(out, "shard s2:") {
		t.Fatalf("schema users on the fleet: exit %d\n%s%s", code, out, errs)
	}
	pw, _ := os.ReadFile(filepath.Join(etc, "loader.pw"))
	for _, s := range []string{"s1", "s2"} {
		b, err := os.ReadFile(filepath.Join(etc, "loader-"+s+".dsn"))
		if err != nil || !strings.Contains(string(b), lu+":"+strings.TrimSpace(string(pw))+"@") {
			t.Fatalf("loader-%s.dsn: %q, %v", s, b, err)
		}
		var name string
		if err := x.shards[s].QueryRow("SELECT DATABASE()").Scan(&name); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "/"+name+"?") && !strings.HasSuffix(strings.TrimSpace(string(b)), "/"+name) {
			t.Errorf("loader-%s.dsn names another database than %s: %q", s, name, b)
		}
		// The account works on its shard: a load with it.
		db, err := loader.OpenDB(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		var n int
		err = db.QueryRow("SELECT COUNT(*) FROM segments").Scan(&n)
		db.Close()
		if err != nil {
			t.Errorf("the loader account of %s cannot read its shard: %v", s, err)
		}
		if _, err := os.Stat(filepath.Join(etc, "reader-"+s+".dsn")); err != nil {
			t.Errorf("reader-%s.dsn: %v", s, err)
		}
	}
}

// TestFleetLoadGeoAndMetrics: with a shard map, load --geoip stores each
// address lookup on the shard of the host that had the address and on the
// first shard (whose addr_info the head reads); load --watch
// --metrics-listen serves one ledger per shard, labeled, and the inboxes
// once; ui --metrics-listen on the head and serve --metrics-listen with the
// map serve theirs.
func TestFleetLoadGeoAndMetrics(t *testing.T) {
	x := newFleet(t, "h1", "h2")
	x.run(t, 0, "shards", "pin", "h1", "s1")
	x.run(t, 0, "shards", "pin", "h2", "s2")
	for _, h := range []string{"h1", "h2"} {
		procs, files, socks := servertest.BusyRows(servertest.HostileBase(), 200)
		for i := range socks {
			a := []byte{198, 51, 100, byte(i)}
			if h == "h2" {
				a = []byte{203, 0, 113, byte(i)}
			}
			socks[i].RemoteAddr = a
		}
		x.f.Seal(h, func(s event.Sink) { event.AppendAll(s, procs, files, socks, nil, nil) })
	}
	geo := filepath.Join(t.TempDir(), "geo.BIN")
	if err := geotest.WriteBIN(geo, []geotest.Net{
		{Prefix: netip.MustParsePrefix("198.51.100.0/24"), Country: "FR", CountryName: "France", City: "Paris"},
		{Prefix: netip.MustParsePrefix("203.0.113.0/24"), Country: "VN", CountryName: "Viet Nam", City: "Hanoi"}}); err != nil {
		t.Fatal(err)
	}
	x.run(t, 0, "load", "--geoip", geo, "--resolve-wait", "30s")
	countries := func(s string) map[string]int {
		t.Helper()
		out := map[string]int{}
		testutil.EachRow(t, x.shards[s], func(row testutil.Row) {
			var c string
			var n int
			row.Scan(&c, &n)
			out[c] = n
		}, "SELECT COALESCE(country, '-'), COUNT(*) FROM addr_info GROUP BY 1")
		return out
	}
	// 20 sockets per host, distinct addresses.
	if got := countries("s2"); len(got) != 1 || got["VN"] != 20 {
		t.Errorf("addr_info on s2 (h2's shard): %v, want VN 20 only", got)
	}
	if got := countries("s1"); len(got) != 2 || got["FR"] != 20 || got["VN"] != 20 {
		t.Errorf("addr_info on s1 (the first shard, read by the head): %v, want FR 20 and VN 20", got)
	}

	bin := testutil.Bin(t, "./cmd/pofr-server")
	scrape := startScraped(t, bin, "load", "--watch", "1s", "--no-progress", "--shards", x.mapf, "--state-dir", x.f.State.String())
	scrape(`pofr_ledger_up{shard="s1"} 1`, `pofr_ledger_up{shard="s2"} 1`, `pofr_segments_loaded_total{host="h1",shard="s1"} 1`,
		`pofr_segments_loaded_total{host="h2",shard="s2"} 1`, "pofr_inbox_segments 0", "pofr_load_lag_seconds 0")
	x.applyHead(t)
	m, err := fleet.Load(x.mapf)
	if err != nil {
		t.Fatal(err)
	}
	scrape = startScraped(t, bin, "ui", "--listen", "127.0.0.1:0", "--dsn-file", m.Head.ReaderDSNFile)
	scrape("pofr_ledger_up 1", `pofr_segments_loaded_total{host="h1"} 1`, `pofr_segments_loaded_total{host="h2"} 1`, `pofr_hosts{status="active"} 2`)
	scrape = startScraped(t, bin, "serve", "--listen", "127.0.0.1:0", "--shards", x.mapf, "--state-dir", x.f.State.String())
	scrape("pofr_receiver_connections_total 0")
}
