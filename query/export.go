package query

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"
)

// ExportTables are the tables export can write, by their event table name.
var ExportTables = []string{"proc", "file", "sock", "gap", "dns", "exe", "login", "ctr"}

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
	if !slices.Contains(ExportTables, a.Table) {
		return 0, fmt.Errorf("export: unknown table %q (want proc, file, sock, gap, dns, exe, login or ctr)", a.Table)
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
	text, err := SQL("export_" + a.Table)
	if err != nil {
		return 0, err
	}
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
