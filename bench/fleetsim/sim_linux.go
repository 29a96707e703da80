package fleetsim

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pofr/pofr/bench"
	"github.com/pofr/pofr/internal/daemon"
	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/loader"
	"github.com/pofr/pofr/query"
	"github.com/pofr/pofr/wire"
)

// Config sizes one simulated fleet.
type Config struct {
	// ServerBin is pofr-server (make build).
	ServerBin string
	// WorkDir receives the run's directories (a real file system).
	WorkDir string
	// Hosts (N), Receivers (R) and Shards (S).
	Hosts, Receivers, Shards int
	// Galera makes every shard a 3-node Galera cluster.
	Galera bool
	// RowsPerSec is each host's row rate (the busy-host mix).
	RowsPerSec int
	// Window is how long the hosts write.
	Window time.Duration
	// SegmentAge, UploadInterval and LoadWatch are the spool's seal age,
	// the pusher's idle look and the loaders' --watch interval.
	SegmentAge, UploadInterval, LoadWatch time.Duration
	// MarkEvery is each host's marked exec interval (latency samples).
	MarkEvery time.Duration
	// KillReceiver kills the first receiver at 40 % of the window, as
	// soon as it holds an upload open (up to 10 s later), and restarts it
	// 3 s later; KillReplica (with Galera) kills the last node of the
	// first shard at 60 %, for good.
	KillReceiver, KillReplica bool
	// Backlog holds the loaders back until the window is over and every
	// segment is in the inboxes, to measure how fast the shards catch up
	// (rows/s end to end at saturation, per shard count).
	Backlog bool
	Log     *slog.Logger
}

// Name is the run's benchmark name.
func (c Config) Name() string {
	g := ""
	if c.Galera {
		g = "galera/"
	}
	if c.Backlog {
		g += "backlog/"
	}
	return fmt.Sprintf("Fleet/%sS=%d/R=%d/N=%d", g, c.Shards, c.Receivers, c.Hosts)
}

// idleSample is how long the server's idle CPU is measured before the
// hosts start.
const idleSample = 3 * time.Second

// drainTimeout bounds the wait, after the window, for every segment to be
// pushed and loaded.
const drainTimeout = 3 * time.Minute

// fleetRun is one run's moving parts.
type fleetRun struct {
	c         Config
	dir       string
	dbs       *databases
	reg       registry.Store // the shared registry (MariaDB)
	closeReg  func()
	receivers []*receiverProc
	loaders   []*daemon.Process
	lb        *balancer
	hosts     []*simHost
	meter     *cpuMeter
	shardOf   map[string]string // host id → shard
	retries   int64             // pusher failures (reconnects)
	midUpload bool              // the receiver was killed with an upload open
}

// Run simulates the fleet of c and returns its result and checks. The
// error is set when the run could not complete (then the checks say what
// was measured).
func Run(ctx context.Context, c Config) (bench.Result, []bench.Check, error) {
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	dir, err := os.MkdirTemp(c.WorkDir, "fleet-")
	if err != nil {
		return bench.Result{}, nil, err
	}
	// The mariadbd processes run as mysql and must reach their directories.
	for _, d := range []string{c.WorkDir, dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			return bench.Result{}, nil, err
		}
	}
	f := &fleetRun{c: c, dir: dir, meter: newCPUMeter(), shardOf: map[string]string{}}
	defer f.stop()
	if err := f.start(ctx); err != nil {
		return bench.Result{}, nil, err
	}
	return f.measure(ctx)
}

// start brings up the databases, schema, receivers, balancer, hosts
// (registered), head and loaders.
func (f *fleetRun) start(ctx context.Context) error {
	c, log := f.c, f.c.Log
	t0 := time.Now()
	var err error
	if f.dbs, err = startDatabases(ctx, f.dir, c.Shards, c.Galera, log); err != nil {
		return err
	}
	if _, err := bench.RunTool(ctx, c.ServerBin, "schema", "apply", "--shards", f.dbs.mapf); err != nil {
		return err
	}
	log.Info("fleet: databases up", "shards", c.Shards, "galera", c.Galera, "took", time.Since(t0).Round(time.Millisecond))
	rdb, err := loader.OpenDB(f.dbs.shards[0].nodes[0].Config("root", "", regDBName).FormatDSN())
	if err != nil {
		return err
	}
	f.closeReg = func() { rdb.Close() }
	if f.reg, err = registry.OpenDB(ctx, rdb, ""); err != nil {
		return err
	}
	// Each receiver has its own state directory; all have the first one's
	// host key, as docs/operations.md asks, so hosts pin one fingerprint.
	var addrs []string
	for i := range c.Receivers {
		r := &receiverProc{name: "r" + strconv.Itoa(i+1), state: filepath.Join(f.dir, "state-r"+strconv.Itoa(i+1))}
		if err := os.Mkdir(r.state, 0o700); err != nil {
			return err
		}
		if i > 0 {
			if err := copyFile(statedir.Dir(f.receivers[0].state).HostKey(), statedir.Dir(r.state).HostKey()); err != nil {
				return err
			}
		}
		if err := startReceiver(ctx, c.ServerBin, f.dir, f.dbs.mapf, c.Hosts, r); err != nil {
			return err
		}
		f.receivers = append(f.receivers, r)
		addrs = append(addrs, r.addr)
	}
	if f.lb, err = newBalancer(addrs); err != nil {
		return err
	}
	// Register 4 at a time, each through the balancer.
	f.hosts = make([]*simHost, c.Hosts)
	errs := make([]error, c.Hosts)
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i := range c.Hosts {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			f.hosts[i], errs[i] = register(ctx, f.dir, f.reg, f.lb.addr(), f.receivers[0].fp, i)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, h := range f.hosts {
		r, err := f.reg.Host(h.id)
		if err != nil {
			return err
		}
		if r.Shard == "" {
			return fmt.Errorf("host %s has no shard after registration", h.id)
		}
		f.shardOf[h.id] = r.Shard
	}
	log.Info("fleet: hosts registered", "hosts", c.Hosts, "receivers", c.Receivers, "per-shard", f.hostsPerShard())
	if _, err := bench.RunTool(ctx, c.ServerBin, "head", "apply", "--shards", f.dbs.mapf, "--state-dir", f.receivers[0].state); err != nil {
		return err
	}
	if !c.Backlog {
		if err := f.startLoaders(); err != nil {
			return err
		}
	}
	for _, h := range f.hosts {
		if err := h.open(c.SegmentAge, c.UploadInterval, log); err != nil {
			return err
		}
	}
	return nil
}

// startLoaders starts one pofr-server load --watch beside each receiver,
// on its state directory: it loads what that receiver took, each host's
// segments into the host's shard (one loader per shard inside).
func (f *fleetRun) startLoaders() error {
	c := f.c
	for _, r := range f.receivers {
		p, err := daemon.Start("pofr-server load "+r.name, exec.Command(c.ServerBin, "load", "--shards", f.dbs.mapf,
			"--state-dir", r.state, "--watch", c.LoadWatch.String(), "--workers", "1", "--no-progress"),
			filepath.Join(f.dir, "load-"+r.name+".log"))
		if err != nil {
			return err
		}
		f.loaders = append(f.loaders, p)
	}
	return nil
}

// hostsPerShard counts the hosts assigned to each shard.
func (f *fleetRun) hostsPerShard() map[string]int {
	n := map[string]int{}
	for _, s := range f.shardOf {
		n[s]++
	}
	return n
}

// stop stops everything started, last first.
func (f *fleetRun) stop() {
	log := f.c.Log
	for _, h := range f.hosts {
		if h != nil && h.w != nil {
			h.w.Close()
		}
	}
	if f.lb != nil {
		f.lb.close()
	}
	for _, p := range f.loaders {
		if err := p.Stop(30 * time.Second); err != nil {
			log.Warn("stop loader", "err", err)
		}
	}
	for _, r := range f.receivers {
		if r.proc != nil && !r.proc.Killed() {
			if err := r.proc.Stop(30 * time.Second); err != nil {
				log.Warn("stop receiver", "err", err)
			}
		}
	}
	if f.closeReg != nil {
		f.closeReg()
	}
	if f.dbs != nil {
		f.dbs.stop(log)
	}
	os.RemoveAll(f.dir)
}

// meterAll starts the CPU meter on every server process now running.
func (f *fleetRun) meterAll() {
	for _, r := range f.receivers {
		f.meter.add("receivers", r.proc.Pid(), false)
	}
	for _, p := range f.loaders {
		f.meter.add("loaders", p.Pid(), false)
	}
	for _, s := range f.dbs.shards {
		for _, n := range s.nodes {
			f.meter.add("shard-mariadbd", n.Pid(), false)
		}
	}
	f.meter.add("head-mariadbd", f.dbs.head.Pid(), false)
}

// measure runs the window (with the kills), drains, and checks.
func (f *fleetRun) measure(ctx context.Context) (bench.Result, []bench.Check, error) {
	c, log := f.c, f.c.Log
	head, err := query.OpenDB(f.dbs.headDSN())
	if err != nil {
		return bench.Result{}, nil, err
	}
	defer head.Close()

	// The server idle, before any host writes: the fixed cost of running
	// it, apart from the cost per row.
	f.meterAll()
	idleStart := time.Now()
	select {
	case <-ctx.Done():
		return bench.Result{}, nil, ctx.Err()
	case <-time.After(idleSample):
	}
	_, idleCPU := f.meter.total()
	idleCores := idleCPU / time.Since(idleStart).Seconds()
	f.meter.rebase()
	selfStart, _ := bench.ProcFS("/proc").Stat(os.Getpid())
	start := time.Now()
	pctx, stopPush := context.WithCancel(ctx)
	var pushers sync.WaitGroup
	for _, h := range f.hosts {
		pushers.Go(func() { h.p.Run(pctx) })
	}
	gctx, stopGen := context.WithTimeout(ctx, c.Window)
	var gens sync.WaitGroup
	for _, h := range f.hosts {
		gens.Go(func() { h.generate(gctx, c.RowsPerSec, c.MarkEvery) })
	}
	// The latency poll runs from the start until every mark is seen.
	lctx, stopPoll := context.WithCancel(ctx)
	pollDone := make(chan error, 1)
	go func() { pollDone <- f.pollMarks(lctx, head) }()
	// The sampler keeps every process's last CPU reading fresh.
	sctx, stopSample := context.WithCancel(ctx)
	go func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
				f.meter.sample()
			}
		}
	}()
	defer stopSample()
	kills := f.kills(gctx, log)
	gens.Wait()
	stopGen()
	windowEnd := time.Now()
	if err := <-kills; err != nil {
		stopPush()
		stopPoll()
		return bench.Result{}, nil, err
	}
	for _, h := range f.hosts {
		if err := h.w.Close(); err != nil {
			log.Warn("close spool", "host", h.id, "err", err)
		}
	}
	log.Info("fleet: window over; draining", "window", c.Window)
	var loadStart time.Time
	var cpuAtLoad float64
	drainErr := f.waitPushed(ctx)
	if c.Backlog && drainErr == nil {
		loadStart = time.Now()
		_, cpuAtLoad = f.meter.total()
		if drainErr = f.startLoaders(); drainErr == nil {
			for _, p := range f.loaders {
				f.meter.add("loaders", p.Pid(), true)
			}
			log.Info("fleet: backlog pushed; loaders started")
		}
	}
	if drainErr == nil {
		drainErr = f.drain(ctx)
	}
	end := time.Now()
	// The last marks may be loaded but not yet polled.
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if m, s := f.markCounts(); m == s {
			break
		}
	}
	stopPush()
	pushers.Wait()
	stopPoll()
	pollErr := <-pollDone
	for _, h := range f.hosts {
		f.retries += h.p.Stats().Failures
	}
	byKind, cpu := f.meter.total()
	selfEnd, _ := bench.ProcFS("/proc").Stat(os.Getpid())

	var rows int64
	for _, h := range f.hosts {
		rows += h.rows[0] + h.rows[1] + h.rows[2]
	}
	r := bench.Result{Name: c.Name(), N: int(rows)}
	elapsed := end.Sub(start).Seconds()
	r.Add(float64(rows)/windowEnd.Sub(start).Seconds(), "offered-rows/s")
	r.Add(float64(rows)/elapsed, "rows/s")
	if c.Backlog {
		r.Add(float64(rows)/end.Sub(loadStart).Seconds(), "backlog-rows/s")
		r.Add(float64(rows)/(cpu-cpuAtLoad), "backlog-rows/cpu-s")
	}
	lat := f.latencies()
	if len(lat) > 0 && !c.Backlog {
		r.Add(bench.Percentile(lat, 50), "p50-s")
		r.Add(bench.Percentile(lat, 99), "p99-s")
	}
	r.Add(cpu/elapsed, "server-cores")
	r.Add(1000*cpu/elapsed/float64(c.Hosts), "server-core-ms/host-s")
	r.Add(float64(rows)/cpu, "rows/server-cpu-s")
	r.Add(idleCores, "idle-server-cores")
	if net := cpu - idleCores*elapsed; net > 0 {
		r.Add(float64(rows)/net, "rows/net-cpu-s")
	}
	for _, k := range []string{"receivers", "loaders", "shard-mariadbd", "head-mariadbd"} {
		r.Add(byKind[k]/elapsed, k+"-cores")
	}
	r.Add((selfEnd.CPU()-selfStart.CPU()).Seconds()/elapsed, "simulator-cores")
	r.Add(float64(f.retries), "push-retries")
	if c.KillReceiver {
		r.Add(map[bool]float64{false: 0, true: 1}[f.midUpload], "killed-mid-upload")
	}
	checks, bpr, verr := f.verify(ctx, head)
	r.Add(bpr, "db-B/row")
	marks, seen := f.markCounts()
	checks = append(checks, bench.Check{Name: c.Name() + ": marked execs queryable through the head = 100 %",
		Got: bench.Percent(seen, marks), Limit: 100, Unit: "%", Budget: true, Why: "no marked exec written"})
	if pollErr != nil && !errors.Is(pollErr, context.Canceled) {
		verr = errors.Join(verr, fmt.Errorf("poll the head: %w", pollErr))
	}
	return r, checks, errors.Join(drainErr, verr)
}

// kills kills the first receiver at 40 % of the window (restarting it 3 s
// later on its address) and, with KillReplica, the last node of the first
// Galera shard at 60 %. It reports on the channel when done.
func (f *fleetRun) kills(ctx context.Context, log *slog.Logger) <-chan error {
	done := make(chan error, 1)
	c := f.c
	go func() {
		var errs []error
		wait := func(d time.Duration) bool {
			select {
			case <-ctx.Done():
				return false
			case <-time.After(d):
				return true
			}
		}
		elapsed := time.Duration(0)
		if c.KillReceiver && wait(c.Window*4/10) {
			r := f.receivers[0]
			t := time.Now()
			f.midUpload = uploading(r.proc.Pid(), 10*time.Second)
			elapsed = c.Window*4/10 + time.Since(t)
			f.meter.sample()
			r.proc.Kill()
			log.Info("fleet: receiver killed", "receiver", r.name, "addr", r.addr, "mid-upload", f.midUpload)
			time.Sleep(3 * time.Second)
			elapsed += 3 * time.Second
			if err := startReceiver(context.WithoutCancel(ctx), c.ServerBin, f.dir, f.dbs.mapf, c.Hosts, r); err != nil {
				errs = append(errs, fmt.Errorf("restart receiver %s: %w", r.name, err))
			} else {
				f.meter.add("receivers", r.proc.Pid(), true)
				log.Info("fleet: receiver restarted", "receiver", r.name, "addr", r.addr)
			}
		}
		if c.KillReplica && c.Galera && wait(c.Window*6/10-elapsed) {
			s := f.dbs.shards[0]
			n := s.nodes[len(s.nodes)-1]
			f.meter.sample()
			n.Kill()
			log.Info("fleet: galera replica killed", "shard", s.name, "node", len(s.nodes))
		}
		done <- errors.Join(errs...)
	}()
	return done
}

// waitPushed waits until every host has pushed every sealed segment.
func (f *fleetRun) waitPushed(ctx context.Context) error {
	for deadline := time.Now().Add(drainTimeout); ; time.Sleep(250 * time.Millisecond) {
		pending := 0
		for _, h := range f.hosts {
			pending += max(h.pending(), 0)
		}
		if pending == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("drain: after %v, %d segments not pushed", drainTimeout, pending)
		}
	}
}

// copyFile copies src to dst (mode 0600).
func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o600)
}

// uploading waits, up to timeout, until process pid holds an upload's
// temporary file (wire.PartSuffix) open, and reports whether it did: the
// moment to kill a receiver mid-push.
func uploading(pid int, timeout time.Duration) bool {
	fds := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		ents, err := os.ReadDir(fds)
		if err != nil {
			return false
		}
		for _, e := range ents {
			if t, err := os.Readlink(filepath.Join(fds, e.Name())); err == nil && strings.HasSuffix(t, wire.PartSuffix) {
				return true
			}
		}
	}
	return false
}

// drain waits until every segment is in its shard's ledger.
func (f *fleetRun) drain(ctx context.Context) error {
	deadline := time.Now().Add(drainTimeout)
	want := map[string]int{}
	for _, h := range f.hosts {
		s, err := h.seqs()
		if err != nil {
			return err
		}
		want[h.id] = len(s)
	}
	dbs := map[string]*sql.DB{}
	for _, s := range f.dbs.shards {
		db, err := sql.Open("mysql", s.dsn(0))
		if err != nil {
			return err
		}
		defer db.Close()
		dbs[s.name] = db
	}
	for {
		missing := 0
		got := map[string]int{}
		for _, db := range dbs {
			rows, err := db.QueryContext(ctx, "SELECT host_id, COUNT(*) FROM segments GROUP BY host_id")
			if err == nil {
				for rows.Next() {
					var h string
					var n int
					if rows.Scan(&h, &n) == nil {
						got[h] += n
					}
				}
				rows.Close()
			}
		}
		for h, n := range want {
			missing += max(n-got[h], 0)
		}
		if missing == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("drain: after %v, %d segments not loaded", drainTimeout, missing)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// pollMarks asks the head, every 250 ms, for the marked exec rows not yet
// seen (hosts with outstanding marks, from the oldest one's time) and
// records when each first answered.
func (f *fleetRun) pollMarks(ctx context.Context, head *sql.DB) error {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	byID := map[string]*simHost{}
	for _, h := range f.hosts {
		byID[h.id] = h
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		var ids []any
		oldest := int64(math.MaxInt64)
		for _, h := range f.hosts {
			h.mu.Lock()
			for i, ts := range h.marks {
				if h.seen[i].IsZero() {
					ids = append(ids, h.id)
					oldest = min(oldest, ts)
					break
				}
			}
			h.mu.Unlock()
		}
		if len(ids) == 0 {
			continue
		}
		q := "SELECT host_id, argv FROM proc_events WHERE host_id IN (?" + strings.Repeat(", ?", len(ids)-1) +
			") AND ts >= ? AND comm = ?"
		args := append(ids, time.Unix(0, oldest).UTC().Add(-time.Second), markComm)
		rows, err := head.QueryContext(ctx, q, args...)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		now := time.Now()
		for rows.Next() {
			var id string
			var argv []byte
			if err := rows.Scan(&id, &argv); err != nil {
				rows.Close()
				return err
			}
			h := byID[id]
			i, ok := bench.MarkerIndex(argv, markPrefix)
			if h == nil || !ok {
				continue
			}
			h.mu.Lock()
			if i < len(h.seen) && h.seen[i].IsZero() {
				h.seen[i] = now
			}
			h.mu.Unlock()
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return err
		}
	}
}

// latencies returns exec → queryable in seconds of every mark seen.
func (f *fleetRun) latencies() []float64 {
	var out []float64
	for _, h := range f.hosts {
		h.mu.Lock()
		for i, ts := range h.marks {
			if !h.seen[i].IsZero() {
				out = append(out, h.seen[i].Sub(time.Unix(0, ts)).Seconds())
			}
		}
		h.mu.Unlock()
	}
	return out
}

// markCounts returns how many marks were written and seen.
func (f *fleetRun) markCounts() (marks, seen int) {
	for _, h := range f.hosts {
		h.mu.Lock()
		marks += len(h.marks)
		for _, t := range h.seen {
			if !t.IsZero() {
				seen++
			}
		}
		h.mu.Unlock()
	}
	return marks, seen
}
