//go:build linux

// Command pofr-bench is the harness behind make bench: it measures
// pofr-collector against Linux audit (auditd with an execve rule) and a
// POFR-style /proc poller on the same workloads in the same run, what each
// observer adds to the CPU of the exec'ing task (short A/B blocks), the idle
// collector's CPU, then the server side in a private MariaDB (the loader's
// rows/s against a plain LOAD DATA of the same rows, and exec → queryable
// latency through pofr-server serve, pofr-collector run and pofr-server
// load --watch with default intervals). It prints Go benchmark lines (for
// benchstat), a markdown table and PASS/MISS/UNDECIDED/FAIL lines for the
// thresholds, and exits non-zero when the seed's budget (1 core, 400 MB) is
// exceeded or the collector could not be measured.
//
// Run it as root from the module root, after make build:
//
//	go run ./bench/cmd/pofr-bench            # under 10 minutes
//	BENCH_QUICK=1 go run ./bench/cmd/pofr-bench   # about 4 minutes
//	go run ./bench/cmd/pofr-bench -ab-only   # A/B blocks and idle only
//
// It installs auditd and mariadb-server with apt-get if they are missing
// (without starting the system's MariaDB service), starts auditd without
// systemd and puts the audit state back as it found it, and stops the
// private MariaDB and the pipeline it started.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/pofr/pofr/bench"
)

// Exit codes: bench.ExitFailed when the seed's budget was exceeded or the
// collector could not be measured.
const (
	exitOK     = bench.ExitOK
	exitFailed = bench.ExitFailed
	exitError  = bench.ExitError
)

func main() { bench.Main("pofr-bench", run) }

func run() (int, error) {
	quick := os.Getenv("BENCH_QUICK") != "" && os.Getenv("BENCH_QUICK") != "0"
	cfg := bench.Config{}
	var mdPath string
	var keep, verbose, noLoader bool
	var serverBin string
	var watch time.Duration
	flag.BoolVar(&cfg.Quick, "quick", quick, "short windows, one repetition (default from BENCH_QUICK)")
	flag.IntVar(&cfg.Reps, "reps", 0, "repetitions of the exec section (default 3, quick 1)")
	flag.IntVar(&cfg.ABReps, "ab-reps", 0, "repetitions of the A/B section's 1 s blocks per condition (default 15, quick 6)")
	flag.BoolVar(&cfg.ABOnly, "ab-only", false, "run only the A/B section (exec'ing task's extra CPU per observer) and the idle collector")
	flag.StringVar(&cfg.CollectorBin, "collector", "bin/pofr-collector", "collector binary (make build)")
	flag.StringVar(&serverBin, "server", "bin/pofr-server", "server binary (make build), for the loader and latency")
	flag.StringVar(&cfg.Profile, "profile", "default", "collection profile")
	flag.DurationVar(&watch, "load-watch", bench.DefaultLoadWatch, "pofr-server load --watch interval of the latency measurement")
	flag.BoolVar(&noLoader, "no-loader", false, "do not measure the loader and exec → queryable latency")
	flag.BoolVar(&cfg.NoAudit, "no-audit", false, "do not measure auditd")
	flag.StringVar(&mdPath, "markdown", "", "also write the markdown report to this file")
	flag.BoolVar(&keep, "keep", false, "keep the scratch directory (spools, logs, snapshots)")
	flag.BoolVar(&verbose, "v", false, "debug logging")
	flag.Parse()
	if flag.NArg() > 0 || cfg.ABReps < 0 {
		flag.Usage()
		return exitError, errors.New("usage: pofr-bench [flags] (no arguments; -ab-reps ≥ 0)")
	}

	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg.Log, cfg.Out = log, os.Stdout
	if runtime.GOOS != "linux" {
		return exitError, errors.New("make bench runs on Linux only")
	}
	if os.Geteuid() != 0 {
		return exitError, errors.New("run as root (sudo make bench)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// A real file system, not tmpfs: the collector marks file systems for
	// fanotify and the spool wants fsync to mean something.
	work, err := os.MkdirTemp("/var/tmp", "pofr-bench-")
	if err != nil {
		return exitError, err
	}
	if keep {
		log.Info("scratch directory kept", "dir", work)
	} else {
		defer os.RemoveAll(work)
	}
	cfg.WorkDir = work
	cfg.LoadBin = filepath.Join(work, "pofr-load")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", cfg.LoadBin, "github.com/pofr/pofr/bench/cmd/pofr-load").CombinedOutput(); err != nil {
		return exitError, fmt.Errorf("build pofr-load: %w: %s", err, out)
	}
	if !cfg.NoAudit {
		if err := ensureAuditd(ctx, log); err != nil {
			log.Warn("auditd comparison skipped", "err", err)
			cfg.NoAudit = true
		}
	}
	if noLoader || cfg.ABOnly {
		cfg.NoLoaderWhy = "skipped (-no-loader)"
	} else {
		if err := ensureMariaDB(ctx, log); err != nil {
			log.Warn("loader benchmarks skipped", "err", err)
			cfg.NoLoaderWhy = err.Error()
		} else if _, err := os.Stat(serverBin); err != nil {
			err = fmt.Errorf("server binary: %w (run make build)", err)
			log.Warn("loader benchmarks skipped", "err", err)
			cfg.NoLoaderWhy = err.Error()
		} else {
			lb := bench.LoaderBench{Quick: cfg.Quick, ServerBin: serverBin, CollectorBin: cfg.CollectorBin,
				Profile: cfg.Profile, Watch: watch, Log: log}
			cfg.Loader = lb.Run
		}
	}
	mode := "full"
	if cfg.Quick {
		mode = "quick"
	}
	start := time.Now()
	log.Info("pofr-bench", "mode", mode, "machine", bench.Machine(), "collector", cfg.CollectorBin, "server", serverBin)
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		return exitError, err
	}
	procs := runtime.NumCPU()
	for _, r := range bench.Ratios(rep.Results) {
		bench.WriteBench(os.Stdout, r, procs)
	}
	fmt.Println()
	md, closeMD, err := bench.MarkdownOut(mdPath)
	if err != nil {
		return exitError, err
	}
	defer closeMD()
	if err := bench.WriteMarkdown(md, rep, start, mode); err != nil {
		return exitError, err
	}
	log.Info("pofr-bench done", "took", time.Since(start).Round(time.Second))
	if rep.Failed {
		return exitFailed, errors.New("the run failed: see FAIL lines and notes above")
	}
	return exitOK, nil
}

// ensureAuditd installs Debian's auditd package if auditd is missing.
func ensureAuditd(ctx context.Context, log *slog.Logger) error {
	if _, err := exec.LookPath("auditd"); err == nil {
		return nil
	}
	log.Info("installing auditd with apt-get")
	cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "--no-install-recommends", "auditd")
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get install auditd: %w: %s", err, out)
	}
	_, err := exec.LookPath("auditd")
	return err
}

// ensureMariaDB installs Debian's mariadb-server if mariadbd or
// mariadb-install-db is missing. A policy-rc.d that denies service starts is
// in place during the install, so that the package does not start the
// system's MariaDB: the harness runs its own.
func ensureMariaDB(ctx context.Context, log *slog.Logger) error {
	if bench.LookMariaDB() == nil {
		return nil
	}
	log.Info("installing mariadb-server with apt-get (the system's MariaDB service is not started)")
	const policy = "/usr/sbin/policy-rc.d"
	if _, err := os.Lstat(policy); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(policy, []byte("#!/bin/sh\nexit 101\n"), 0o755); err != nil {
			return fmt.Errorf("write %s: %w", policy, err)
		}
		defer os.Remove(policy)
	}
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	install := func() ([]byte, error) {
		cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "--no-install-recommends", "mariadb-server", "mariadb-client")
		cmd.Env = env
		return cmd.CombinedOutput()
	}
	if _, err := install(); err != nil {
		// The package lists may be stale or absent on a fresh box.
		up := exec.CommandContext(ctx, "apt-get", "update", "-qq")
		up.Env = env
		if out, err := up.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get update: %w: %s", err, out)
		}
		if out, err := install(); err != nil {
			return fmt.Errorf("apt-get install mariadb-server: %w: %s", err, out)
		}
	}
	return bench.LookMariaDB()
}
