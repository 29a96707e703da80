//go:build linux

// Command pofr-load runs one of the benchmark workloads of package bench in
// its own process, so that the harness can tell the workload's processes,
// sockets and files from everything else on the machine by this process's
// pid, and prints what it did as JSON on stdout.
//
//	pofr-load exec  -rate 1000 -duration 10s [-path /bin/true]
//	pofr-load procs -path PROG -lifetimes 0,1ms,5ms,50ms,1s -per 100 -rate 50 -tag T
//	pofr-load conns -kinds tcp4,tcp6,udp4,udp6 -lifetimes 1ms,10ms,100ms,1s -per 20 -rate 100
//	pofr-load files -dir DIR -rate 200 -duration 10s
//	pofr-load poll  -out DIR [-period 300ms]     (until SIGTERM)
//	pofr-load cnproc-floor                       (until SIGTERM; see bench.RunProcFloor)
//
// make bench builds and drives it; it is not meant to be run by hand, but
// nothing stops you.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/pofr/pofr/bench"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "pofr-load:", err)
		os.Exit(1)
	}
}

func durations(s string) ([]time.Duration, error) {
	var out []time.Duration
	for f := range strings.SplitSeq(s, ",") {
		if f == "0" {
			out = append(out, 0)
			continue
		}
		d, err := time.ParseDuration(f)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: pofr-load exec|procs|conns|files|poll|cnproc-floor [flags]")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	fs := flag.NewFlagSet("pofr-load "+args[0], flag.ExitOnError)
	var out any
	var err error
	switch args[0] {
	case "exec":
		var c bench.ExecConfig
		fs.StringVar(&c.Path, "path", "/bin/true", "program to run")
		fs.Float64Var(&c.Rate, "rate", 0, "execs per second (0: as fast as possible)")
		fs.DurationVar(&c.Duration, "duration", 10*time.Second, "length of the storm")
		fs.Parse(args[1:])
		out, err = bench.RunExec(ctx, c)
	case "procs":
		var c bench.ProcsConfig
		var lt string
		fs.StringVar(&c.Path, "path", "", "lifetime program (see bench.StaticProgram)")
		fs.StringVar(&lt, "lifetimes", "0,1ms,5ms,50ms,1s", "comma-separated lifetimes")
		fs.IntVar(&c.PerLifetime, "per", 100, "processes per lifetime")
		fs.Float64Var(&c.Rate, "rate", 50, "processes started per second")
		fs.StringVar(&c.Tag, "tag", "x", "tag in every marker")
		fs.Parse(args[1:])
		if c.Lifetimes, err = durations(lt); err != nil {
			return fmt.Errorf("-lifetimes: %w", err)
		}
		out, err = bench.RunProcs(ctx, c)
	case "conns":
		var c bench.ConnConfig
		var lt, kinds string
		fs.StringVar(&kinds, "kinds", strings.Join(bench.ConnKinds, ","), "connection kinds")
		fs.StringVar(&lt, "lifetimes", "1ms,10ms,100ms,1s", "comma-separated lifetimes")
		fs.IntVar(&c.PerBucket, "per", 20, "connections per kind and lifetime")
		fs.Float64Var(&c.Rate, "rate", 100, "connections opened per second")
		fs.Parse(args[1:])
		if c.Lifetimes, err = durations(lt); err != nil {
			return fmt.Errorf("-lifetimes: %w", err)
		}
		c.Kinds = strings.Split(kinds, ",")
		out, err = bench.RunConns(ctx, c)
	case "files":
		var c bench.FileConfig
		fs.StringVar(&c.Dir, "dir", "", "directory to churn in")
		fs.Float64Var(&c.Rate, "rate", 200, "cycles per second")
		fs.DurationVar(&c.Duration, "duration", 10*time.Second, "length of the churn")
		fs.IntVar(&c.Size, "size", 4096, "bytes per file")
		fs.Parse(args[1:])
		out, err = bench.RunFiles(ctx, c)
	case "cnproc-floor":
		fs.Parse(args[1:])
		out, err = bench.RunProcFloor(ctx, bench.ProcFloorOptions{FIFO: true, Argv: true})
	case "poll":
		c := bench.PollConfig{Proc: "/proc"}
		fs.StringVar(&c.OutDir, "out", "", "snapshot directory")
		fs.DurationVar(&c.Period, "period", 300*time.Millisecond, "sleep between passes")
		fs.Parse(args[1:])
		return bench.Poll(ctx, c)
	default:
		return fmt.Errorf("unknown workload %q (want exec, procs, conns, files, poll or cnproc-floor)", args[0])
	}
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}
