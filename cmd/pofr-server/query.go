package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pofr/pofr/internal/cli"
	"github.com/pofr/pofr/query"
)

// queryFlags are the flags every query subcommand has.
type queryFlags struct {
	dsnFile     string
	csv, json   bool
	local       bool
	resolve     bool
	geoip       string
	rdnsTimeout time.Duration
	printSQL    bool
}

const queryCommonHelp = `Output is an aligned table, or CSV (--csv) or JSON lines (--json). Times are
UTC, or with --local in each host's own UTC offset. In the table and CSV,
bytes a host sent (argv, paths, names) are escaped: control characters and
bytes that are not UTF-8 as \xNN, bidi and other invisible characters as
\uNNNN, a backslash as \\; argv is printed as shell words, $'…' where an
argument needs escapes. In CSV a text cell starting with = + - @ gets a
leading ' so that a spreadsheet does not run it as a formula. JSON is exact: strings, or {"b64": "…"} for bytes
that are not UTF-8; argv is an array of arguments.

Time arguments: RFC 3339 (2024-06-20T01:30:00Z, …+02:00) or
'YYYY-MM-DD HH:MM[:SS]' in UTC; --since takes 90m, 2h, 3d, 1w. Ranges are
half-open: --from is included, --to is not.

Given a Spider head's DSN and a shard map (--shards), a question about one
--host runs on that host's shard directly (the map's reader DSN file of the
shard the head lists the host under), as fast as on one server; 'peers' and
'hosts' always read the head.

--print-sql prints the query's SQL file (the same text that runs, reading the
parameters from @variables) instead of running it.

Exit codes: 0 answered (also with no rows), 1 error (database, unknown host,
no such process), 2 usage.`

func (f *queryFlags) register(fs *flag.FlagSet, enrich bool) {
	dsnFileFlag(fs, &f.dsnFile, "reader", "`file` holding the MariaDB DSN (user:pass@unix(/run/mysqld/mysqld.sock)/pofr)")
	fs.BoolVar(&f.csv, "csv", false, "print CSV")
	fs.BoolVar(&f.json, "json", false, "print JSON lines")
	fs.BoolVar(&f.local, "local", false, "print times in each host's own UTC offset instead of UTC")
	fs.BoolVar(&f.printSQL, "print-sql", false, "print the SQL of the query instead of running it")
	if enrich {
		fs.BoolVar(&f.resolve, "resolve", false, "add reverse DNS names of remote addresses (at query time, cached, short timeout)")
		fs.DurationVar(&f.rdnsTimeout, "rdns-timeout", 500*time.Millisecond, "timeout of one reverse DNS lookup")
		fs.StringVar(&f.geoip, "geoip", "", "MaxMind DB (.mmdb) or IP2Location (.BIN) `file` for country and city columns; without it they are not shown")
	}
}

func (f *queryFlags) output() (query.Output, error) {
	if f.csv && f.json {
		return query.Output{}, cli.Usagef("--csv and --json are exclusive")
	}
	o := query.Output{Local: f.local}
	switch {
	case f.csv:
		o.Format = query.FormatCSV
	case f.json:
		o.Format = query.FormatJSON
	}
	return o, nil
}

// open connects and builds the Querier; the returned func releases it.
func (f *queryFlags) open(env *cli.Env) (*query.Querier, func(), error) {
	dsn, err := readDSNFile(f.dsnFile)
	if err != nil {
		return nil, nil, err
	}
	db, err := query.OpenDB(dsn)
	if err != nil {
		return nil, nil, err
	}
	q := &query.Querier{DB: db, Log: env.Log}
	closers := []func(){func() { db.Close() }}
	if f.resolve || f.geoip != "" {
		q.Enrich = &query.Enricher{Resolve: f.resolve, Timeout: f.rdnsTimeout}
		if f.geoip != "" {
			g, err := query.OpenGeoDB(f.geoip)
			if err != nil {
				db.Close()
				return nil, nil, err
			}
			q.Enrich.Geo = g
			closers = append(closers, func() { g.Close() })
		}
	}
	return q, func() {
		for _, c := range closers {
			c()
		}
	}, nil
}

// queryCmd is one "query NAME" command: the flags every query has plus its
// own, and run, which gets the Querier and returns the table to print.
type queryCmd struct {
	name, usage, summary, help string
	sqlName                    string // the query's SQL file, for --print-sql
	enrich                     bool   // --resolve, --rdns-timeout and --geoip
	// args: the query takes arguments and checks them in run; the others
	// refuse any.
	args bool
	// ranged: the query has --since, --from and --to; run gets the range.
	ranged bool
	// perHost: with --host the question reads that host's rows only, so
	// through a Spider head it runs on the host's shard (routeToShard).
	perHost bool
	flags   func(fs *flag.FlagSet)
	run     func(ctx context.Context, q *query.Querier, args []string, r query.Range) (*query.Table, error)
}

// command builds the cli.Command of qc.
func (qc queryCmd) command() *cli.Command {
	var f queryFlags
	var rng rangeFlags
	var fset *flag.FlagSet
	var shardsFile string
	return &cli.Command{
		Name:    "query " + qc.name,
		Summary: qc.summary,
		Usage:   qc.usage,
		Help:    strings.TrimSpace(qc.help) + "\n\n" + queryCommonHelp,
		Flags: func(fs *flag.FlagSet) {
			fset = fs
			f.register(fs, qc.enrich)
			if qc.perHost {
				shardsFlag(fs, &shardsFile)
			}
			if qc.flags != nil {
				qc.flags(fs)
			}
			if qc.ranged {
				rng.register(fs)
			}
		},
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			if f.printSQL {
				s, err := query.SQL(qc.sqlName)
				if err != nil {
					return err
				}
				_, err = fmt.Fprint(env.Stdout, s)
				return err
			}
			out, err := f.output()
			if err != nil {
				return err
			}
			q, closeQ, err := f.open(env)
			if err != nil {
				return err
			}
			defer closeQ()
			if qc.perHost {
				sq, closeS, err := routeToShard(ctx, env.Log, q, fset.Lookup("host").Value.String(), shardsFile)
				if err != nil {
					return err
				}
				if sq != nil {
					defer closeS()
					q = sq
				}
			}
			if !qc.args {
				err = noArgs(args)
			}
			var r query.Range
			if err == nil && qc.ranged {
				r, err = rng.get()
			}
			var t *query.Table
			if err == nil {
				t, err = qc.run(ctx, q, args, r)
			}
			if errors.Is(err, query.ErrBadTime) {
				return cli.Usagef("%v", err)
			}
			if err != nil {
				return err
			}
			return out.Write(env.Stdout, t)
		},
	}
}

// rangeFlags are --since, --from and --to.
type rangeFlags struct{ since, from, to string }

func (r *rangeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&r.since, "since", "", "only the last `duration` (90m, 2h, 3d, 1w)")
	fs.StringVar(&r.from, "from", "", "from this `time` on (included)")
	fs.StringVar(&r.to, "to", "", "up to this `time` (excluded)")
}

func (r *rangeFlags) get() (query.Range, error) {
	return query.ParseRange(r.since, r.from, r.to, time.Now())
}

func noArgs(args []string) error {
	if len(args) != 0 {
		return cli.Usagef("unexpected arguments %q", args)
	}
	return nil
}

// queryCommands are the "pofr-server query …" commands.
func queryCommands() []*cli.Command {
	var cmds []*cli.Command
	for _, qc := range []queryCmd{hostsQuery(), treeQuery(), timelineQuery(), procQuery(), ranQuery(), binariesQuery(), loginsQuery(), touchedQuery(), connsQuery(), peersQuery(), gapsQuery()} {
		cmds = append(cmds, qc.command())
	}
	return cmds
}

// hostsQuery is "pofr-server query hosts".
func hostsQuery() queryCmd {
	return queryCmd{
		name: "hosts", usage: "--dsn-file F [--csv|--json]",
		summary: "registered hosts, their last data, chain status and gaps",
		help: `
One row per registered host: hostname, status, reported IPs, last upload
address, end of its newest data (last_seen), segments loaded, the newest
sequence number, when it was loaded, the hash chain (ok, broken, waiting for
a predecessor, none), sequence numbers missing from the ledger, gap rows and
quarantined files.

Example: pofr-server query hosts     (reads /etc/pofr-server/reader.dsn)`,
		sqlName: "hosts",
		run: func(ctx context.Context, q *query.Querier, _ []string, _ query.Range) (*query.Table, error) {
			return q.Hosts(ctx)
		},
	}
}

// treeQuery is "pofr-server query tree".
func treeQuery() queryCmd {
	var host, atFlag string
	return queryCmd{
		name: "tree", perHost: true, usage: "--host H [--at TIME] --dsn-file F",
		summary: "the process tree of a host alive at a moment",
		help: `
The processes of host H (host id or hostname) alive at --at (default: now),
each child indented under its parent, with its user, login user and argv.

Example: pofr-server query tree --host web1 --at '2024-06-20 01:30:05' --dsn-file F`,
		sqlName: "tree",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&host, "host", "", "host id or hostname (required)")
			fs.StringVar(&atFlag, "at", "", "the `time` (default now)")
		},
		run: func(ctx context.Context, q *query.Querier, _ []string, _ query.Range) (*query.Table, error) {
			if host == "" {
				return nil, cli.Usagef("--host is required")
			}
			at := time.Now().UTC()
			if atFlag != "" {
				t, err := query.ParseTime(atFlag)
				if err != nil {
					return nil, err
				}
				at = t
			}
			return q.Tree(ctx, host, at)
		},
	}
}

// timelineQuery is "pofr-server query timeline".
func timelineQuery() queryCmd {
	var tlHost string
	var tlPID int
	return queryCmd{
		name: "timeline", perHost: true, usage: "--host H (--since D | --from T [--to T]) --dsn-file F",
		summary: "process, file and socket rows of a host in time order",
		help: `
Every process event, file access and socket observation of host H in the
range, interleaved in time order, with the process's user and executable.
--pid keeps one pid's rows.

Example: pofr-server query timeline --host web1 --since 2h --dsn-file F`,
		sqlName: "timeline", ranged: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&tlHost, "host", "", "host id or hostname (required)")
			fs.IntVar(&tlPID, "pid", 0, "only this pid's rows")
		},
		run: func(ctx context.Context, q *query.Querier, _ []string, r query.Range) (*query.Table, error) {
			if tlHost == "" {
				return nil, cli.Usagef("--host is required")
			}
			if r.From.IsZero() {
				return nil, cli.Usagef("give --since or --from")
			}
			return q.Timeline(ctx, tlHost, r, tlPID)
		},
	}
}

// procQuery is "pofr-server query proc".
func procQuery() queryCmd {
	var procHost string
	return queryCmd{
		name: "proc", perHost: true, usage: "--host H PID[@START] --dsn-file F",
		summary: "one process life: parent chain, events, children, files, connections",
		help: `
One process life on host H: its ancestors (oldest first), its own events
(fork, exec, exit, …), its children, the files it touched and its sockets,
in time order. START is the proc_start column (tree and timeline --json show
it); without it the newest life of PID is shown, and the others are named in
a log line.

Example: pofr-server query proc --host web1 4242 --dsn-file F`,
		sqlName: "proc", args: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&procHost, "host", "", "host id or hostname (required)")
		},
		run: func(ctx context.Context, q *query.Querier, args []string, _ query.Range) (*query.Table, error) {
			if procHost == "" || len(args) != 1 {
				return nil, cli.Usagef("want --host H and one PID[@START]")
			}
			pid, start, err := query.ParsePID(args[0])
			if err != nil {
				return nil, cli.Usagef("%v", err)
			}
			return q.Proc(ctx, procHost, pid, start)
		},
	}
}

// ranQuery is "pofr-server query ran".
func ranQuery() queryCmd {
	var ran query.RanArgs
	return queryCmd{
		name: "ran", perHost: true, usage: "(--user U | --exe PATH | --argv-like PATTERN | --sha256 H) [--host H] [range] --dsn-file F",
		summary: "what a user ran, where a program ran (fleet-wide)",
		help: `
Every exec (and snapshot of an already running process) on every host, or
on --host, that matches all the filters given: --user (a name, looked up in
each host's own accounts, or a uid; it matches the real, effective or login
uid, so 'sudo nmap' by toma is found with --user toma), --exe (a path, or a
base name without a slash), --argv-like (a SQL LIKE pattern on the command
line, arguments joined by spaces: % any text, _ one character), --sha256
(the SHA-256 of the executed file, 64 hex digits: where did this binary
run?), --container (a container name or Kubernetes pod name as the
container runtime named it: execs in that container).

Example: did toma run nmap -P0 192.168.18.34?
  pofr-server query ran --user toma --argv-like 'nmap -P0 192.168.18.34%' --dsn-file F`,
		sqlName: "ran", ranged: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&ran.Host, "host", "", "only this host (id or hostname)")
			fs.StringVar(&ran.User, "user", "", "user name or uid")
			fs.StringVar(&ran.Exe, "exe", "", "executable path, or base name")
			fs.StringVar(&ran.ArgvLike, "argv-like", "", "SQL LIKE `pattern` on the command line")
			fs.StringVar(&ran.SHA256, "sha256", "", "SHA-256 of the executed file (64 hex digits)")
			fs.StringVar(&ran.Container, "container", "", "container `name` or Kubernetes pod name the exec ran in")
		},
		run: func(ctx context.Context, q *query.Querier, _ []string, r query.Range) (*query.Table, error) {
			if ran.User == "" && ran.Exe == "" && ran.ArgvLike == "" && ran.SHA256 == "" && ran.Container == "" {
				return nil, cli.Usagef("give --user, --exe, --argv-like, --sha256 or --container")
			}
			a := ran
			a.Range = r
			return q.Ran(ctx, a)
		},
	}
}

// loginsQuery is "pofr-server query logins".
func loginsQuery() queryCmd {
	var a query.LoginsArgs
	return queryCmd{
		name: "logins", perHost: true, usage: "[--failed] [--user U] [--from-ip CIDR] [--host H] [range] --dsn-file F",
		summary: "logins, logouts and failed logins (wtmp, btmp), with the login's session",
		help: `
Every login, logout and failed login the hosts' wtmp and btmp recorded, on
every host or on --host: time, kind (login, logout, failed, boot,
runlevel), user, tty, remote host and address, the login process, and for
a login its audit session and how many programs ran in it. --failed keeps
failed logins (btmp); --user a user name as recorded; --from-ip an address
or CIDR block of the remote end.

Example: failed SSH logins from 198.51.100.0/24 this week
  pofr-server query logins --failed --from-ip 198.51.100.0/24 --since 1w --dsn-file F`,
		sqlName: "logins", ranged: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&a.Host, "host", "", "only this host (id or hostname)")
			fs.BoolVar(&a.Failed, "failed", false, "failed logins (btmp) only")
			fs.StringVar(&a.User, "user", "", "user name as recorded")
			fs.StringVar(&a.FromIP, "from-ip", "", "address or CIDR block of the remote end")
		},
		run: func(ctx context.Context, q *query.Querier, _ []string, r query.Range) (*query.Table, error) {
			b := a
			b.Range = r
			return q.Logins(ctx, b)
		},
	}
}

// binariesQuery is "pofr-server query binaries".
func binariesQuery() queryCmd {
	var a query.BinariesArgs
	return queryCmd{
		name: "binaries", perHost: true, usage: "[--host H] [--sha256 H] [range] --dsn-file F",
		summary: "every distinct executable a host ran, first seen first, with its SHA-256",
		help: `
Every executed file, by identity (device, inode, size, mtime, ctime), on
every host or on --host: when it was first and last executed, how often,
its SHA-256 (empty with a skip reason when it was too large, changed while
read or unreadable), size and path at the first exec. --sha256 keeps one
hash: on which hosts did this binary run, and since when?

Example: what new binaries ran on web1 today?
  pofr-server query binaries --host web1 --since 1d --dsn-file F`,
		sqlName: "binaries", ranged: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&a.Host, "host", "", "only this host (id or hostname)")
			fs.StringVar(&a.SHA256, "sha256", "", "only this SHA-256 (64 hex digits)")
		},
		run: func(ctx context.Context, q *query.Querier, _ []string, r query.Range) (*query.Table, error) {
			b := a
			b.Range = r
			return q.Binaries(ctx, b)
		},
	}
}

// touchedQuery is "pofr-server query touched".
func touchedQuery() queryCmd {
	var tch query.TouchedArgs
	return queryCmd{
		name: "touched", perHost: true, usage: "PATH|DIR/ [--host H] [--op OP] [--exe PATH] [range] --dsn-file F",
		summary: "which processes accessed a path, under which accounts",
		help: `
Every access to PATH (also as the new name of a rename), or, when the
argument ends in /, to anything under that directory: time, operation
(open, exec, write, create, delete, rename, moved_from, moved_to, fd), the
process, its user and executable.

Example: all files under /usr accessed by httpd:
  pofr-server query touched /usr/ --exe httpd --dsn-file F`,
		sqlName: "touched", args: true, ranged: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&tch.Host, "host", "", "only this host (id or hostname)")
			fs.StringVar(&tch.Op, "op", "", "only this operation")
			fs.StringVar(&tch.Exe, "exe", "", "only processes running this executable (path, or base name)")
		},
		run: func(ctx context.Context, q *query.Querier, args []string, r query.Range) (*query.Table, error) {
			if len(args) != 1 || args[0] == "" {
				return nil, cli.Usagef("want one PATH or DIR/")
			}
			a := tch
			a.Path, a.Range = args[0], r
			return q.Touched(ctx, a)
		},
	}
}

// connsQuery is "pofr-server query conns".
func connsQuery() queryCmd {
	var cn query.ConnsArgs
	var cnPorts string
	var cnListening, cnAll bool
	return queryCmd{
		name: "conns", perHost: true, usage: "[--remote ADDR|CIDR] [--port N[,N…]] [--country CC] [--listening] [filters] --dsn-file F",
		summary: "network endpoints with their owning process",
		help: `
One row per socket (its open and close rows merged): first and last seen,
protocol, direction (out, in, listen), local and remote endpoints, state,
owning process, user and executable, bytes. Connected sockets by default;
--listening shows the listeners instead, --all both. --port matches the
local or the remote port. --hours H1-H2 keeps sockets seen between H1:00
and H2:00 in the host's own local time (22-4 wraps midnight).

Enrichment (at query time, never stored): --resolve adds reverse DNS names
(rdns); --geoip FILE adds country and city from a MaxMind DB file you supply
(GeoLite2-City.mmdb or GeoLite2-Country.mmdb) or an IP2Location .BIN file.
Without --geoip there are no country or city columns, and --country is
refused.

Examples:
  endpoints of nathanp's google-chrome:
    pofr-server query conns --user nathanp --exe google-chrome --resolve --dsn-file F
  scans of ports 137 and 22 from Vietnam in the last day, 01:00-04:00 host time:
    pofr-server query conns --port 137,22 --country VN --geoip GeoLite2-City.mmdb --since 24h --hours 1-4 --dsn-file F`,
		sqlName: "conns", enrich: true, ranged: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&cn.Host, "host", "", "only this host (id or hostname)")
			fs.StringVar(&cn.Remote, "remote", "", "remote `address` or CIDR block")
			fs.StringVar(&cnPorts, "port", "", "comma-separated `ports` (local or remote)")
			fs.StringVar(&cn.Country, "country", "", "ISO 3166 `code` of the remote address's country (needs --geoip)")
			fs.BoolVar(&cnListening, "listening", false, "listeners only")
			fs.BoolVar(&cnAll, "all", false, "connected sockets and listeners")
			fs.StringVar(&cn.Hours, "hours", "", "time-of-day window `H1-H2` in the host's local time")
			fs.StringVar(&cn.User, "user", "", "owner's user name or uid")
			fs.StringVar(&cn.Exe, "exe", "", "owner's executable (path, or base name)")
			fs.StringVar(&cn.Container, "container", "", "owner's container `name` or Kubernetes pod name")
		},
		run: func(ctx context.Context, q *query.Querier, _ []string, r query.Range) (*query.Table, error) {
			a := cn
			a.Range = r
			for p := range strings.SplitSeq(cnPorts, ",") {
				if p = strings.TrimSpace(p); p == "" {
					continue
				}
				n, err := strconv.ParseUint(p, 10, 16)
				if err != nil {
					return nil, cli.Usagef("--port %q: want port numbers", cnPorts)
				}
				a.Ports = append(a.Ports, int(n))
			}
			switch {
			case cnListening && cnAll:
				return nil, cli.Usagef("--listening and --all are exclusive")
			case cnListening:
				a.Listening = query.ListeningOnly
			case cnAll:
				a.Listening = query.ListeningAll
			}
			if a.Country != "" && (q.Enrich == nil || q.Enrich.Geo == nil) {
				return nil, cli.Usagef("--country needs --geoip FILE (a MaxMind DB)")
			}
			if a.Hours != "" {
				if _, _, err := query.ParseHours(a.Hours); err != nil {
					return nil, err
				}
			}
			return q.Conns(ctx, a)
		},
	}
}

// peersQuery is "pofr-server query peers".
func peersQuery() queryCmd {
	var pr query.PeersArgs
	return queryCmd{
		name: "peers", usage: "[--host H] [range] [--slack 5s] --dsn-file F",
		summary: "connections between monitored hosts, with the process on both ends",
		help: `
Connections whose two ends were both recorded: a client socket on host A
whose remote address:port is the local address:port of a server socket on
host B, whose remote port is A's local port, at overlapping times (within
--slack of clock skew). Each row names the client process and user on A and
the server process and user on B. Loopback never crosses hosts and is left
out.

Example: pofr-server query peers --since 1d --dsn-file F`,
		sqlName: "peers", ranged: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&pr.Host, "host", "", "only connections with this host on either end")
			fs.DurationVar(&pr.Slack, "slack", 5*time.Second, "clock skew allowed between hosts")
		},
		run: func(ctx context.Context, q *query.Querier, _ []string, r query.Range) (*query.Table, error) {
			a := pr
			a.Range = r
			return q.Peers(ctx, a)
		},
	}
}

// gapsQuery is "pofr-server query gaps".
func gapsQuery() queryCmd {
	var gHost string
	return queryCmd{
		name: "gaps", perHost: true, usage: "--host H [range] --dsn-file F",
		summary: "every interval where a host's record is incomplete, and why",
		help: `
Gap rows the collector recorded (kernel buffer overflows, the collector not
running, spool evictions), sequence numbers missing from the ledger
(source ledger) and hash-chain breaks (source chain).

Example: pofr-server query gaps --host web1 --since 7d --dsn-file F`,
		sqlName: "gaps", ranged: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&gHost, "host", "", "host id or hostname (required)")
		},
		run: func(ctx context.Context, q *query.Querier, _ []string, r query.Range) (*query.Table, error) {
			if gHost == "" {
				return nil, cli.Usagef("--host is required")
			}
			return q.Gaps(ctx, gHost, r)
		},
	}
}
