package schema

import (
	"context"
	"crypto/sha1"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// PartitionedTables are the event tables partitioned by UTC day on ts.
var PartitionedTables = []string{"proc_events", "file_events", "sock_events", "dns_events", "dns_names", "login_events"}

// Users describes the accounts CreateUsers makes.
type Users struct {
	// Host is the host part of both accounts ('localhost' for the unix
	// socket, an address or '%').
	Host string
	// Loader and LoaderPassword: the account pofr-server load uses.
	Loader, LoaderPassword string
	// Reader and ReaderPassword: the analysts' read-only account. Empty
	// Reader skips it.
	Reader, ReaderPassword string
}

var (
	userRE = regexp.MustCompile(`^[a-zA-Z0-9_]{1,80}$`)
	hostRE = regexp.MustCompile(`^[a-zA-Z0-9.%_:-]{1,255}$`)
	dbRE   = regexp.MustCompile(`^[a-zA-Z0-9_$]{1,64}$`)
)

// ReaderPrivileges is what CreateUsers grants the reader account on the
// database, and nothing else.
const ReaderPrivileges = "SELECT, SHOW VIEW"

// LoaderGrants are what CreateUsers grants the loader account, as "PRIVS ON
// table" with the database left out, and nothing else: no FILE (LOAD DATA
// LOCAL needs only INSERT), no SUPER, no DDL, no DELETE, and no UPDATE of
// anything but the columns it maintains: segments.chain_ok (settled when a
// neighbour loads, and by verify), the hosts columns copied from the
// registry, and the derived tables addr_info and exe_ids. So the loader account can add rows but not rewrite or remove
// evidence; what it could still add (rows under a loaded segment) verify
// --rows finds. Retention (partition DDL) and purges run with the
// administrator's DSN.
var LoaderGrants = []string{
	"SELECT ON *",
	"INSERT ON proc_events", "INSERT ON file_events", "INSERT ON sock_events", "INSERT ON gaps", "INSERT ON accounts",
	"INSERT ON executables",
	"INSERT ON dns_events", "INSERT ON dns_names", "INSERT ON login_events", "INSERT ON containers",
	"INSERT, UPDATE ON addr_info",
	// exe_ids is derived: the loader merges it from executables rows (the
	// evidence, insert-only) with INSERT … SELECT … ON DUPLICATE KEY
	// UPDATE, which MariaDB allows only with UPDATE on every inserted
	// column, keys included (error 1143 with a column list).
	"INSERT, UPDATE ON exe_ids",
	"INSERT ON quarantine",
	"INSERT, DELETE ON alerts_fired",
	"INSERT, UPDATE (chain_ok) ON segments",
	"INSERT, UPDATE (hostname, machine_id, dmi_uuid, ips, os, kernel, version, ssh_key_fp, signing_key, status, registered_at, last_ip, synced_at, last_seen) ON hosts",
}

// CreateUsers creates (or updates the password and privileges of) the loader
// and reader accounts with exactly their privileges on database. db must be
// an administrator's connection.
func CreateUsers(ctx context.Context, db *sql.DB, database string, u Users) error {
	if !dbRE.MatchString(database) {
		return fmt.Errorf("create users: database name %q: want letters, digits, _ or $", database)
	}
	if u.Host == "" {
		u.Host = "localhost"
	}
	if !hostRE.MatchString(u.Host) {
		return fmt.Errorf("create users: host %q not allowed", u.Host)
	}
	type acct struct {
		name, pw string
		grants   []string // "PRIVS ON table"
	}
	accts := []acct{{u.Loader, u.LoaderPassword, LoaderGrants}}
	if u.Reader != "" {
		accts = append(accts, acct{u.Reader, u.ReaderPassword, []string{ReaderPrivileges + " ON *"}})
	}
	for _, a := range accts {
		if !userRE.MatchString(a.name) {
			return fmt.Errorf("create users: user name %q: want letters, digits or _", a.name)
		}
		if a.pw == "" {
			return fmt.Errorf("create users: empty password for %s", a.name)
		}
		who := "'" + a.name + "'@'" + u.Host + "'"
		// The password never appears in a statement: only its
		// mysql_native_password hash, which is hexadecimal.
		hash := nativePasswordHash(a.pw)
		if _, err := db.ExecContext(ctx, "CREATE USER IF NOT EXISTS "+who+" IDENTIFIED BY PASSWORD '"+hash+"'"); err != nil {
			return fmt.Errorf("create user %s: %w", a.name, err)
		}
		// Grants on other databases of the server (other shards of a
		// fleet sharing it) survive the REVOKE ALL below.
		others, err := otherDatabaseGrants(ctx, db, who, database)
		if err != nil {
			return fmt.Errorf("create user %s: %w", a.name, err)
		}
		sts := []string{
			"ALTER USER " + who + " IDENTIFIED BY PASSWORD '" + hash + "'",
			"REVOKE ALL PRIVILEGES, GRANT OPTION FROM " + who,
		}
		sts = append(sts, others...)
		for _, g := range a.grants {
			privs, table, _ := strings.Cut(g, " ON ")
			if table != "*" {
				table = "`" + table + "`" // a table of the schema: apply it first
			}
			sts = append(sts, "GRANT "+privs+" ON `"+database+"`."+table+" TO "+who)
		}
		for _, st := range sts {
			if _, err := db.ExecContext(ctx, st); err != nil {
				return fmt.Errorf("create user %s: %w", a.name, err)
			}
		}
	}
	return nil
}

// otherDatabaseGrants returns the GRANT statements SHOW GRANTS lists for who
// on a database other than database (and not global).
func otherDatabaseGrants(ctx context.Context, db *sql.DB, who, database string) ([]string, error) {
	rows, err := db.QueryContext(ctx, "SHOW GRANTS FOR "+who)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			return nil, err
		}
		_, target, ok := strings.Cut(g, " ON ")
		if !ok || !strings.HasPrefix(g, "GRANT ") || !strings.HasPrefix(target, "`") || strings.HasPrefix(target, "`"+database+"`.") {
			continue
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

// nativePasswordHash is MariaDB's PASSWORD(): '*' and the upper-case hex of
// SHA1(SHA1(pw)).
func nativePasswordHash(pw string) string {
	a := sha1.Sum([]byte(pw))
	b := sha1.Sum(a[:])
	return "*" + strings.ToUpper(hex.EncodeToString(b[:]))
}

// partition is one RANGE partition of a table.
type partition struct {
	name string
	day  time.Time // for pYYYYMMDD partitions: the day it holds (its bound is day+1)
}

// partitions lists a table's partitions in order.
func partitions(ctx context.Context, db *sql.DB, table string) ([]partition, error) {
	rows, err := db.QueryContext(ctx, `SELECT PARTITION_NAME FROM information_schema.PARTITIONS
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND PARTITION_NAME IS NOT NULL ORDER BY PARTITION_ORDINAL_POSITION`, table)
	if err != nil {
		return nil, fmt.Errorf("list partitions of %s: %w", table, err)
	}
	defer rows.Close()
	var out []partition
	for rows.Next() {
		var p partition
		if err := rows.Scan(&p.name); err != nil {
			return nil, fmt.Errorf("list partitions of %s: %w", table, err)
		}
		if d, err := time.Parse("p20060102", p.name); err == nil {
			p.day = d
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list partitions of %s: %w", table, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("list partitions of %s: table is not partitioned (run pofr-server schema apply)", table)
	}
	return out, nil
}

// day returns t's UTC day at midnight.
func day(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// EnsurePartitions gives every event table a partition for each UTC day
// from `from` to `to` (inclusive) that is later than its newest day
// partition, by splitting pmax. Rows already in pmax move to their day. It
// returns the number of partitions added. Needs ALTER on the tables.
func EnsurePartitions(ctx context.Context, db *sql.DB, from, to time.Time) (int, error) {
	added := 0
	for _, table := range PartitionedTables {
		ps, err := partitions(ctx, db, table)
		if err != nil {
			return added, err
		}
		if ps[len(ps)-1].name != "pmax" {
			return added, fmt.Errorf("partition %s: last partition is %s, want pmax", table, ps[len(ps)-1].name)
		}
		start := day(from)
		for _, p := range ps {
			if !p.day.IsZero() && !p.day.Before(start) {
				start = p.day.AddDate(0, 0, 1)
			}
		}
		var defs []string
		for d := start; !d.After(day(to)); d = d.AddDate(0, 0, 1) {
			defs = append(defs, fmt.Sprintf("PARTITION %s VALUES LESS THAN ('%s')", d.Format("p20060102"), d.AddDate(0, 0, 1).Format("2006-01-02")))
		}
		if len(defs) == 0 {
			continue
		}
		defs = append(defs, "PARTITION pmax VALUES LESS THAN (MAXVALUE)")
		if _, err := db.ExecContext(ctx, "ALTER TABLE "+table+" REORGANIZE PARTITION pmax INTO ("+strings.Join(defs, ", ")+")"); err != nil {
			return added, fmt.Errorf("partition %s: %w", table, err)
		}
		added += len(defs) - 1
	}
	return added, nil
}

// DropPartitions drops, from every event table, the day partitions whose
// whole day lies before `before` (UTC), and returns "table.partition" for
// each. Rows in them are gone; the ledger (segments) keeps its rows. Needs
// DROP on the tables.
func DropPartitions(ctx context.Context, db *sql.DB, before time.Time) ([]string, error) {
	cut := day(before)
	var dropped []string
	for _, table := range PartitionedTables {
		ps, err := partitions(ctx, db, table)
		if err != nil {
			return dropped, err
		}
		var names []string
		for _, p := range ps {
			if !p.day.IsZero() && !p.day.AddDate(0, 0, 1).After(cut) {
				names = append(names, p.name)
			}
		}
		if len(names) == 0 {
			continue
		}
		if _, err := db.ExecContext(ctx, "ALTER TABLE "+table+" DROP PARTITION "+strings.Join(names, ", ")); err != nil {
			return dropped, fmt.Errorf("drop partitions of %s: %w", table, err)
		}
		for _, n := range names {
			dropped = append(dropped, table+"."+n)
		}
	}
	slices.Sort(dropped)
	return dropped, nil
}

// ParseKeep parses a retention period: a number of days ("90d"), weeks
// ("12w") or a Go duration of whole days ("2160h").
func ParseKeep(s string) (time.Duration, error) {
	var n int
	var unit string
	if _, err := fmt.Sscanf(s, "%d%s", &n, &unit); err == nil && n > 0 {
		switch unit {
		case "d":
			return time.Duration(n) * 24 * time.Hour, nil
		case "w":
			return time.Duration(n) * 7 * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 24*time.Hour {
		return 0, errors.New("want a period of at least one day such as 90d, 12w or 2160h")
	}
	return d, nil
}
