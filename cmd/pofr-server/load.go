package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/term"

	"github.com/pofr/pofr/addrinfo"
	"github.com/pofr/pofr/internal/cli"
	"github.com/pofr/pofr/internal/metrics"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/loader"
)

// loadCommand is "pofr-server load".
func loadCommand() *cli.Command {
	var o loadOptions
	return &cli.Command{
		Name:    "load",
		Summary: "verify received segments and load them into MariaDB, exactly once",
		Usage:   "--dsn-file F [--state-dir D] [--workers N] [--max-memory 256MiB] [--watch 10s] [--geoip F.mmdb|F.BIN] [--resolve]",
		Help: `Loads every segment waiting in state-dir/inbox/HOST/: verifies it against the
signing key the host registered (signature, member digests, host, sizes),
loads its rows and its ledger row (segments) in one transaction, then moves
the file to state-dir/archive/HOST/. Segments that fail verification, hold a
value longer than its column, a timestamp outside 1970-2200, or data MariaDB
would alter or refuses (with MariaDB's reason), and a second segment at a
loaded seq (a fork of the host's chain, logged as an error), go to
state-dir/quarantine/HOST/ with a .reason file and a quarantine row; the
loader goes on, so no segment can block the inbox. Hash chain breaks are
recorded (segments.chain_ok = 0), logged and counted, also when the later
segment was loaded first. Loading the same segment again is a
no-op: a crash at any point leaves it loaded once or not at all.

Memory is bounded whatever a segment says: --max-memory (default 256MiB)
is split into a quarter for segment files being verified (also the largest
file accepted), a half for decoded segments waiting or loading (also the
largest a segment may decode to), and a quarter for the runtime and the
workers' buffers; it is also the Go runtime's soft memory limit. A value
longer than its column is refused (quarantine class too_long) before it is
decompressed.

Run it from cron (one pass) or with --watch (a pass every interval). A run that
finds another loader holding state-dir/load.lock logs one line and exits 0.
On a terminal it draws a progress bar; otherwise it prints one summary line.
The DSN file holds the loader account's DSN (see 'schema users').

With a shard map (--shards, default /etc/pofr-server/shards.json when it
exists), each host's segments go straight to the shard the registry assigns
it (a host without one is assigned one first): one loader per shard runs in
parallel, with its own --workers, lock (state-dir/load-SHARD.lock) and the
shard's first loader DSN file; --max-memory is split between them. A shard
that is down fails only its own hosts' segments, which stay in the inbox.
--shard NAME loads one shard's hosts only. With a map --geoip and --resolve
store each lookup on the host's shard and on the first shard (the head reads
addr_info there), and the ledger metrics carry a shard label.

With --watch, --metrics-listen serves Prometheus metrics read from the
ledger and the inboxes (segments loaded and quarantined, rows per table,
load lag, each host's last segment, chain breaks, gaps); see
docs/operations.md.

Exit codes: 0 done (or another loader is running); 1 error (database
unreachable, schema version mismatch, segments left in the inbox by errors);
2 usage; 3 done, but segments were quarantined or chain breaks found.

Example (cron, every minute): pofr-server load     (reads /etc/pofr-server/loader.dsn)`,
		Flags: func(fs *flag.FlagSet) {
			dsnFileFlag(fs, &o.dsnFile, "loader", "`file` holding the loader's DSN")
			stateDirFlag(fs, &o.stateDir, "server state `dir`ectory")
			fs.IntVar(&o.workers, "workers", 0, "segments loaded at once (0: one per CPU)")
			fs.DurationVar(&o.watch, "watch", 0, "keep running, a pass every `interval` (0: one pass)")
			fs.StringVar(&o.encoding, "encoding", "escaped", "byte columns in the LOAD DATA stream: escaped or hex")
			fs.BoolVar(&o.noProgress, "no-progress", false, "no progress bar even on a terminal")
			metricsFlag(fs, &o.metricsListen)
			fs.StringVar(&o.maxMemory, "max-memory", "256MiB", "memory ceiling for segment data and buffers (MiB or GiB; a plain number is MiB)")
			fs.StringVar(&o.geoip, "geoip", "", "geolocation `file`, MaxMind (.mmdb) or IP2Location (.BIN): store country, city and AS of loaded remote addresses in addr_info")
			fs.BoolVar(&o.resolve, "resolve", false, "store the PTR name of loaded remote addresses in addr_info (looked up in the background)")
			shardsFlag(fs, &o.shards)
			fs.StringVar(&o.shard, "shard", "", "with a shard map: load only the hosts of shard `name`")
			fs.DurationVar(&o.resolveWait, "resolve-wait", 10*time.Second, "without --watch: how long to wait for the lookups after the pass")
		},
		Run: o.run,
	}
}

// loadOptions are the flags of "pofr-server load".
type loadOptions struct {
	dsnFile, encoding, maxMemory string
	shards, shard                string
	metricsListen                string
	geoip                        string
	resolve                      bool
	resolveWait                  time.Duration
	stateDir                     statedir.Dir
	workers                      int
	watch                        time.Duration
	noProgress                   bool
}

// run is one load (or --watch) with the flags in o.
func (o *loadOptions) run(ctx context.Context, env *cli.Env, args []string) error {
	if len(args) > 0 {
		return cli.Usagef("unexpected arguments %q", args)
	}
	var enc loader.Encoding
	switch o.encoding {
	case "escaped":
	case "hex":
		enc = loader.Hex
	default:
		return cli.Usagef("--encoding %q: want escaped or hex", o.encoding)
	}
	if o.metricsListen != "" && o.watch == 0 {
		return cli.Usagef("--metrics-listen needs --watch (one pass is over before a scrape)")
	}
	maxMem, err := parseMiB(o.maxMemory)
	if err != nil {
		return cli.Usagef("--max-memory: %v", err)
	}
	m, err := loadShards(o.shards)
	if err != nil {
		return err
	}
	if m == nil && o.shard != "" {
		return cli.Usagef("--shard needs a shard map (--shards)")
	}
	debug.SetMemoryLimit(maxMem)
	reg, closeReg, err := openRegistry(ctx, o.stateDir, m)
	if err != nil {
		return err
	}
	defer closeReg()
	if m != nil {
		return o.runShards(ctx, env, m, loader.Options{StateDir: o.stateDir, Registry: reg, Workers: o.workers, Encoding: enc, MaxMemory: maxMem})
	}
	dsn, err := readDSNFile(o.dsnFile)
	if err != nil {
		return err
	}
	opt := loader.Options{DSN: dsn, StateDir: o.stateDir, Registry: reg, Workers: o.workers, Log: env.Log, Encoding: enc, MaxMemory: maxMem}
	if f, ok := env.Stderr.(*os.File); ok && !o.noProgress && o.watch == 0 && term.IsTerminal(int(f.Fd())) {
		opt.Progress = &progressBar{w: f}
	}
	if o.geoip != "" || o.resolve {
		geo, err := o.openGeo()
		if err != nil {
			return err
		}
		if geo != nil {
			defer geo.Close()
		}
		res, stop, err := o.addrResolver(ctx, env, geo, dsn)
		if err != nil {
			return err
		}
		defer stop()
		opt.RemoteAddrs = res
	}
	l, err := loader.New(opt)
	if err != nil {
		return err
	}
	defer l.Close()
	if o.metricsListen != "" {
		mdb, err := loader.OpenDB(dsn)
		if err != nil {
			return err
		}
		defer mdb.Close()
		mdb.SetMaxOpenConns(1)
		stop, err := metrics.Go(ctx, o.metricsListen, env.Log, metrics.NewLedger(mdb, o.stateDir, env.Log))
		if err != nil {
			return err
		}
		defer stop()
	}
	var sum loader.Summary
	if o.watch > 0 {
		sum, err = l.Watch(ctx, o.watch)
		if errors.Is(err, context.Canceled) {
			err = nil // stopped by a signal
		}
	} else {
		sum, err = l.Run(ctx)
	}
	if errors.Is(err, loader.ErrLocked) {
		env.Log.Info("another loader is running; nothing to do", "state_dir", o.stateDir)
		return nil
	}
	if err != nil && sum.Segments == 0 {
		return err // the pass could not start (database, schema version)
	}
	fmt.Fprintln(env.Stdout, sum.String())
	if err != nil {
		return err
	}
	if sum.Failed > 0 {
		return fmt.Errorf("%d segments left in the inbox after errors; see the log", sum.Failed)
	}
	if sum.Quarantined > 0 || sum.ChainBreaks > 0 {
		return cli.Exit(3, nil)
	}
	return nil
}

// parseMiB parses a size in MiB or GiB ("256MiB", "1GiB", "512": MiB).
func parseMiB(s string) (int64, error) {
	mult := int64(1 << 20)
	num := s
	switch {
	case strings.HasSuffix(s, "GiB"):
		num, mult = strings.TrimSuffix(s, "GiB"), 1<<30
	case strings.HasSuffix(s, "MiB"):
		num = strings.TrimSuffix(s, "MiB")
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > 1<<20 {
		return 0, fmt.Errorf("%q: want a size such as 256MiB or 1GiB", s)
	}
	return n * mult, nil
}

// openGeo opens the --geoip file; nil without it.
func (o *loadOptions) openGeo() (addrinfo.Geo, error) {
	if o.geoip == "" {
		return nil, nil
	}
	return addrinfo.OpenGeo(o.geoip)
}

// addrResolver starts the background lookups of --geoip (geo) and
// --resolve, which write addr_info over their own connection to each of
// dsns. stop waits (a one-shot pass: at most --resolve-wait) for what is
// queued, then ends them; the caller closes geo after stop.
func (o *loadOptions) addrResolver(ctx context.Context, env *cli.Env, geo addrinfo.Geo, dsns ...string) (*addrinfo.Resolver, func(), error) {
	var dbs []*sql.DB
	closeDBs := func() {
		for _, db := range dbs {
			db.Close()
		}
	}
	for _, dsn := range dsns {
		db, err := loader.OpenDB(dsn)
		if err != nil {
			closeDBs()
			return nil, nil, err
		}
		db.SetMaxOpenConns(2)
		dbs = append(dbs, db)
	}
	var failed atomic.Uint64
	res := addrinfo.NewResolver(addrinfo.Options{Geo: geo, PTR: o.resolve, Store: func(in addrinfo.Info) {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		for _, db := range dbs {
			if err := addrinfo.Upsert(sctx, db, in.Addr.AsSlice(), in); err != nil && failed.Add(1) == 1 {
				env.Log.Warn("address lookups not stored", "err", err)
			}
		}
	}})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { res.Run(rctx); close(done) }()
	stop := func() {
		if o.watch == 0 {
			wctx, wcancel := context.WithTimeout(ctx, o.resolveWait)
			res.Wait(wctx)
			wcancel()
		}
		cancel()
		<-done
		st := res.Stats()
		env.Log.Info("address lookups", "offered", st.Offered, "resolved", st.Resolved, "dropped", st.Dropped,
			"ptr_failed", st.PTRFailed, "not_stored", failed.Load())
		closeDBs()
	}
	return res, stop, nil
}
