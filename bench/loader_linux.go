package bench

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/pofr/pofr/internal/daemon"
	"github.com/pofr/pofr/loader"
	"github.com/pofr/pofr/profiles"
	"github.com/pofr/pofr/schema"
	"github.com/pofr/pofr/uplink"
)

// LoaderBench measures the server side in a private MariaDB ([StartMariaDB]):
//
//   - the loader's rows/s with 1, 2 and 4 workers against the ceiling
//     measured in the same run, a plain LOAD DATA LOCAL of the same rows
//     (MeasureLoad), and its CPU per million rows;
//   - database bytes per row (data + indexes of each event table) after
//     the loader loaded the busy-host mix, beside the spool's bytes per row;
//   - exec → queryable latency through the real pipeline on this host with
//     the profile's default intervals: pofr-server serve on loopback, a host
//     registered with a one-time token, pofr-collector run, and
//     pofr-server load --watch; marked execs are spawned over a window and
//     SQL is polled for each one's exec row.
//
// Its Run method is the harness's [Config.Loader].
type LoaderBench struct {
	// Quick measures fewer rows and fewer execs over a shorter window.
	Quick bool
	// ServerBin and CollectorBin are pofr-server and pofr-collector.
	ServerBin, CollectorBin string
	// Profile is the collector's profile (its segment age and upload
	// interval are not overridden).
	Profile string
	// Watch is the interval of pofr-server load --watch, the loader's
	// cadence (default 10 s, what a cron-like deployment would use).
	Watch time.Duration
	Log   *slog.Logger
}

// DefaultLoadWatch is the pofr-server load --watch interval of the latency
// measurement.
const DefaultLoadWatch = 10 * time.Second

// latencyPlan sizes the latency measurement. In full mode the marked execs
// are spread over four segment ages (15 s in the default profile), so that
// they fall at different points of the seal, upload and load cycles: 20
// over about a minute. Quick mode, which must end in under 2 minutes with
// the collector sections, is a smoke test: 6 over about 10 s, its p99 the
// worst of 6 within one or two seals.
type latencyPlan struct {
	execs    int
	spacing  time.Duration // mean gap between marked execs (uniform 0.5–1.5×)
	deadline time.Duration // after the last exec, give up waiting
	poll     time.Duration // SQL poll cadence
}

func (lb LoaderBench) plans() (LoadOptions, latencyPlan) {
	if lb.Quick {
		return LoadOptions{Hosts: 2, Segments: 4, RowsPerSegment: 12500, Rounds: 1},
			latencyPlan{execs: 6, spacing: 2 * time.Second, deadline: 90 * time.Second, poll: 250 * time.Millisecond}
	}
	return LoadOptions{Hosts: 2, Segments: 8, RowsPerSegment: 25000, Rounds: 2},
		latencyPlan{execs: 20, spacing: 3 * time.Second, deadline: 90 * time.Second, poll: 250 * time.Millisecond}
}

// Run starts the private MariaDB, measures the loader and the latency, and
// stops everything it started. A part that cannot be measured returns its
// checks as SKIP with the reason, and the error.
func (lb LoaderBench) Run(ctx context.Context, workDir string) ([]Result, []Check, error) {
	if lb.Log == nil {
		lb.Log = slog.New(slog.DiscardHandler)
	}
	if lb.Watch <= 0 {
		lb.Watch = DefaultLoadWatch
	}
	if lb.Profile == "" {
		lb.Profile = "default"
	}
	log := lb.Log
	log.Info("loader section: private MariaDB")
	m, err := StartMariaDB(ctx, log)
	if err != nil {
		why := "not measured: " + err.Error()
		return nil, skipChecks(why, why), fmt.Errorf("start MariaDB: %w", err)
	}
	defer func() {
		if err := m.Stop(); err != nil {
			log.Warn("stop MariaDB", "err", err)
		}
	}()
	bopt, lp := lb.plans()

	var results []Result
	var checks []Check
	var errs []error
	log.Info("loader section: rows/s against a plain LOAD DATA", "rows", bopt.Hosts*bopt.Segments*bopt.RowsPerSegment, "rounds", bopt.Rounds)
	rs, cs, err := lb.throughput(ctx, m, bopt)
	if err != nil {
		if ctx.Err() != nil {
			return results, checks, ctx.Err()
		}
		errs = append(errs, fmt.Errorf("loader rows/s: %w", err))
		cs = skipChecks("not measured: "+err.Error(), "")
	}
	results, checks = append(results, rs...), append(checks, cs...)

	log.Info("loader section: database bytes per row against the spool's", "rows", bopt.Hosts*bopt.Segments*bopt.RowsPerSegment)
	sr, cs, err := lb.storage(ctx, m, bopt)
	if err != nil {
		if ctx.Err() != nil {
			return results, checks, ctx.Err()
		}
		errs = append(errs, fmt.Errorf("database bytes per row: %w", err))
	} else {
		results = append(results, sr)
	}
	checks = append(checks, cs...)

	log.Info("loader section: exec → queryable through serve, collector and load --watch",
		"execs", lp.execs, "watch", lb.Watch, "profile", lb.Profile)
	r, cs, err := lb.latency(ctx, m, filepath.Join(workDir, "pipeline"), lp)
	if err != nil {
		if ctx.Err() != nil {
			return results, checks, ctx.Err()
		}
		errs = append(errs, fmt.Errorf("exec → queryable: %w", err))
		cs = skipChecks("", "not measured: "+err.Error())
	} else {
		results = append(results, r)
	}
	checks = append(checks, cs...)
	return results, checks, errors.Join(errs...)
}

// throughput runs MeasureLoad in its own database.
func (lb LoaderBench) throughput(ctx context.Context, m *MariaDB, opt LoadOptions) ([]Result, []Check, error) {
	const dbname = "pofr_loadbench"
	if err := createDatabase(ctx, m, dbname); err != nil {
		return nil, nil, err
	}
	opt.DSN = m.DSN("root", "", dbname)
	db, err := loader.OpenDB(opt.DSN)
	if err != nil {
		return nil, nil, err
	}
	_, err = schema.Apply(ctx, db)
	db.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("apply schema: %w", err)
	}
	opt.Workers = []int{1, 2, 4}
	opt.Log = lb.Log
	brs, err := MeasureLoad(ctx, opt)
	if err != nil {
		return nil, nil, err
	}
	ms := make([]LoaderMeasurement, 0, len(brs))
	for _, b := range brs {
		ms = append(ms, LoaderMeasurement{Workers: b.Workers, Rows: b.Rows, LoaderRowsPerSec: b.LoaderRowsPerSec,
			CeilingRowsPerSec: b.CeilingRowsPerSec, LoaderCPUPerMRows: b.LoaderCPUPerMRows, CeilingCPUPerMRows: b.CeilingCPUPerMRows})
	}
	rs, cs := LoaderResults(ms)
	return rs, cs, nil
}

// createDatabase creates a database as root.
func createDatabase(ctx context.Context, m *MariaDB, name string) error {
	db, err := sql.Open("mysql", m.DSN("root", "", ""))
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE `"+name+"`"); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// pipeline is the server and the collector of the latency measurement.
type pipeline struct {
	dir     string
	daemons []*daemon.Process // in start order
	hostID  string
}

// stop stops the daemons, last started first.
func (p *pipeline) stop(log *slog.Logger) {
	for i := len(p.daemons) - 1; i >= 0; i-- {
		if err := p.daemons[i].Stop(30 * time.Second); err != nil {
			log.Warn("stop", "program", p.daemons[i].Name(), "err", err)
		}
	}
}

// secretFile writes a random secret (hex) to path, 0600, and returns it.
func secretFile(path string) (string, error) {
	b := make([]byte, 16)
	rand.Read(b)
	s := hex.EncodeToString(b)
	return s, os.WriteFile(path, []byte(s+"\n"), 0o600)
}

// startPipeline sets up the real pipeline in dir: the schema and the loader
// account by pofr-server itself, serve, token, register, collector run and
// load --watch.
func (lb LoaderBench) startPipeline(ctx context.Context, m *MariaDB, dir string) (_ *pipeline, err error) {
	const dbname = "pofr"
	p := &pipeline{dir: dir}
	defer func() {
		if err != nil {
			p.stop(lb.Log)
		}
	}()
	for _, d := range []string{"server", "client", "collector"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return p, err
		}
	}
	if err := createDatabase(ctx, m, dbname); err != nil {
		return p, err
	}
	admin := filepath.Join(dir, "admin.dsn")
	if err := os.WriteFile(admin, []byte(m.DSN("root", "", dbname)+"\n"), 0o600); err != nil {
		return p, err
	}
	if _, err := RunTool(ctx, lb.ServerBin, "schema", "apply", "--dsn-file", admin); err != nil {
		return p, err
	}
	pw, err := secretFile(filepath.Join(dir, "loader.pw"))
	if err != nil {
		return p, err
	}
	if _, err := RunTool(ctx, lb.ServerBin, "schema", "users", "--dsn-file", admin, "--loader-password-file", filepath.Join(dir, "loader.pw")); err != nil {
		return p, err
	}
	loaderDSN := filepath.Join(dir, "loader.dsn")
	if err := os.WriteFile(loaderDSN, []byte(m.DSN("pofr_loader", pw, dbname)+"\n"), 0o600); err != nil {
		return p, err
	}

	state := filepath.Join(dir, "server")
	serve, err := daemon.Start("pofr-server serve",
		exec.Command(lb.ServerBin, "serve", "--listen", "127.0.0.1:0", "--state-dir", state), filepath.Join(dir, "serve.log"))
	if err != nil {
		return p, err
	}
	p.daemons = append(p.daemons, serve)
	if _, err := serve.WaitLog(ctx, regexp.MustCompile(`(?m)^host key SHA256:`), 15*time.Second); err != nil {
		return p, err
	}
	out, err := os.ReadFile(serve.LogPath())
	if err != nil {
		return p, err
	}
	banner, ok := ParseServeBanner(out)
	if !ok {
		return p, fmt.Errorf("pofr-server serve: no address and host key in its output: %s", out)
	}
	token, err := RunTool(ctx, lb.ServerBin, "token", "create", "--state-dir", state, "--ttl", "10m")
	if err != nil {
		return p, err
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, token, 0o600); err != nil {
		return p, err
	}
	client := filepath.Join(dir, "client")
	if _, err := RunTool(ctx, lb.CollectorBin, "register", "--server", banner.Addr, "--server-fingerprint", banner.Fingerprint,
		"--token-file", tokenFile, "--config-dir", client); err != nil {
		return p, err
	}
	cfg, err := uplink.LoadConfig(client)
	if err != nil {
		return p, err
	}
	p.hostID = cfg.HostID

	// The profile's segment age and upload interval, not overridden: the bar
	// is "with default intervals".
	coll, err := daemon.Start("pofr-collector run",
		exec.Command(lb.CollectorBin, "run", "--config-dir", client, "--state-dir", filepath.Join(dir, "collector"), "--profile", lb.Profile),
		filepath.Join(dir, "collector.log"))
	if err != nil {
		return p, err
	}
	p.daemons = append(p.daemons, coll)
	if _, err := coll.WaitLog(ctx, regexp.MustCompile(`process source recording|POLL MODE`), 20*time.Second); err != nil {
		return p, err
	}
	load, err := daemon.Start("pofr-server load --watch",
		exec.Command(lb.ServerBin, "load", "--watch", lb.Watch.String(), "--state-dir", state, "--dsn-file", loaderDSN, "--no-progress"),
		filepath.Join(dir, "load.log"))
	if err != nil {
		return p, err
	}
	p.daemons = append(p.daemons, load)
	// The sock source starts after the process source; let the collector
	// finish starting before the first marked exec.
	time.Sleep(time.Second)
	for _, d := range p.daemons {
		if !d.Running() {
			return p, fmt.Errorf("%s exited at start (%v): %s", d.Name(), d.Err(), d.LogTail())
		}
	}
	return p, nil
}

// latency spawns marked execs spread over a window and polls SQL until the
// exec row of each is visible, or until the deadline after the last one.
func (lb LoaderBench) latency(ctx context.Context, m *MariaDB, dir string, lp latencyPlan) (Result, []Check, error) {
	p, err := lb.startPipeline(ctx, m, dir)
	if err != nil {
		return Result{}, nil, err
	}
	defer p.stop(lb.Log)
	db, err := sql.Open("mysql", m.DSN("root", "", "pofr"))
	if err != nil {
		return Result{}, nil, err
	}
	defer db.Close()

	tag := make([]byte, 4)
	rand.Read(tag)
	prefix := "pofrbench-lat-" + hex.EncodeToString(tag) + "-"
	since := time.Now().UTC().Add(-time.Minute)
	spawned := make([]time.Time, lp.execs)
	visible := make([]time.Time, lp.execs)
	found := 0
	var mu sync.Mutex // guards spawned

	// Marked execs run in this goroutine's children; the poll runs here.
	spawnErr := make(chan error, 1)
	go func() {
		for i := range lp.execs {
			if i > 0 {
				gap := time.Duration(float64(lp.spacing) * (0.5 + mrand.Float64()))
				select {
				case <-ctx.Done():
					spawnErr <- ctx.Err()
					return
				case <-time.After(gap):
				}
			}
			// argv[0] carries the marker; /bin/sleep lives 100 ms, long
			// enough for its argv to be read whatever the machine's load.
			cmd := exec.Command("/bin/sleep", "0.1")
			cmd.Args[0] = latencyMarker(prefix, i)
			t := time.Now()
			if err := cmd.Start(); err != nil {
				spawnErr <- fmt.Errorf("spawn marked exec: %w", err)
				return
			}
			mu.Lock()
			spawned[i] = t
			mu.Unlock()
			go cmd.Wait()
		}
		spawnErr <- nil
	}()

	var last time.Time // when the last marked exec was spawned
	spawning := true
	tick := time.NewTicker(lp.poll)
	defer tick.Stop()
	for found < lp.execs {
		select {
		case <-ctx.Done():
			return Result{}, nil, ctx.Err()
		case err := <-spawnErr:
			if err != nil {
				return Result{}, nil, err
			}
			spawning, last = false, time.Now()
		case <-tick.C:
		}
		if !spawning && time.Since(last) > lp.deadline {
			lb.Log.Warn("marked execs not queryable by the deadline", "found", found, "of", lp.execs, "deadline", lp.deadline)
			break
		}
		rows, err := db.QueryContext(ctx, "SELECT argv FROM proc_events WHERE host_id = ? AND event = 'exec' AND ts >= ? AND LOCATE(?, argv) = 1",
			p.hostID, since, prefix)
		if err != nil {
			return Result{}, nil, fmt.Errorf("poll proc_events: %w", err)
		}
		now := time.Now()
		for rows.Next() {
			var argv []byte
			if err := rows.Scan(&argv); err != nil {
				rows.Close()
				return Result{}, nil, fmt.Errorf("poll proc_events: %w", err)
			}
			if i, ok := MarkerIndex(argv, prefix); ok && i < lp.execs && visible[i].IsZero() {
				mu.Lock()
				if !spawned[i].IsZero() {
					visible[i] = now
					found++
				}
				mu.Unlock()
			}
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return Result{}, nil, fmt.Errorf("poll proc_events: %w", err)
		}
		rows.Close()
	}
	if spawning {
		// Every row was seen before the spawner reported: collect it.
		if err := <-spawnErr; err != nil {
			return Result{}, nil, err
		}
	}
	lat := make([]time.Duration, lp.execs)
	for i := range lat {
		lat[i] = -1
		if !visible[i].IsZero() {
			lat[i] = visible[i].Sub(spawned[i])
		}
	}
	r, cs := LatencyResult(lat)
	r.Add(spawned[len(spawned)-1].Sub(spawned[0]).Seconds(), "window-s")
	if prof, err := profiles.Get(lb.Profile); err == nil {
		r.Add(time.Duration(prof.Spool.SegmentAge).Seconds(), "segment-age-s")
		r.Add(time.Duration(prof.Upload.Interval).Seconds(), "upload-s")
	}
	r.Add(lb.Watch.Seconds(), "load-watch-s")
	lb.Log.Info("exec → queryable", "execs", lp.execs, "queryable", found, "latencies", fmtLatencies(lat))
	return r, cs, nil
}

// fmtLatencies prints latencies in seconds for the log.
func fmtLatencies(lat []time.Duration) string {
	var b strings.Builder
	for i, d := range lat {
		if i > 0 {
			b.WriteByte(' ')
		}
		if d < 0 {
			b.WriteString("never")
		} else {
			b.WriteString(FormatValue(d.Seconds()))
		}
	}
	return b.String()
}
