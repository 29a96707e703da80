package loader

import (
	"database/sql"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/pofr/pofr/internal/registry"
)

var update = flag.Bool("update", false, "rewrite docs/schema.md from the schema's COMMENTs")

const schemaDocPath = "../docs/schema.md"

const schemaDocHead = `# pofr database schema

Generated from the COMMENTs of the schema (schema/*.sql) by
` + "`go test ./loader/ -run TestSchemaDoc -update`" + `; a test fails when this page and
the schema disagree. ` + "`pofr-server schema print`" + ` prints the SQL itself.

## Decisions

- **One database for the fleet**, MariaDB ≥ 10.5, InnoDB, utf8mb4 for text. Every event row carries
  ` + "`host_id`" + ` and ` + "`boot_id`" + ` (from the segment manifest) and ` + "`segment_id`, `row_no`" + `: the ledger row and the
  position in the segment it came from, its provenance.
- **Timestamps** are DATETIME(6) in UTC. The main ` + "`ts`" + ` of proc, file, sock and dns events also has
  ` + "`ts_ns`" + ` (0–999), the nanoseconds beyond the microsecond, so ` + "`ts` + `ts_ns`" + ` is exactly the
  kernel's time; other timestamps (last_ts, first_ts, gaps, accounts) are truncated to the µs.
  ` + "`tz_offset`" + ` is the host's UTC offset in seconds when the segment was sealed.
- **Names are bytes.** comm, exe, argv, cwd, paths, cgroup, tty, container ids, account names
  and gap reasons are VARBINARY/BLOB holding exactly what the host sent (Linux names are not
  UTF-8, and attackers choose them). Views add display text (` + "`cmdline`, `*_text`" + `: CONVERT …
  USING utf8mb4, invalid bytes shown as ?). Small vocabularies (event, op, state, …) are ASCII; a
  segment with anything else there is quarantined.
- **Addresses** are VARBINARY(16), 4 or 16 bytes in network order: ` + "`INET6_NTOA(remote_addr)`" + `.
- **Partitions.** proc_events, file_events, sock_events, dns_events (with dns_names, its answers by address) and
  login_events are partitioned by UTC day on ` + "`ts`" + `
  (RANGE COLUMNS, partitions ` + "`pYYYYMMDD`" + ` and a ` + "`pmax`" + ` catch-all). ` + "`pofr-server schema apply`" + ` and
  ` + "`pofr-server retention`" + ` create the coming days' partitions (splitting pmax); ` + "`retention --keep 90d`" + `
  drops whole days. Their primary key is (segment_id, row_no, ts): it names each row's origin,
  makes a double load impossible even below the ledger, keeps inserts appending, and includes
  ts because every unique key of a partitioned table must. gaps, accounts, segments and
  quarantine are small, not partitioned, and kept; executables (a row per file identity and refresh, as sent),
  exe_ids (one row per file identity, merged from them at load) and containers (one row per container id) are not
  partitioned either and go when the host is purged.
- **Derived tables.** dns_names and exe_ids are filled by the loader in the transaction of the segment whose rows
  they come from, and can be rebuilt from dns_events and executables by the statements of their migrations (015,
  016); ` + "`verify --rows`" + ` checks the rows they come from.
- **Custody ledger.** ` + "`segments`" + ` has one row per loaded segment, written in the same transaction as
  its rows; UNIQUE (host_id, seq) and UNIQUE (digest) make a second load of a segment fail.
  ` + "`chain_ok`" + ` records the hash chain against the ledger (NULL while the predecessor is missing).
  ` + "`pofr-server verify`" + ` audits it (holes, chain, and with ` + "`--archive`" + ` every archived file against the
  host's key and the ledger's digest, with ` + "`--rows`" + ` every loaded row against its archived file). ` + "`retention --archive-keep`" + ` deletes archived files by the
  ledger's ts_to and sets ` + "`archive_removed_at`" + `; ` + "`deregister --purge-rows`" + ` deletes a host's rows.
- **Accounts.** ` + "`schema users`" + ` creates the loader (SELECT on the database; INSERT on the event tables,
  ` + "`segments`, `quarantine`" + ` and ` + "`hosts`" + `; UPDATE only of ` + "`segments.chain_ok`" + ` and the ` + "`hosts`" + ` columns copied
  from the registry) and the reader (SELECT, SHOW VIEW). Neither has FILE, SUPER, DELETE or DDL, so
  neither can rewrite or remove a loaded row; ` + "`schema apply`, `retention`" + ` (ALTER, DROP for partitions)
  and ` + "`deregister --purge-rows`" + ` use the administrator's DSN. Rows added under a loaded segment, or
  changed by an account that can, are found by ` + "`verify --rows`" + `.
- **Disk.** The event tables (proc, file, sock, dns and login events) are **page-compressed** (migration 014:
  ` + "`" + `PAGE_COMPRESSED=1 PAGE_COMPRESSION_LEVEL=1` + "`" + `): InnoDB compresses each 16 KiB page when it writes it (zlib, the
  server's ` + "`" + `innodb_compression_algorithm` + "`" + `) and punches a hole in the file for the rest. Measured by ` + "`" + `make bench` + "`" + `
  (` + "`" + `Loader/storage` + "`" + `: the ` + "`" + `.ibd` + "`" + ` files' allocated blocks after ` + "`" + `FLUSH TABLES … FOR EXPORT` + "`" + `; the busy-host mix of
  short argv and short host and boot ids, 400,000 rows, schema 014) **on disk: proc_events 87, file_events 62,
  sock_events 164 bytes per row (80 over the mix)**, against about 16 bytes per row in the spool; logically (what
  ` + "`" + `information_schema` + "`" + ` reports, DATA_LENGTH + INDEX_LENGTH) they are 382, 265 and 435 (317). Where the logical
  bytes go (per row, each index's allocated pages from ` + "`" + `mysql.innodb_index_stats` + "`" + `):

  | table | rows (PRIMARY) | host_ts | proc | other indexes | logical | on disk |
  |---|---|---|---|---|---|---|
  | proc_events | 276 | 39 | 66 | — | 382 | 87 |
  | file_events | 160 | 42 | 64 | — | 265 | 62 |
  | sock_events | 197 | 40 | 66 | local_end 66, remote 66 | 435 | 164 |

  A day of one host on disk, at the bench's mix (per exec: fork, exec and exit rows, six file rows, one socket row,
  3 × 87 + 6 × 62 + 164 ≈ 800 B): **10 exec/s ≈ 0.69 GB, 100 exec/s ≈ 6.9 GB, 1000 exec/s ≈ 69 GB**; the process rows alone
  (3 × rate × 86,400 × 87 B) 0.23, 2.3 and 23 GB (uncompressed they were 0.97, 9.7 and 97 GB). The bench's strings
  repeat more than a real host's; longer and more varied argv, paths and cgroups, and real 36-character boot ids,
  compress less and cost more. What page compression needs: ` + "`" + `innodb_compression_algorithm` + "`" + ` not ` + "`" + `none` + "`" + ` (zlib is the
  default), ` + "`" + `innodb_page_size` + "`" + ` 16k or more (the default), and a data directory on a file system that punches holes
  (ext4, XFS, btrfs); ` + "`" + `schema apply` + "`" + ` warns about the first two, and otherwise the tables simply take their logical
  size. ` + "`" + `information_schema` + "`" + ` keeps reporting logical sizes: measure with ` + "`" + `du` + "`" + ` on the ` + "`" + `.ibd` + "`" + ` files. Migration 014
  rebuilds the event tables (existing rows are converted; it needs room for a copy of a table and about as long
  as loading the rows again). Migration 011 dropped proc_events' ` + "`" + `parent` + "`" + ` index and 012 file_events' ` + "`" + `path` + "`" + ` index,
  which no documented query used; docs/design.md compares the options measured.

## Views

The views hold no rows, so they have one definition, ` + "`schema/views.sql`" + `, not a history:
` + "`schema apply`" + ` runs it after the migrations every time (CREATE OR REPLACE VIEW), whatever version the
database came from. A change to a view goes there, with a new migration number (a comment is enough) so that
older databases are told to run ` + "`schema apply`" + `. Migrations 002, 003, 007 and 018 once defined them.

- ` + "`processes`" + `: one row per process life (host_id, boot_id, pid, proc_start): start_ts (first event),
  fork_ts, exec_count, the first exec's exe/argv/cmdline/comm/cwd/ids (or, if it never exec'd
  while recorded, its snapshot or fork row), exit_ts/exit_code/exit_signal, parent_pid and
  parent_start (from the fork row, else snapshot, else exec).
- ` + "`proc_event_details`" + `: proc_events with what each row changed in words (detail): a fork's parent, an exit's
  code or signal, the new ids of uid/gid/sid rows, a comm row's new name, a ptrace row's tracer. ` + "`query timeline`" + `
  and ` + "`query proc`" + ` show it (migration 019).
- ` + "`process_tree`" + `: one row per parent → child edge between lives, with both sides' exe and cmdline.
- **Per host, one host's cost.** Since migration 007 ` + "`processes`" + ` groups a life's rows in one derived
  table, into which MariaDB pushes ` + "`host_id = …`" + ` (and boot, pid, proc_start), and reads the
  describing row by its primary key, computed in that grouping; ` + "`process_tree` and `connections`" + ` take
  the parent's or owner's exe/argv/cmdline from that life's describing row by the ` + "`proc`" + ` index
  instead of joining a second ` + "`processes`" + `. So a query filtered to one host reads that host's rows
  only, however many hosts the database holds (002's window function and second join read every
  host's rows). ` + "`query/plan_test.go`" + ` runs EXPLAIN for every per-host query file and these views on a
  database of 12 hosts and fails on a full scan or on more rows than one host holds.
- ` + "`timeline`" + `: proc, file and sock rows interleaved: ts, ts_ns, host, boot, pid, proc_start, kind
  (proc/file/sock), what (event or op) and detail (exe, path, or "tcp out 10.0.0.1:5000 192.0.2.7:443").
- ` + "`connections`" + `: sock rows with local_ip/remote_ip in text and the owner life's exe and argv.
- ` + "`peer_connections`" + `: connections between two monitored hosts, one row per (client socket, server
  socket) pair, with the owner life (exe, argv, cmdline), uid and user name on both ends. A socket
  is (host_id, boot_id, cookie), alive from first_ts to its last row. The client end (direction out)
  on one host and the server end (direction in) on another pair up when the client's remote
  address:port is the server's local address:port, the server's remote port is the client's local
  port (server_seen_ip may differ behind NAT), the protocol is the same and the lifetimes overlap
  within 5 s; loopback and unspecified addresses never pair. The rules of ` + "`query peers`" + `; the
  join uses sock_events' local_end index.

## Tables
`

// TestSchemaDoc keeps docs/schema.md equal to the schema's COMMENTs.
func TestSchemaDoc(t *testing.T) {
	db, _ := newDB(t)
	var b strings.Builder
	b.WriteString(schemaDocHead)
	tables, err := db.Query(`SELECT TABLE_NAME, TABLE_COMMENT FROM information_schema.TABLES
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' ORDER BY FIELD(TABLE_NAME,
		'hosts', 'segments', 'proc_events', 'file_events', 'sock_events', 'dns_events', 'dns_names', 'login_events', 'addr_info', 'gaps', 'accounts', 'executables', 'exe_ids', 'containers', 'quarantine', 'schema_version')`)
	if err != nil {
		t.Fatal(err)
	}
	var ts []tbl
	for tables.Next() {
		var x tbl
		if err := tables.Scan(&x.name, &x.comment); err != nil {
			t.Fatal(err)
		}
		ts = append(ts, x)
	}
	tables.Close()
	writeTableDocs(t, db, &b, ts)
	// The shared registry's tables (package registry) live in whatever
	// database its DSN names; they are no migration, but documented here.
	for _, q := range registry.Tables {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	b.WriteString(registryDocHead)
	writeTableDocs(t, db, &b, []tbl{{"registry_hosts", ""}, {"registry_requests", ""}, {"registry_tokens", ""}, {"registry_lock", ""}})
	got := b.String()
	if *update {
		if err := os.WriteFile(schemaDocPath, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(schemaDocPath)
	if err != nil {
		t.Fatalf("%v (run go test ./loader/ -run TestSchemaDoc -update)", err)
	}
	if string(want) != got {
		t.Errorf("%s is out of date: run go test ./loader/ -run TestSchemaDoc -update", schemaDocPath)
	}
}

type tbl struct{ name, comment string }

const registryDocHead = `
## Registry tables

Created by pofr-server in the database of the shard map's ` + "`registry`" + ` entry at first use (package registry;
docs/operations.md, "Several receivers"), not by a migration: the shared host registry of several receivers.
`

// writeTableDocs writes the section of each table in ts (a table's empty
// comment is read from the database).
func writeTableDocs(t *testing.T, db *sql.DB, b *strings.Builder, ts []tbl) {
	t.Helper()
	for _, x := range ts {
		if x.comment == "" {
			if err := db.QueryRow("SELECT TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?", x.name).Scan(&x.comment); err != nil {
				t.Fatal(err)
			}
		}
		fmt.Fprintf(b, "\n### %s\n\n%s\n\n| column | type | null | meaning |\n|---|---|---|---|\n", x.name, x.comment)
		cols, err := db.Query(`SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_COMMENT FROM information_schema.COLUMNS
			WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, x.name)
		if err != nil {
			t.Fatal(err)
		}
		for cols.Next() {
			var name, typ, null, comment string
			if err := cols.Scan(&name, &typ, &null, &comment); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s |\n", name, typ, strings.ToLower(null), strings.ReplaceAll(comment, "|", `\|`))
		}
		cols.Close()
		idx, err := db.Query(`SELECT INDEX_NAME, GROUP_CONCAT(CONCAT(COLUMN_NAME, IF(SUB_PART IS NULL, '', CONCAT('(', SUB_PART, ')'))) ORDER BY SEQ_IN_INDEX SEPARATOR ', '), MIN(NON_UNIQUE)
			FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? GROUP BY INDEX_NAME ORDER BY INDEX_NAME <> 'PRIMARY', INDEX_NAME`, x.name)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for idx.Next() {
			var name, cols string
			var nonUnique int
			if err := idx.Scan(&name, &cols, &nonUnique); err != nil {
				t.Fatal(err)
			}
			kind := "key"
			if name == "PRIMARY" {
				kind = "primary key"
			} else if nonUnique == 0 {
				kind = "unique"
			}
			keys = append(keys, fmt.Sprintf("%s %s (%s)", kind, name, cols))
		}
		idx.Close()
		fmt.Fprintf(b, "\nKeys: %s.\n", strings.Join(keys, "; "))
	}
}
