package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/pofr/pofr/internal/cli"
	"github.com/pofr/pofr/internal/durable"
	"github.com/pofr/pofr/internal/syslog5424"
	"github.com/pofr/pofr/query"
)

// exportCommand is "pofr-server export".
func exportCommand() *cli.Command {
	var (
		dsnFile, format, table, host, index string
		bulk, follow, printSQL              bool
		output, cursorFile, shardsFile      string
		rotateBytes                         int64
		interval, holeWait                  time.Duration
		r                                   rangeFlags
		esURL, syslogTo, facility           string
		esAuthFile, esCAFile                string
		batch                               query.Batching
	)
	return &cli.Command{
		Name:    "export",
		Summary: "write a table as JSON lines for Elasticsearch/Kibana",
		Usage:   "--format jsonl [--table proc|file|sock|gap|dns|exe|login|ctr] [--host H [--shards FILE]] [--since D | --from T --to T] [--bulk] [--print-sql] [--follow --cursor-file F [--output F [--rotate-bytes N] | --es-url URL [--es-auth-file F] [--es-ca-file F] | --syslog NET:ADDR]] --dsn-file F",
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

--follow does not end: it writes the rows of every loaded segment, one whole
segment at a time as the loader commits it, and waits for more (--interval).
--cursor-file (required) keeps the position across restarts: the set of
segments (ledger rows) already written, replaced atomically with fsync after
each segment's rows are flushed and fsynced. With --output FILE the rows go
to FILE, renamed to FILE.1, FILE.2, … at a segment boundary once it has
--rotate-bytes; a restart truncates FILE to the cursor's position first, so
a segment cut off by a crash or kill is written again whole, with no row
lost or repeated. On standard output a segment cut off by a kill is written
again whole after the restart (the reader saw its first part twice; with
--bulk the stable _id makes that harmless). A failing write is retried
every second; a slow one slows the export, which holds one segment's rows
at most. A ledger id missing below loaded ones (a loader transaction still
open) is waited for --hole-wait before it is taken as rolled back.
--host and --table filter; --since/--from/--to do not apply.

Given a Spider head's DSN and a shard map (--shards), export --host (without
--follow) reads the host's shard directly (its reader_dsn_file), as fast as
one server, with the same output; without a reader DSN file for the shard it
reads the head.

--print-sql prints the statement of --table (the same text that runs,
reading @host, @segment, @from and @to) instead of running it.

--es-url URL posts the rows to an Elasticsearch/OpenSearch _bulk endpoint
(implies --bulk). Credentials never go on the command line (a user:pass@
in the URL is refused): --es-auth-file F holds, on its first line, either
"ApiKey KEY" (or the bare encoded API key), "Bearer TOKEN", or
"USER:PASSWORD" for basic auth; F must not be readable by group or others
(chmod 600). https:// checks the server against the system's CAs, or only
against the PEM certificates of --es-ca-file for a private CA. A 401 or 403
answer (credentials refused) is not retried: export ends with exit 1 and the
cursor stays before the refused batch, so a restart after the fix resumes
there.

--syslog udp:HOST:PORT, tcp:HOST:PORT or unix:PATH sends each row as the
message of one RFC 5424 syslog message (MSGID the table, --syslog-facility).
--es-url and --syslog send batches of --batch-docs documents or
--batch-bytes bytes, or what has waited --batch-wait, and wait for each: a
slow sink slows the export, which holds one batch. A batch counts as delivered only after a 2xx _bulk answer with
no failed item (or, for syslog, once the socket took it; over UDP a lost
datagram goes unseen); the cursor then records how many of the segment's
rows are delivered, so a restart neither repeats nor skips one. A failing
batch is retried with backoff from 0.5s, doubling, as long as it fails.

Exit codes: 0 written, 1 error, 2 usage.`,
		Flags: func(fs *flag.FlagSet) {
			dsnFileFlag(fs, &dsnFile, "reader", "`file` holding the MariaDB DSN")
			fs.StringVar(&format, "format", "jsonl", "output format: jsonl")
			fs.StringVar(&table, "table", "proc", "table: proc, file, sock, gap, dns, exe, login or ctr")
			fs.StringVar(&host, "host", "", "only this host (id or hostname)")
			fs.BoolVar(&printSQL, "print-sql", false, "print the SQL statement of --table instead of running it")
			fs.BoolVar(&bulk, "bulk", false, "write Elasticsearch bulk action lines before the documents")
			fs.StringVar(&index, "index-prefix", "pofr-", "index name prefix of the bulk action lines (index = prefix + table)")
			fs.BoolVar(&follow, "follow", false, "keep writing rows of newly loaded segments (needs --cursor-file)")
			fs.StringVar(&cursorFile, "cursor-file", "", "`file` keeping the --follow position across restarts")
			fs.StringVar(&output, "output", "", "--follow: write to this `file` instead of standard output")
			fs.Int64Var(&rotateBytes, "rotate-bytes", 0, "--follow --output: rotate the file at a segment boundary once it has this many bytes (0: never)")
			fs.DurationVar(&interval, "interval", time.Second, "--follow: wait between polls of the ledger")
			fs.DurationVar(&holeWait, "hole-wait", 10*time.Minute, "--follow: how long a missing ledger id is waited for")
			fs.StringVar(&esURL, "es-url", "", "--follow: post to this Elasticsearch `URL` (…/_bulk)")
			fs.StringVar(&esAuthFile, "es-auth-file", "", "--es-url: `file` holding ApiKey KEY, Bearer TOKEN or USER:PASSWORD (mode 0600)")
			fs.StringVar(&esCAFile, "es-ca-file", "", "--es-url https: trust only the PEM CA certificates in this `file`")
			fs.StringVar(&syslogTo, "syslog", "", "--follow: send to syslog at `NET:ADDR` (udp:HOST:PORT, tcp:HOST:PORT, unix:PATH)")
			fs.StringVar(&facility, "syslog-facility", "local0", "--syslog: facility name")
			fs.IntVar(&batch.MaxDocs, "batch-docs", 1000, "--es-url/--syslog: documents per batch at most")
			fs.IntVar(&batch.MaxBytes, "batch-bytes", 4<<20, "--es-url/--syslog: bytes per batch at most")
			fs.DurationVar(&batch.MaxWait, "batch-wait", 5*time.Second, "--es-url/--syslog: send a batch once its first row waited this long")
			shardsFlag(fs, &shardsFile)
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
				return cli.Usagef("--table %q: want proc, file, sock, gap, dns, exe, login or ctr", table)
			}
			if printSQL {
				s, err := query.SQL("export_" + table)
				if err != nil {
					return err
				}
				_, err = fmt.Fprint(env.Stdout, s)
				return err
			}
			if follow && cursorFile == "" {
				return cli.Usagef("--follow needs --cursor-file")
			}
			if !follow && (cursorFile != "" || output != "" || rotateBytes != 0 || esURL != "" || syslogTo != "") {
				return cli.Usagef("--cursor-file, --output, --rotate-bytes, --es-url and --syslog go with --follow")
			}
			if n := btoi(output != "") + btoi(esURL != "") + btoi(syslogTo != ""); n > 1 {
				return cli.Usagef("--output, --es-url and --syslog: one sink at a time")
			}
			if batch.MaxDocs <= 0 || batch.MaxBytes <= 0 || batch.MaxWait <= 0 {
				return cli.Usagef("--batch-docs, --batch-bytes and --batch-wait must be positive")
			}
			if esURL == "" && (esAuthFile != "" || esCAFile != "") {
				return cli.Usagef("--es-auth-file and --es-ca-file go with --es-url")
			}
			var sink followSink
			if esURL != "" {
				open, err := esSink(ctx, esURL, esAuthFile, esCAFile, batch)
				if err != nil {
					return err
				}
				bulk, sink = true, open
			}
			if syslogTo != "" {
				network, addr, ok := strings.Cut(syslogTo, ":")
				if !ok || addr == "" || (network != "udp" && network != "tcp" && network != "unix") {
					return cli.Usagef("--syslog %q: want udp:HOST:PORT, tcp:HOST:PORT or unix:PATH", syslogTo)
				}
				if _, ok := syslog5424.Facilities[facility]; !ok {
					return cli.Usagef("--syslog-facility %q: unknown", facility)
				}
				bulk = false
				sink = func(log func(string, error)) (query.FollowSink, func() error, error) {
					s, err := query.NewSyslogSink(ctx, network, addr, facility, table, batch, log)
					if err != nil {
						return nil, nil, err
					}
					return s, s.Close, nil
				}
			}
			if rotateBytes < 0 || interval <= 0 || holeWait <= 0 {
				return cli.Usagef("--rotate-bytes must not be negative, --interval and --hole-wait must be positive")
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
			if follow {
				return runFollow(ctx, env, q, query.FollowArgs{
					Export:     query.ExportArgs{Table: table, Host: host, Bulk: bulk, IndexPrefix: index},
					CursorFile: cursorFile, Interval: interval, HoleWait: holeWait,
				}, output, rotateBytes, sink)
			}
			sq, closeS, err := routeToShard(ctx, env.Log, q, host, shardsFile)
			if err != nil {
				return err
			}
			if sq != nil {
				defer closeS()
				q = sq
			}
			n, err := q.Export(ctx, env.Stdout, query.ExportArgs{Table: table, Host: host, Range: rg, Bulk: bulk, IndexPrefix: index})
			if err != nil {
				return err
			}
			env.Log.Debug("export done", "table", table, "documents", n)
			return nil
		},
	}
}

// esSink checks --es-url, reads the credentials and CA files and returns
// the opener of the _bulk sink. A URL with user info is a usage error: it
// would show in ps, shell history and the logs.
func esSink(ctx context.Context, esURL, authFile, caFile string, batch query.Batching) (followSink, error) {
	u, err := url.Parse(esURL)
	if err == nil && u.User != nil {
		return nil, cli.Usagef("--es-url: credentials in the URL would show in ps and the logs; put them in a file (chmod 600) given with --es-auth-file")
	}
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, cli.Usagef("--es-url %q: want http(s)://host:port", esURL)
	}
	if caFile != "" && u.Scheme != "https" {
		return nil, cli.Usagef("--es-ca-file needs an https:// --es-url")
	}
	var auth string
	if authFile != "" {
		b, err := durable.ReadPrivate(authFile, 64<<10)
		if err != nil {
			return nil, fmt.Errorf("--es-auth-file %s: %w", authFile, err)
		}
		if auth, err = query.ESAuthorization(b); err != nil {
			return nil, fmt.Errorf("--es-auth-file %s: %w", authFile, err)
		}
	}
	var tr *http.Transport
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--es-ca-file: %w", err)
		}
		if tr, err = query.ESTransport(pem); err != nil {
			return nil, fmt.Errorf("--es-ca-file %s: %w", caFile, err)
		}
	}
	return func(log func(string, error)) (query.FollowSink, func() error, error) {
		s := query.NewESSink(ctx, esURL, batch, log)
		if auth != "" {
			s.Header.Set("Authorization", auth)
		}
		if tr != nil {
			s.Client.Transport = tr
		}
		return s, func() error { return nil }, nil
	}, nil
}

// followSink opens a delivery sink for runFollow.
type followSink func(log func(string, error)) (query.FollowSink, func() error, error)

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// runFollow is export --follow: it runs until ctx ends (SIGINT, SIGTERM),
// which is a clean stop.
func runFollow(ctx context.Context, env *cli.Env, q *query.Querier, a query.FollowArgs, output string, rotateBytes int64, open followSink) error {
	a.Log = func(msg string, err error) { env.Log.Warn(msg+", retrying", "err", err) }
	var sink query.FollowSink
	if open != nil {
		s, closeSink, err := open(a.Log)
		if err != nil {
			return err
		}
		defer closeSink()
		sink = s
	} else if output == "" {
		sink = query.NewStreamSink(env.Stdout)
	} else {
		fsink, err := query.OpenFileSink(output, rotateBytes)
		if err != nil {
			return err
		}
		defer fsink.Close()
		sink = fsink
	}
	err := q.Follow(ctx, sink, a)
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil
	}
	if errors.Is(err, query.ErrCredentials) {
		return fmt.Errorf("%w (fix --es-auth-file or the account's privileges and start again: the cursor stays before this batch)", err)
	}
	return err
}
