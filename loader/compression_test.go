package loader

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pofr/pofr/internal/testutil"
	"github.com/pofr/pofr/schema"
)

// TestMigration014 upgrades a database at schema 013 that holds rows, with
// file_events turned into ROW_FORMAT=COMPRESSED by an administrator (what
// docs/schema.md offered before): every row reads back the same, the event
// tables are page-compressed, and their files, flushed, take well under
// their logical size on disk, also after a day partition is split off pmax.
func TestMigration014(t *testing.T) {
	m := testutil.StartMariaDB(t)
	dsn, _ := m.NewDatabase(t)
	db, err := OpenDB(dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := t.Context()
	for _, x := range schema.Migrations() {
		if x.Version >= 14 {
			break
		}
		for i, st := range schema.Statements(x.SQL) {
			if _, err := db.ExecContext(ctx, st); err != nil {
				t.Fatalf("%s statement %d: %v", x.Name, i+1, err)
			}
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO schema_version (version, name) VALUES (?, ?)", x.Version, x.Name); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.ExecContext(ctx, "ALTER TABLE file_events ROW_FORMAT=COMPRESSED KEY_BLOCK_SIZE=8"); err != nil {
		t.Fatal(err)
	}
	for _, st := range []string{
		`INSERT INTO proc_events (segment_id, row_no, host_id, boot_id, ts, ts_ns, tz_offset, event, pid, tid, ppid, proc_start,
			flags, comm, exe, argv, cwd, cgroup)
		 SELECT 1, seq, 'host-a', 'boot-1', TIMESTAMP'2026-01-01 00:00:00' + INTERVAL seq SECOND, 0, 0, 'exec', 300 + seq, 300 + seq, 1,
			seq * 3000, 0, 'worker', '/usr/bin/worker', CONCAT('worker', 0x00, '--job', 0x00, seq, 0x00), '/srv', '/system.slice/worker.service'
		 FROM seq_1_to_30000`,
		`INSERT INTO file_events (segment_id, row_no, host_id, boot_id, ts, ts_ns, tz_offset, last_ts, count, pid, proc_start, op, path, flags)
		 SELECT 1, seq, 'host-a', 'boot-1', TIMESTAMP'2026-01-01 00:00:00' + INTERVAL seq SECOND, 0, 0,
			TIMESTAMP'2026-01-01 00:00:00' + INTERVAL seq SECOND, 1, 300 + seq, seq * 3000, 'open', CONCAT('/srv/data/', seq MOD 13, '/file-', seq MOD 1009), 0
		 FROM seq_1_to_30000`,
	} {
		if _, err := db.ExecContext(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	sums := func() []string {
		var out []string
		for _, q := range []string{
			"SELECT CONCAT(COUNT(*), ' ', BIT_XOR(CRC32(CONCAT_WS(',', segment_id, row_no, ts, pid, proc_start, exe, HEX(argv), cwd, cgroup)))) FROM proc_events",
			"SELECT CONCAT(COUNT(*), ' ', BIT_XOR(CRC32(CONCAT_WS(',', segment_id, row_no, ts, last_ts, pid, proc_start, op, path)))) FROM file_events",
		} {
			var s string
			if err := db.QueryRowContext(ctx, q).Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return out
	}
	before := sums()
	applied, err := schema.Apply(ctx, db)
	if err != nil || len(applied) == 0 || applied[0] != 14 {
		t.Fatalf("apply: %v, %v; want 14 applied first", applied, err)
	}
	if after := sums(); !slices.Equal(before, after) {
		t.Errorf("rows changed by migration 014: %q, want %q", after, before)
	}
	for _, tb := range schema.PageCompressedTables {
		var opts string
		if err := db.QueryRowContext(ctx, `SELECT LOWER(CREATE_OPTIONS) FROM information_schema.TABLES
			WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`, tb).Scan(&opts); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(opts, "`page_compressed`='1'") && !strings.Contains(opts, "page_compressed=1") || strings.Contains(opts, "row_format=compressed") {
			t.Errorf("%s create options %q, want page_compressed and not row_format=compressed", tb, opts)
		}
	}
	onDisk := func(when string) {
		t.Helper()
		if _, err := db.ExecContext(ctx, "ANALYZE TABLE proc_events, file_events"); err != nil {
			t.Fatal(err)
		}
		for _, tb := range []string{"proc_events", "file_events"} {
			var logical int64
			if err := db.QueryRowContext(ctx, `SELECT DATA_LENGTH + INDEX_LENGTH FROM information_schema.TABLES
				WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`, tb).Scan(&logical); err != nil {
				t.Fatal(err)
			}
			disk, err := schema.DiskBytes(ctx, db, tb)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s %s: %d bytes on disk, %d logical", when, tb, disk, logical)
			if disk*2 > logical {
				t.Errorf("%s %s takes %d bytes on disk, logically %d: not page-compressed", when, tb, disk, logical)
			}
		}
	}
	onDisk("after migration 014:")
	day := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if n, err := schema.EnsurePartitions(ctx, db, day, day); err != nil || n == 0 {
		t.Fatalf("add partition: %d, %v", n, err)
	}
	onDisk("after a day partition was split off:")
	if after := sums(); !slices.Equal(before, after) {
		t.Errorf("rows changed by the new partition: %q, want %q", after, before)
	}
}
