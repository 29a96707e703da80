package query

import (
	"bufio"
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// ExportTables are the tables export can write, by their event table name.
var ExportTables = []string{"proc", "file", "sock", "gap", "dns", "exe", "login", "ctr"}

// exportFrom is what the export statement of one table differs in: the
// SQL table, the columns (after segment_seq), joins after the segments
// join, the time column the range applies to, and the order before
// segment_id, row_no.
var exportFrom = map[string]struct{ table, cols, join, ts, order string }{
	"proc": {table: "proc_events",
		// The executed file's hash, by the identity the exec row names.
		cols: "e.*, LOWER(HEX(x.sha256)) AS exe_sha256",
		join: "\nLEFT JOIN exe_ids x ON x.host_id = e.host_id AND x.exe_key = e.exe_key"},
	"file": {table: "file_events"},
	"sock": {table: "sock_events",
		cols: "e.*, a.country AS remote_country, a.city AS remote_city, a.asn AS remote_asn,\n" +
			"  a.as_org AS remote_as_org, a.ptr AS remote_ptr, a.edition AS remote_geo_edition",
		join: "\nLEFT JOIN addr_info a ON a.addr = e.remote_addr"},
	"gap": {table: "gaps", ts: "from_ts"},
	"dns": {table: "dns_events"},
	"exe": {table: "executables",
		// The hash as 64 lower-case hex digits.
		cols: "e.segment_id, e.row_no, e.host_id, e.boot_id, e.ts, e.last_ts, e.count, e.pid,\n" +
			"  e.dev, e.inode, e.size, e.mtime_ns, e.ctime_ns, LOWER(HEX(e.sha256)) AS sha256, e.how, e.skip, e.path"},
	"login": {table: "login_events", order: "e.ts, e.ts_ns"},
	"ctr":   {table: "containers"},
}

// exportSQL is the statement Export runs for table: every row of it with
// the sequence number of the segment it came from (a stable document id:
// host_id:seq:table:row_no). Its parameters (NULL means no filter): @host
// (host_id), @segment (segment_id: only the rows of this segment, for
// --follow), @from and @to (DATETIME(6) UTC: the row's time at or after
// @from, before @to). Like the question files, it runs as it is in the
// mariadb client after a SET of the parameters (export --print-sql).
func exportSQL(table string) (string, error) {
	f, ok := exportFrom[table]
	if !ok {
		return "", fmt.Errorf("export: unknown table %q (want proc, file, sock, gap, dns, exe, login or ctr)", table)
	}
	cols, ts, order := cmp.Or(f.cols, "e.*"), cmp.Or(f.ts, "ts"), f.order
	if order == "" {
		order = "e." + ts
	}
	return fmt.Sprintf(`-- export_%[1]s: every row of %[2]s for pofr-server export (query.exportSQL).
SELECT sg.seq AS segment_seq, %[3]s
FROM %[2]s e
JOIN segments sg ON sg.segment_id = e.segment_id%[4]s
WHERE (@host IS NULL OR e.host_id = @host)
  AND (@segment IS NULL OR e.segment_id = @segment)
  AND (@from IS NULL OR e.%[5]s >= @from) AND (@to IS NULL OR e.%[5]s < @to)
ORDER BY %[6]s, e.segment_id, e.row_no
`, table, f.table, cols, f.join, ts, order), nil
}

// ExportArgs select what Export writes.
type ExportArgs struct {
	// Table is proc, file, sock, gap, dns, exe, login or ctr.
	Table string
	Host  string
	Range Range
	// Segment, when not 0, exports only the rows of this ledger row
	// (segments.segment_id), for Follow.
	Segment uint64
	// Bulk writes an Elasticsearch bulk action line ({"index": …}) before
	// every document, so the output can be POSTed to _bulk as it is.
	Bulk bool
	// IndexPrefix names the index of the bulk action lines:
	// <prefix><table> (default "pofr-").
	IndexPrefix string
}

// Export writes every row of one table as JSON lines, one document per row,
// for Elasticsearch, OpenSearch or Kibana (docs/queries.md has the mapping).
// It streams: memory does not grow with the number of rows. It returns the
// number of documents written.
//
// Each document has "@timestamp" (the row's time with nanoseconds, RFC 3339
// UTC), "table", the row's columns under their SQL names (times RFC 3339 UTC,
// addresses as text, argv as an array of arguments, byte columns as strings
// or {"b64": …} when not UTF-8), and "segment_seq". segment_id (a number
// local to one database) and ts_ns (folded into the times) are left out.
// The bulk _id, host_id:segment_seq:table:row_no, is stable across exports.
func (q *Querier) Export(ctx context.Context, w io.Writer, a ExportArgs) (int64, error) {
	text, err := exportSQL(a.Table)
	if err != nil {
		return 0, err
	}
	h, err := q.optHost(ctx, a.Host)
	if err != nil {
		return 0, err
	}
	prefix := a.IndexPrefix
	if prefix == "" {
		prefix = "pofr-"
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	out := Output{Format: FormatJSON}
	var n int64
	var seg any
	if a.Segment != 0 {
		seg = int64(a.Segment)
	}
	params := append([]Param{{"host", h}, {"segment", seg}}, rangeParams(a.Range)...)
	err = q.stream(ctx, "export_"+a.Table, text, params, func(rows *sql.Rows) error {
		var iTS, iNS, iHost, iSeq, iRow = -1, -1, -1, -1, -1
		_, err := scanRows(rows, func(cols []Column, row []any) error {
			if iTS < 0 {
				for i, c := range cols {
					switch c.Name {
					case "ts", "from_ts":
						if iTS < 0 {
							iTS = i
						}
					case "ts_ns":
						iNS = i
					case "host_id":
						iHost = i
					case "segment_seq":
						iSeq = i
					case "row_no":
						iRow = i
					}
				}
			}
			doc := make(orderedObject, 0, len(cols)+2)
			if iTS >= 0 {
				if c, ok := row[iTS].(Cell); ok {
					t := c.T
					if iNS >= 0 {
						if ns, ok := row[iNS].(int64); ok {
							t = t.Add(time.Duration(ns))
						}
					}
					doc = append(doc, field{"@timestamp", t.UTC().Format(time.RFC3339Nano)})
				}
			}
			doc = append(doc, field{"table", a.Table})
			for i, c := range cols {
				switch c.Name {
				case "segment_id", "ts_ns":
					continue
				}
				v := out.jsonValue(c.Kind, row[i])
				if i == iTS && len(doc) > 0 && doc[0].k == "@timestamp" {
					v = doc[0].v
				}
				doc = append(doc, field{c.Name, v})
			}
			if a.Bulk {
				id := fmt.Sprintf("%s:%s:%s:%s", out.text(Text, row[iHost]), out.text(Int, row[iSeq]), a.Table, out.text(Int, row[iRow]))
				action := map[string]map[string]string{"index": {"_index": prefix + a.Table, "_id": id}}
				if err := enc.Encode(action); err != nil {
					return err
				}
			}
			if err := enc.Encode(doc); err != nil {
				return err
			}
			n++
			return nil
		})
		return err
	})
	if err != nil {
		return n, fmt.Errorf("export %s: %w", a.Table, err)
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("export %s: %w", a.Table, err)
	}
	return n, nil
}
