//go:build linux

// Command pofr-fleet is the fleet simulator behind make bench-fleet
// (package bench/fleetsim): simulated hosts registering and pushing real
// signed segments over SSH to several pofr-server serve processes, shards
// as private mariadbd processes (optionally 3-node Galera clusters), a
// Spider head, and one pofr-server load per shard; it prints Go benchmark
// lines, a markdown table and PASS/MISS/FAIL lines, and exits 1 when a
// segment or row was lost or duplicated or the head disagrees with the
// shards.
//
// Run it as root from the module root, after make build:
//
//	go run ./bench/cmd/pofr-fleet          # quick: 2 shards, under 2 minutes
//	go run ./bench/cmd/pofr-fleet -full    # S=1 and S=2 (each also catching up a backlog), then a Galera shard with a replica killed
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pofr/pofr/bench"
	"github.com/pofr/pofr/bench/fleetsim"
)

// main exits with bench.ExitFailed when a correctness check failed,
// bench.ExitError when the simulator could not run (or bad usage).
func main() { bench.Main("pofr-fleet", run) }

func run() (int, error) {
	var full, galera, backlog, verbose, noKill bool
	var shards, mdPath string
	c := fleetsim.Config{}
	flag.BoolVar(&full, "full", false, "the long run: S=1 and S=2 with 50 hosts over 60 s each and 15 s segments, each also with -backlog, then a 3-node Galera shard (a replica killed mid-load)")
	flag.StringVar(&c.ServerBin, "server", "bin/pofr-server", "server binary (make build)")
	flag.IntVar(&c.Hosts, "hosts", 0, "simulated hosts N (default 20, full 50)")
	flag.IntVar(&c.Receivers, "receivers", 2, "pofr-server serve processes R (own state directories, one host key, the registry in MariaDB), each with a loader beside it")
	flag.StringVar(&shards, "shards", "", "comma-separated shard counts S to run (default 2, full 1,2)")
	flag.BoolVar(&galera, "galera", false, "make every shard a 3-node Galera cluster and kill a replica mid-load")
	flag.IntVar(&c.RowsPerSec, "rate", 200, "rows per second per host (the busy-host mix: 30 % process, 60 % file, 10 % socket rows)")
	flag.DurationVar(&c.Window, "window", 0, "how long the hosts write (default 30s, full 60s)")
	flag.DurationVar(&c.SegmentAge, "segment-age", 0, "spool segment age (default 5s; full 15s, the default profile's)")
	flag.DurationVar(&c.UploadInterval, "upload-interval", time.Second, "pusher idle interval (a seal wakes it at once)")
	flag.DurationVar(&c.LoadWatch, "load-watch", 2*time.Second, "pofr-server load --watch interval")
	flag.DurationVar(&c.MarkEvery, "mark", 2*time.Second, "marked exec interval per host (latency samples)")
	flag.BoolVar(&backlog, "backlog", false, "hold the loaders back until every segment is pushed, then measure how fast the shards catch up")
	flag.BoolVar(&noKill, "no-kill", false, "do not kill a receiver (or a Galera replica) mid-run")
	flag.StringVar(&mdPath, "markdown", "", "also write the markdown table to this file")
	flag.BoolVar(&verbose, "v", false, "debug logging")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: pofr-fleet [flags]\n\nSimulates a pofr fleet on this machine (root, after make build). Flags:\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		return bench.ExitError, fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	counts, err := parseCounts(shards, full)
	if err != nil {
		flag.Usage()
		return bench.ExitError, err
	}
	if c.Hosts == 0 {
		c.Hosts = map[bool]int{false: 20, true: 50}[full]
	}
	if c.Window == 0 {
		c.Window = map[bool]time.Duration{false: 30 * time.Second, true: 60 * time.Second}[full]
	}
	if c.SegmentAge == 0 {
		c.SegmentAge = map[bool]time.Duration{false: 5 * time.Second, true: 15 * time.Second}[full]
	}
	if c.Hosts < 1 || c.Receivers < 1 || c.RowsPerSec < 1 {
		flag.Usage()
		return bench.ExitError, errors.New("-hosts, -receivers and -rate must be positive")
	}
	c.KillReceiver, c.KillReplica = !noKill, !noKill
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	c.Log = log
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		return bench.ExitError, errors.New("run as root on Linux (sudo make bench-fleet)")
	}
	if _, err := os.Stat(c.ServerBin); err != nil {
		return bench.ExitError, fmt.Errorf("server binary: %w (run make build)", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	work, err := os.MkdirTemp("/var/tmp", "pofr-fleet-")
	if err != nil {
		return bench.ExitError, err
	}
	defer os.RemoveAll(work)
	c.WorkDir = work

	var plan []fleetsim.Config
	for _, s := range counts {
		p := c
		p.Shards, p.Galera, p.Backlog = s, galera, backlog
		plan = append(plan, p)
		if full && !backlog {
			p.Backlog = true
			plan = append(plan, p)
		}
	}
	if full && !galera {
		p := c
		p.Shards, p.Galera = 1, true
		plan = append(plan, p)
	}
	start := time.Now()
	log.Info("pofr-fleet", "machine", bench.Machine(), "runs", len(plan), "hosts", c.Hosts, "receivers", c.Receivers,
		"rate", c.RowsPerSec, "window", c.Window, "load1", loadAvg())
	var results []bench.Result
	var checks []bench.Check
	var errs []error
	for _, p := range plan {
		log.Info("fleet run", "name", p.Name())
		r, cs, err := fleetsim.Run(ctx, p)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.Name(), err))
			if ctx.Err() != nil {
				break
			}
		}
		if r.Name != "" {
			results = append(results, r)
		}
		checks = append(checks, cs...)
	}
	procs := runtime.NumCPU()
	for _, r := range results {
		bench.WriteBench(os.Stdout, r, procs)
	}
	fmt.Println()
	md, closeMD, err := bench.MarkdownOut(mdPath)
	if err != nil {
		return bench.ExitError, err
	}
	defer closeMD()
	writeTable(md, results, c, time.Since(start))
	fmt.Println()
	failed, _ := bench.WriteChecks(os.Stdout, checks)
	if err := errors.Join(errs...); err != nil {
		return bench.ExitError, err
	}
	if failed {
		return bench.ExitFailed, nil
	}
	return bench.ExitOK, nil
}

// parseCounts reads -shards.
func parseCounts(s string, full bool) ([]int, error) {
	if s == "" {
		if full {
			return []int{1, 2}, nil
		}
		return []int{2}, nil
	}
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 8 {
			return nil, fmt.Errorf("-shards %q: want counts from 1 to 8, comma-separated", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// loadAvg is the 1-minute load average, the machine's condition.
func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

// columns of the markdown table: unit, header.
var columns = [][2]string{
	{"offered-rows/s", "offered rows/s"}, {"rows/s", "rows/s end to end"}, {"backlog-rows/s", "catch-up rows/s"},
	{"backlog-rows/cpu-s", "catch-up rows per CPU-s"}, {"p50-s", "exec→head p50 s"}, {"p99-s", "p99 s"},
	{"server-cores", "server cores"}, {"server-core-ms/host-s", "server core-ms per host-s"}, {"rows/server-cpu-s", "rows per server CPU-s"},
	{"idle-server-cores", "idle server cores"}, {"rows/net-cpu-s", "rows per CPU-s net of idle"},
	{"receivers-cores", "receivers"}, {"loaders-cores", "loaders"}, {"shard-mariadbd-cores", "shard mariadbd"},
	{"head-mariadbd-cores", "head"}, {"simulator-cores", "simulator"}, {"db-B/row", "DB B/row"}, {"push-retries", "push retries"}, {"killed-mid-upload", "receiver killed mid-upload"},
}

// writeTable prints the results as a markdown table with the run's
// conditions.
func writeTable(w io.Writer, results []bench.Result, c fleetsim.Config, took time.Duration) {
	fmt.Fprintf(w, "Fleet simulator, %s; %d rows/s per host, segment age %v, upload %v, load --watch %v; took %v; load average %s at the end.\n\n",
		bench.Machine(), c.RowsPerSec, c.SegmentAge, c.UploadInterval, c.LoadWatch, took.Round(time.Second), loadAvg())
	fmt.Fprint(w, "| run |")
	for _, col := range columns {
		fmt.Fprintf(w, " %s |", col[1])
	}
	fmt.Fprint(w, "\n|---|")
	for range columns {
		fmt.Fprint(w, "---:|")
	}
	fmt.Fprintln(w)
	for _, r := range results {
		fmt.Fprintf(w, "| %s |", r.Name)
		for _, col := range columns {
			v, ok := r.Get(col[0])
			if !ok {
				fmt.Fprint(w, " – |")
				continue
			}
			fmt.Fprintf(w, " %s |", bench.FormatValue(v))
		}
		fmt.Fprintln(w)
	}
}
