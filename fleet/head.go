package fleet

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// Part is one partition of a head table: the hosts whose rows live on a
// shard.
type Part struct {
	Shard string
	Hosts []string
}

// HeadSession are the session settings a query through a Spider head needs
// (docs/design.md, "Fleet"): without split_materialized=off the processes
// view sends one remote query per process life; Spider's group-by handler
// writes invalid SQL for the window-function views. Join caches stop short
// of BKA (level 4): BKA made peer_connections fast, but crashed MariaDB
// 10.11.19 (signal 11 in JOIN_TAB_SCAN_MRR::next) on the process tree.
var HeadSession = []string{
	"SET SESSION optimizer_switch = 'split_materialized=off'",
	"SET SESSION join_cache_level = 4",
	"SET SESSION spider_disable_group_by_handler = 1",
}

// sqlString quotes s as a MariaDB string literal.
func sqlString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\x00", `\0`, "\n", `\n`, "\r", `\r`, "\x1a", `\Z`)
	return "'" + r.Replace(s) + "'"
}

// CreateServer returns the head's CREATE OR REPLACE SERVER statement for
// shard name, connecting with the go-sql-driver/mysql DSN dsn (TCP or unix
// socket).
func CreateServer(name, dsn string) (string, error) {
	if !ValidName(name) {
		return "", fmt.Errorf("create server: bad shard name %q", name)
	}
	cfg, err := mysql.ParseDSN(strings.TrimSpace(dsn))
	if err != nil {
		return "", fmt.Errorf("shard %s: parse DSN: %w", name, err)
	}
	if cfg.DBName == "" {
		return "", fmt.Errorf("shard %s: DSN names no database", name)
	}
	opts := []string{"USER " + sqlString(cfg.User), "PASSWORD " + sqlString(cfg.Passwd), "DATABASE " + sqlString(cfg.DBName)}
	switch cfg.Net {
	case "unix":
		opts = append(opts, "HOST 'localhost'", "SOCKET "+sqlString(cfg.Addr))
	case "tcp", "":
		host, port := cfg.Addr, "3306"
		if i := strings.LastIndex(cfg.Addr, ":"); i >= 0 {
			host, port = strings.Trim(cfg.Addr[:i], "[]"), cfg.Addr[i+1:]
		}
		p, err := strconv.Atoi(port)
		if err != nil || p <= 0 || p > 65535 {
			return "", fmt.Errorf("shard %s: DSN port %q", name, port)
		}
		opts = append(opts, "HOST "+sqlString(host), "PORT "+strconv.Itoa(p))
	default:
		return "", fmt.Errorf("shard %s: DSN network %q: want tcp or unix", name, cfg.Net)
	}
	return fmt.Sprintf("CREATE OR REPLACE SERVER `%s` FOREIGN DATA WRAPPER mysql OPTIONS (%s)", name, strings.Join(opts, ", ")), nil
}

var (
	uniqueKeyRE  = regexp.MustCompile("((?:PRIMARY KEY|UNIQUE KEY `[^`]+`) )\\(([^)]*)\\)")
	tableOptsRE  = regexp.MustCompile(`(?s)\n\) ENGINE=.*$`)
	charsetRE    = regexp.MustCompile(`DEFAULT CHARSET=(\w+)`)
	collateRE    = regexp.MustCompile(`COLLATE=(\w+)`)
	hostColumnRE = regexp.MustCompile("(?m)^  `host_id` ")
)

// SpiderTable turns a shard's SHOW CREATE TABLE text for table into the
// head's Spider table. A table with a host_id column is partitioned by
// LIST COLUMNS(host_id), one partition per shard listing its hosts, with
// host_id added to the primary and unique keys (Error 1503 otherwise); a
// table without one (dictionaries, schema_version) links to the first
// part's shard alone. The shard's own table options and partitioning
// (days) stay on the shard.
func SpiderTable(create, table string, parts []Part) (string, error) {
	if len(parts) == 0 {
		return "", fmt.Errorf("table %s: no shard holds a host", table)
	}
	loc := tableOptsRE.FindStringIndex(create)
	if loc == nil || !strings.HasPrefix(create, "CREATE TABLE `") {
		return "", fmt.Errorf("table %s: unexpected SHOW CREATE TABLE text", table)
	}
	body, opts := create[:loc[0]], create[loc[0]:]
	tail := "\n) ENGINE=SPIDER"
	if m := charsetRE.FindStringSubmatch(opts); m != nil {
		tail += " DEFAULT CHARSET=" + m[1]
	}
	if m := collateRE.FindStringSubmatch(opts); m != nil {
		tail += " COLLATE=" + m[1]
	}
	comment := func(shard string) string {
		return sqlString(fmt.Sprintf(`srv "%s", tbl "%s"`, shard, table))
	}
	if !hostColumnRE.MatchString(body) {
		return body + tail + " COMMENT=" + comment(parts[0].Shard), nil
	}
	body = uniqueKeyRE.ReplaceAllStringFunc(body, func(k string) string {
		m := uniqueKeyRE.FindStringSubmatch(k)
		if strings.Contains(m[2], "`host_id`") {
			return k
		}
		return m[1] + "(" + m[2] + ",`host_id`)"
	})
	var ps []string
	for _, p := range parts {
		hosts := append([]string(nil), p.Hosts...)
		sort.Strings(hosts)
		for i, h := range hosts {
			hosts[i] = sqlString(h)
		}
		ps = append(ps, fmt.Sprintf(" PARTITION `%s` VALUES IN (%s) COMMENT=%s", p.Shard, strings.Join(hosts, ","), comment(p.Shard)))
	}
	return body + tail + "\nPARTITION BY LIST COLUMNS(`host_id`)\n(" + strings.Join(ps, ",\n") + ")", nil
}

var definerRE = regexp.MustCompile("DEFINER=`(?:[^`]|``)*`@`(?:[^`]|``)*` ")

// ShardSchema is what the head copies from a shard: its base tables' and
// views' CREATE statements, tables first, in name order.
type ShardSchema struct {
	DB            string   // the shard's database
	Tables, Views []string // names
	Create        map[string]string
}

// ReadShardSchema reads the base tables and views of db's current
// database, so that the head follows whatever tables the shard has.
func ReadShardSchema(ctx context.Context, db *sql.DB) (*ShardSchema, error) {
	rows, err := db.QueryContext(ctx, `SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE IN ('BASE TABLE', 'VIEW') ORDER BY TABLE_NAME`)
	if err != nil {
		return nil, fmt.Errorf("read shard schema: %w", err)
	}
	s := &ShardSchema{Create: map[string]string{}}
	if err := db.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&s.DB); err != nil {
		return nil, fmt.Errorf("read shard schema: %w", err)
	}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			rows.Close()
			return nil, err
		}
		if typ == "VIEW" {
			s.Views = append(s.Views, name)
		} else {
			s.Tables = append(s.Tables, name)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, t := range append(append([]string(nil), s.Tables...), s.Views...) {
		var n, c string
		var rest []any
		q := "SHOW CREATE TABLE `" + strings.ReplaceAll(t, "`", "``") + "`"
		r, err := db.QueryContext(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", q, err)
		}
		cols, _ := r.Columns()
		rest = make([]any, len(cols)-2)
		for i := range rest {
			rest[i] = new(sql.RawBytes)
		}
		if !r.Next() {
			r.Close()
			return nil, fmt.Errorf("%s: no row", q)
		}
		err = r.Scan(append([]any{&n, &c}, rest...)...)
		r.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", q, err)
		}
		s.Create[t] = c
	}
	return s, nil
}

// HeadStatements returns the statements that (re)build the head over the
// shards: CREATE SERVER per shard (servers: name → DSN), every shard table
// as a Spider table (CREATE OR REPLACE: the head holds no data, so
// re-creating it with new host lists copies nothing), then the shard's
// views with their DEFINER removed (the head's admin owns them).
func HeadStatements(s *ShardSchema, servers map[string]string, parts []Part) ([]string, error) {
	var out []string
	names := make([]string, 0, len(servers))
	for n := range servers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		st, err := CreateServer(n, servers[n])
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	out = append(out, "SET SESSION foreign_key_checks = 0")
	for _, t := range s.Tables {
		st, err := SpiderTable(s.Create[t], t, parts)
		if err != nil {
			return nil, err
		}
		out = append(out, strings.Replace(st, "CREATE TABLE ", "CREATE OR REPLACE TABLE ", 1))
	}
	for _, v := range s.Views {
		c := definerRE.ReplaceAllString(s.Create[v], "")
		c = strings.ReplaceAll(c, "`"+strings.ReplaceAll(s.DB, "`", "``")+"`.", "")
		out = append(out, strings.Replace(c, "CREATE ", "CREATE OR REPLACE ", 1))
	}
	return out, nil
}
