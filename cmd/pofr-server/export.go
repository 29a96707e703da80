package main

import (
	"context"
	"flag"
	"slices"

	"github.com/pofr/pofr/internal/cli"
	"github.com/pofr/pofr/query"
)

// exportCommand is "pofr-server export".
func exportCommand() *cli.Command {
	var (
		dsnFile, format, table, host, index string
		bulk                                bool
		r                                   rangeFlags
	)
	return &cli.Command{
		Name:    "export",
		Summary: "write a table as JSON lines for Elasticsearch/Kibana",
		Usage:   "--format jsonl [--table proc|file|sock|gap|dns|exe|login] [--host H] [--since D | --from T --to T] [--bulk] --dsn-file F",
		Help: `Writes every row of one table (default proc) to standard output, one JSON
document per line, in time order, streaming. Each document has @timestamp
(the row's time with nanoseconds, RFC 3339 UTC), table, the row's columns
under their SQL names, and segment_seq; addresses are text, argv an array,
byte columns strings or {"b64": "…"} when not UTF-8. docs/queries.md has the
field mapping for an index template. Values are exact, also those a host
chose to look like spreadsheet formulas ("=cmd|…"): JSON is not opened by
spreadsheets, and a CSV made from it must neutralise them (Kibana's CSV
reports do, with csv:escapeFormulaValues, on by default; query --csv does).

--bulk puts an Elasticsearch bulk action line before every document
({"index": {"_index": "<prefix><table>", "_id": "host:seq:table:row"}}), so
the output can be sent as it is:
  curl -H 'Content-Type: application/x-ndjson' --data-binary @proc.jsonl localhost:9200/_bulk
The _id is stable, so exporting the same rows again replaces, not duplicates.

Exit codes: 0 written, 1 error, 2 usage.`,
		Flags: func(fs *flag.FlagSet) {
			dsnFileFlag(fs, &dsnFile, "reader", "`file` holding the MariaDB DSN")
			fs.StringVar(&format, "format", "jsonl", "output format: jsonl")
			fs.StringVar(&table, "table", "proc", "table: proc, file, sock, gap, dns, exe or login")
			fs.StringVar(&host, "host", "", "only this host (id or hostname)")
			fs.BoolVar(&bulk, "bulk", false, "write Elasticsearch bulk action lines before the documents")
			fs.StringVar(&index, "index-prefix", "pofr-", "index name prefix of the bulk action lines (index = prefix + table)")
			r.register(fs)
		},
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			if format != "jsonl" {
				return cli.Usagef("--format %q: only jsonl", format)
			}
			if !slices.Contains(query.ExportTables, table) {
				return cli.Usagef("--table %q: want proc, file, sock, gap, dns, exe or login", table)
			}
			rg, err := r.get()
			if err != nil {
				return cli.Usagef("%v", err)
			}
			f := queryFlags{dsnFile: dsnFile}
			q, closeQ, err := f.open(env)
			if err != nil {
				return err
			}
			defer closeQ()
			n, err := q.Export(ctx, env.Stdout, query.ExportArgs{Table: table, Host: host, Range: rg, Bulk: bulk, IndexPrefix: index})
			if err != nil {
				return err
			}
			env.Log.Debug("export done", "table", table, "documents", n)
			return nil
		},
	}
}
