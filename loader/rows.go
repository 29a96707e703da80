package loader

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/pofr/pofr/spool"
)

// RowsDiff says how the rows that MariaDB holds for one loaded segment, in
// one table, differ from the rows of the segment file.
type RowsDiff struct {
	Table    string // SQL table
	Rows     int64  // rows of the segment in this table
	Changed  int64  // same row_no, another value in some column
	Missing  int64  // in the segment, not in the database (and not expired)
	Extra    int64  // in the database under this segment, not in the segment
	Expired  int64  // missing, but older than the oldest day partition: retention may have dropped them
	FirstRow int64  // first row_no that differs (changed, missing or extra); -1 if none
}

// Differs reports whether the table's rows are not what the segment says.
func (d RowsDiff) Differs() bool { return d.Changed+d.Missing+d.Extra > 0 }

// CompareRows compares, table by table, the rows MariaDB holds under ledger
// row segmentID with the rows of seg (a verified segment) as the loader
// writes them: every column, the segment's host_id, boot_id and tz_offset
// included, row by row in row_no order. Each row is rendered on both sides
// in the loader's LOAD DATA text (byte columns as hexadecimal): from the
// segment by the loader's own renderer, from the database by one SQL
// expression per row. It returns one RowsDiff per table (also for tables
// without rows in the segment, where any row is extra). Rows of partitioned
// tables older than their oldest day partition may have been dropped by
// retention: if missing they count as Expired, not Missing.
func CompareRows(ctx context.Context, db *sql.DB, seg *spool.Segment, segmentID uint64) ([]RowsDiff, error) {
	var out []RowsDiff
	for _, ti := range tableInfos {
		rec, err := seg.Record(ti.table)
		if err != nil {
			return nil, err
		}
		d, err := compareTable(ctx, db, ti, rec, &seg.Manifest, segmentID)
		if err != nil {
			return nil, fmt.Errorf("compare rows of %s seq %d in %s: %w", seg.Manifest.HostID, seg.Manifest.Seq, ti.sqlName, err)
		}
		out = append(out, d)
	}
	return out, nil
}

// CheckRows is CompareRows in words, for custody.AuditOptions.Rows: one
// line per table whose rows differ, and one per table with expired rows.
func CheckRows(ctx context.Context, db *sql.DB, seg *spool.Segment, segmentID uint64) (differ, expired []string, err error) {
	diffs, err := CompareRows(ctx, db, seg, segmentID)
	if err != nil {
		return nil, nil, err
	}
	for _, d := range diffs {
		if d.Differs() {
			differ = append(differ, fmt.Sprintf("%s: %d changed, %d missing, %d extra of %d rows (first row_no %d)",
				d.Table, d.Changed, d.Missing, d.Extra, d.Rows, d.FirstRow))
		}
		if d.Expired > 0 {
			expired = append(expired, fmt.Sprintf("%s: %d of %d rows older than the oldest day partition", d.Table, d.Expired, d.Rows))
		}
	}
	return differ, expired, nil
}

// rowSQL returns the SQL expression that renders a row of ti as the
// loader's Hex-encoded LOAD DATA text renders it, without row_no.
func rowSQL(ti tableInfo, schema *arrow.Schema) string {
	const dt = "'%Y-%m-%d %H:%i:%s.%f'"
	var parts []string
	for _, f := range schema.Fields() {
		c := "`" + f.Name + "`"
		switch {
		case f.Name == "ts" && ti.tsNS:
			parts = append(parts, "DATE_FORMAT(ts, "+dt+")", "CAST(ts_ns AS CHAR)")
		case f.Type.ID() == arrow.TIMESTAMP:
			parts = append(parts, "IF("+c+" IS NULL, '\\\\N', DATE_FORMAT("+c+", "+dt+"))")
		case bytesColumn(f.Name, f.Type):
			parts = append(parts, "IF("+c+" IS NULL, '\\\\N', LOWER(HEX("+c+")))")
		case f.Type.ID() == arrow.DICTIONARY || f.Type.ID() == arrow.STRING:
			parts = append(parts, "IF("+c+" IS NULL, '\\\\N', REPLACE("+c+", '\\\\', '\\\\\\\\'))")
		default:
			parts = append(parts, "IF("+c+" IS NULL, '\\\\N', CAST("+c+" AS CHAR))")
		}
	}
	return "CONCAT_WS('\\t', " + strings.Join(parts, ", ") + ")"
}

// compareTable merges the segment's rows (in row_no order) with the
// database's rows of the segment ordered by row_no.
func compareTable(ctx context.Context, db *sql.DB, ti tableInfo, rec arrow.RecordBatch, m *spool.Manifest, segmentID uint64) (RowsDiff, error) {
	d := RowsDiff{Table: ti.sqlName, Rows: rec.NumRows(), FirstRow: -1}
	differ := func(row int64) {
		if d.FirstRow < 0 || row < d.FirstRow {
			d.FirstRow = row
		}
	}
	if err := checkSchema(ti.table, rec); err != nil {
		return d, err
	}
	r, err := newTSVReader(ti, rec, Hex)
	if err != nil {
		return d, err
	}
	var cutoff int64 = -1 << 63 // rows before it may have been dropped by retention
	var ts *array.Timestamp
	if ti.tsNS {
		if cutoff, err = oldestPartition(ctx, db, ti.sqlName); err != nil {
			return d, err
		}
		for j, f := range rec.Schema().Fields() {
			if f.Name == "ts" {
				ts, _ = rec.Column(j).(*array.Timestamp)
			}
		}
	}
	q := "SELECT row_no, " + rowSQL(ti, rec.Schema()) + " FROM " + ti.sqlName +
		" WHERE segment_id = ? AND host_id = ? AND boot_id = ?"
	args := []any{segmentID, m.HostID, m.BootID}
	if ti.tzOffset {
		q += " AND tz_offset = ?"
		args = append(args, m.TZOffset)
	}
	rows, err := db.QueryContext(ctx, q+" ORDER BY row_no", args...)
	if err != nil {
		return d, err
	}
	defer rows.Close()
	// Rows of another host, boot or offset under this segment_id do not
	// match the WHERE clause above: count them as extra.
	var others int64
	oq := "SELECT COUNT(*) FROM " + ti.sqlName + " WHERE segment_id = ? AND NOT (host_id <=> ? AND boot_id <=> ?"
	if ti.tzOffset {
		oq += " AND tz_offset <=> ?"
	}
	if err := db.QueryRowContext(ctx, oq+")", args...).Scan(&others); err != nil {
		return d, err
	}
	d.Extra += others

	var line, piece []byte
	next := int64(0) // next segment row to match
	missing := func(upto int64) {
		for ; next < upto && next < d.Rows; next++ {
			if ts != nil && int64(ts.Value(int(next))) < cutoff {
				d.Expired++
				continue
			}
			d.Missing++
			differ(next)
		}
	}
	last := int64(-1)
	for rows.Next() {
		var rowNo int64
		var got []byte
		if err := rows.Scan(&rowNo, &got); err != nil {
			return d, err
		}
		if rowNo == last || rowNo >= d.Rows || rowNo < next {
			d.Extra++
			differ(rowNo)
			continue
		}
		last = rowNo
		missing(rowNo)
		r.i, r.inRow, r.fi, r.inValue, r.voff = int(rowNo), false, 0, false, 0
		line = line[:0]
		for r.i == int(rowNo) { // a long value comes in pieces of about tsvChunk
			if piece, err = r.renderRow(piece[:0]); err != nil {
				return d, err
			}
			line = append(line, piece...)
		}
		want := line[bytes.IndexByte(line, '\t')+1 : len(line)-1] // without row_no and the newline
		if !bytes.Equal(want, got) {
			d.Changed++
			differ(rowNo)
		}
		next = rowNo + 1
	}
	if err := rows.Err(); err != nil {
		return d, err
	}
	missing(d.Rows)
	return d, nil
}

// oldestPartition returns the first instant of the oldest day partition
// of a partitioned table (ns since the epoch): rows older than that may
// have been dropped with a partition. Without day partitions nothing was
// dropped.
func oldestPartition(ctx context.Context, db *sql.DB, table string) (int64, error) {
	var name sql.NullString
	err := db.QueryRowContext(ctx, `SELECT PARTITION_NAME FROM information_schema.PARTITIONS
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND PARTITION_NAME IS NOT NULL ORDER BY PARTITION_ORDINAL_POSITION LIMIT 1`, table).Scan(&name)
	if err != nil && err != sql.ErrNoRows {
		return 0, fmt.Errorf("list partitions of %s: %w", table, err)
	}
	day, perr := time.Parse("p20060102", name.String)
	if perr != nil {
		return -1 << 63, nil
	}
	return day.UnixNano(), nil
}
