package loader

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/spool"
)

// Sentinel errors.
var (
	// ErrLocked reports that another loader holds <state>/load.lock.
	ErrLocked = errors.New("loader: another loader is running")
	// ErrReplay reports a segment whose digest the ledger already holds
	// under another (host, seq).
	ErrReplay = errors.New("loader: replayed segment")
	// ErrFork reports a segment whose (host, seq) the ledger holds with
	// another digest: two validly signed segments claim the same place in
	// the host's chain, so the chain forks (a cloned or restored spool, or a
	// stolen signing key). The one loaded first stays; this one is
	// quarantined.
	ErrFork = errors.New("loader: fork of the hash chain")
	// ErrTimeRange reports a segment with a timestamp outside
	// [MinAcceptedTS, MaxAcceptedTS).
	ErrTimeRange = errors.New("loader: timestamp outside the accepted range")
	// ErrRejected reports rows MariaDB did not take as sent (a warning, or
	// fewer rows than the segment has).
	ErrRejected = errors.New("loader: rows rejected by the database")
	// ErrName reports a file whose name does not match its manifest.
	ErrName = errors.New("loader: file name does not match the segment")
	// ErrUnknownHost reports an inbox of a host that is not in the registry
	// or has no usable signing key.
	ErrUnknownHost = errors.New("loader: unknown host")
	// ErrRevoked reports a segment of a host that has been deregistered
	// (registry status revoked, or hosts.status revoked in the database).
	ErrRevoked = errors.New("loader: revoked host")
	// ErrRefused reports a segment whose ledger row or rows the database
	// refused as data (a value it cannot store, a constraint): the fault of
	// that segment alone, so it is quarantined with the database's reason
	// and can never block the inbox.
	ErrRefused = errors.New("loader: refused by the database")
)

// Options configure a Loader.
type Options struct {
	// DB is the database to load into. If nil, DSN is opened (and closed by
	// Close).
	DB  *sql.DB
	DSN string
	// FailoverDSNs are the other nodes of a Galera cluster, tried in order
	// (after DB or DSN, and round again) when the current node leaves the
	// primary component: the segment that failed is retried on the next
	// node, round the nodes, for up to FailoverWait. The loader opens and
	// closes them.
	FailoverDSNs []string
	// StateDir is the server's state directory (inbox/, archive/, …).
	StateDir statedir.Dir
	// Registry is where the hosts are registered (registry.DB when several
	// receivers share it); default: the files under StateDir.
	Registry registry.Store
	// Workers is the number of segments loaded at once; 0 means
	// runtime.NumCPU().
	Workers int
	// Log receives one line per segment refused and per pass; nil discards.
	Log *slog.Logger
	// Progress, if not nil, is told how a pass advances; the command line
	// renders it (a progress bar on a terminal).
	Progress Progress
	// Encoding of byte columns in the LOAD DATA stream (default Escaped).
	Encoding Encoding
	// MaxSegmentBytes refuses larger files unread (default
	// spool.DefaultMaxSize, and at most MaxMemory/4).
	MaxSegmentBytes int64
	// MaxMemory bounds the segment data the loader holds at once (default
	// DefaultMaxMemory): files being verified take up to a quarter of it,
	// decoded segments waiting or loading up to half (so one segment may
	// decode to at most MaxMemory/2, or spool.DefaultMaxDecoded if less);
	// the last quarter is left to the runtime and the workers' buffers. A
	// value longer than its column is refused before it is decompressed.
	MaxMemory int64
	// Hosts, if set, chooses the hosts this loader handles (in its inbox
	// scan and its copy of the registry into the hosts table): with a
	// shard map, one loader per shard takes the hosts assigned to it.
	Hosts func(hostID string) bool
	// LockFile is the file a running loader holds locked (default
	// StateDir.LoadLock(); one per shard with a shard map).
	LockFile string
	// RemoteAddrs, if set, is offered the remote address of every sock row
	// of each loaded segment, after its commit (addrinfo.Resolver: it looks
	// them up in the background and never makes the loader wait).
	RemoteAddrs AddrOfferer
}

// AddrOfferer takes addresses to look up later; Offer must not block.
type AddrOfferer interface {
	Offer(netip.Addr)
}

// The accepted range of every timestamp of a segment (its rows' min_ts and
// max_ts, and its created time): from the Unix epoch to 2200-01-01 UTC. A
// host clock outside it is wrong, and its rows would distort every
// question about time (last seen, missing segments, partitions), so the
// segment is quarantined (class time_range) rather than loaded or clamped.
// docs/segment-format.md states the same range.
const (
	MinAcceptedTS int64 = 0                          // 1970-01-01T00:00:00Z
	MaxAcceptedTS int64 = 7258118400 * 1_000_000_000 // 2200-01-01T00:00:00Z, excluded
)

// checkTimes returns an error wrapping ErrTimeRange if m has a timestamp
// outside the accepted range.
func checkTimes(m *spool.Manifest) error {
	inRange := func(ns int64) bool { return ns >= MinAcceptedTS && ns < MaxAcceptedTS }
	switch {
	case !inRange(m.MinTS) || !inRange(m.MaxTS):
		return fmt.Errorf("%w: rows span %s to %s, accepted 1970-01-01 to 2200-01-01", ErrTimeRange, nsTime(m.MinTS).Format(time.RFC3339Nano), nsTime(m.MaxTS).Format(time.RFC3339Nano))
	case m.Created.Before(time.Unix(0, MinAcceptedTS)) || !m.Created.Before(time.Unix(0, MaxAcceptedTS)):
		return fmt.Errorf("%w: sealed at %s, accepted 1970-01-01 to 2200-01-01", ErrTimeRange, m.Created.Format(time.RFC3339Nano))
	}
	return nil
}

// Progress receives the advance of a load pass. Done is called from
// several workers at once.
type Progress interface {
	// Start begins a pass over segments files (never 0).
	Start(segments int)
	// Done reports one more segment finished (loaded, skipped, quarantined
	// or failed) and the rows this pass has loaded so far.
	Done(rows int64)
	// Finish ends the pass.
	Finish()
}

// Summary counts what one pass did.
type Summary struct {
	Segments    int           // segment files found in the inboxes
	Loaded      int           // loaded and archived
	Skipped     int           // already in the ledger with the same digest: archived only
	Quarantined int           // refused: moved to quarantine
	Failed      int           // left in the inbox because of an error not the segment's fault (database down …)
	Rows        int64         // rows loaded
	Bytes       int64         // bytes of the segment files loaded
	ChainBreaks int           // ledger rows found with chain_ok = 0 during this pass
	Forks       int           // segments quarantined as a fork of their host's chain (also counted in Quarantined)
	Elapsed     time.Duration // wall time of the pass
}

// RowsPerSecond returns Rows / Elapsed.
func (s Summary) RowsPerSecond() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Rows) / s.Elapsed.Seconds()
}

// String is the one-line summary printed by pofr-server load.
func (s Summary) String() string {
	return fmt.Sprintf("segments %d: loaded %d, skipped %d, quarantined %d, failed %d; rows %d in %v (%.0f rows/s); chain breaks %d, forks %d",
		s.Segments, s.Loaded, s.Skipped, s.Quarantined, s.Failed, s.Rows, s.Elapsed.Round(time.Millisecond), s.RowsPerSecond(), s.ChainBreaks, s.Forks)
}

func (s *Summary) add(o Summary) {
	s.Segments += o.Segments
	s.Loaded += o.Loaded
	s.Skipped += o.Skipped
	s.Quarantined += o.Quarantined
	s.Failed += o.Failed
	s.Rows += o.Rows
	s.Bytes += o.Bytes
	s.ChainBreaks += o.ChainBreaks
	s.Forks += o.Forks
}

// Loader loads segments from a state directory into MariaDB.
type Loader struct {
	opt    Options
	dbs    []*sql.DB    // the node given, then Options.FailoverDSNs
	cur    atomic.Int64 // index into dbs of the node in use
	lostAt atomic.Int64 // unix ns since when no node answered (0: one did); see awaitNode
	ownDB  bool
	log    *slog.Logger
	lock   *fileLock
	lockMu sync.Mutex
	mem    *budget
}

// New returns a Loader. It opens Options.DSN if Options.DB is nil.
func New(opt Options) (*Loader, error) {
	if opt.StateDir == "" {
		return nil, errors.New("new loader: no state directory")
	}
	if opt.Workers <= 0 {
		opt.Workers = runtime.NumCPU()
	}
	if opt.MaxMemory <= 0 {
		opt.MaxMemory = DefaultMaxMemory
	}
	if opt.MaxMemory < 16<<20 {
		return nil, fmt.Errorf("new loader: max memory %d bytes: want at least 16 MiB", opt.MaxMemory)
	}
	mem := newBudget(opt.MaxMemory)
	if opt.MaxSegmentBytes <= 0 {
		opt.MaxSegmentBytes = min(spool.DefaultMaxSize, mem.maxFile)
	}
	if opt.MaxSegmentBytes > mem.maxFile {
		return nil, fmt.Errorf("new loader: max segment size %d bytes exceeds a quarter of max memory (%d bytes)", opt.MaxSegmentBytes, opt.MaxMemory)
	}
	if opt.Registry == nil {
		opt.Registry = registry.NewFiles(opt.StateDir)
	}
	l := &Loader{opt: opt, log: opt.Log, mem: mem}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	db := opt.DB
	if db == nil {
		var err error
		if db, err = OpenDB(opt.DSN); err != nil {
			return nil, err
		}
		l.ownDB = true
	}
	l.dbs = []*sql.DB{db}
	for i, dsn := range opt.FailoverDSNs {
		fdb, err := OpenDB(dsn)
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("failover node %d: %w", i+1, err)
		}
		l.dbs = append(l.dbs, fdb)
	}
	return l, nil
}

// OpenDB opens a go-sql-driver/mysql DSN for loading: it turns off
// multiStatements and allowAllFiles (LOAD DATA reads only Reader:: handlers).
func OpenDB(dsn string) (*sql.DB, error) {
	cfg, err := mysql.ParseDSN(strings.TrimSpace(dsn))
	if err != nil {
		return nil, fmt.Errorf("parse DSN: %w", err)
	}
	cfg.MultiStatements = false
	cfg.AllowAllFiles = false
	cfg.ParseTime = true
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	return sql.OpenDB(conn), nil
}

// Close releases the lock and closes the database if New opened it.
func (l *Loader) Close() error {
	l.unlock()
	var errs []error
	for i, db := range l.dbs {
		if i > 0 || l.ownDB {
			errs = append(errs, db.Close())
		}
	}
	return errors.Join(errs...)
}

func (l *Loader) unlock() {
	l.lockMu.Lock()
	defer l.lockMu.Unlock()
	if l.lock != nil {
		l.lock.release()
		l.lock = nil
	}
}

// acquire takes <state>/load.lock, or returns ErrLocked.
func (l *Loader) acquire() error {
	l.lockMu.Lock()
	defer l.lockMu.Unlock()
	if l.lock != nil {
		return nil
	}
	path := l.opt.LockFile
	if path == "" {
		path = l.opt.StateDir.LoadLock()
	}
	fl, err := lockFile(path)
	if err != nil {
		return err
	}
	l.lock = fl
	return nil
}

// Run loads every segment waiting in the inboxes, once, and returns what it
// did. It returns ErrLocked if another loader holds the state directory's
// lock. The error is about the pass as a whole (database unreachable,
// schema version mismatch); refused segments are counted, not returned.
func (l *Loader) Run(ctx context.Context) (Summary, error) {
	if err := l.acquire(); err != nil {
		return Summary{}, err
	}
	defer l.unlock()
	return l.pass(ctx)
}

// Once is New, Run and Close: one load pass with opt, for callers that
// keep no Loader (tests, benchmarks, tools).
func Once(ctx context.Context, opt Options) (Summary, error) {
	l, err := New(opt)
	if err != nil {
		return Summary{}, err
	}
	defer l.Close()
	return l.Run(ctx)
}

// Watch runs a pass every interval until ctx ends, holding the lock the whole
// time. It returns the sum of the passes and ctx's error, or ErrGaleraConfig
// (the settings will not change by themselves). A pass's error is logged
// with its cause unless ctx cut the pass off (a SIGTERM is no error); a
// segment that failed to load the pass logged itself, each one.
func (l *Loader) Watch(ctx context.Context, interval time.Duration) (Summary, error) {
	if err := l.acquire(); err != nil {
		return Summary{}, err
	}
	defer l.unlock()
	var total Summary
	start := time.Now()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s, err := l.pass(ctx)
		total.add(s)
		total.Elapsed = time.Since(start)
		if errors.Is(err, ErrGaleraConfig) {
			return total, err // the configuration will not change by itself
		}
		var logged loggedError
		if err != nil && !cutOff(ctx) && !errors.As(err, &logged) { // past the deadline, ctx.Err may not say so yet
			l.log.Error("load pass", "err", err)
		}
		if s.Segments > 0 {
			l.log.Info("load pass", "summary", s.String())
		}
		select {
		case <-ctx.Done():
			return total, ctx.Err()
		case <-t.C:
		}
	}
}

// loggedError is an error of a pass that the pass logged already (a
// segment that failed to load: each is logged with its cause).
type loggedError struct{ err error }

func (e loggedError) Error() string { return e.err.Error() }
func (e loggedError) Unwrap() error { return e.err }

// job is one segment file to load.
type job struct {
	host string // inbox directory name
	name string // file name
	seq  uint64 // from the name, for ordering
	path string
}

// pending lists the segment files in every inbox, ordered by host and seq.
func (l *Loader) pending() ([]job, error) {
	inbox := l.opt.StateDir.Inboxes()
	hosts, err := statedir.ReadDir(inbox)
	if err != nil {
		return nil, fmt.Errorf("list inboxes: %w", err)
	}
	var jobs []job
	for _, h := range hosts {
		if !spool.ValidHostID(h.Name()) || (l.opt.Hosts != nil && !l.opt.Hosts(h.Name())) {
			continue
		}
		dir := filepath.Join(inbox, h.Name())
		// An inbox may be a symbolic link to a directory elsewhere: the
		// chroot inbox of a stock OpenSSH account (docs/transport.md).
		if !h.IsDir() {
			if fi, err := os.Stat(dir); h.Type()&fs.ModeSymlink == 0 || err != nil || !fi.IsDir() {
				continue
			}
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("list inbox %s: %w", h.Name(), err)
		}
		for _, e := range ents {
			n := e.Name()
			// Uploads in progress are dot files (.name.part); anything
			// else not ending in .pofr is not ours to judge.
			if strings.HasPrefix(n, ".") || !strings.HasSuffix(n, spool.Ext) || !e.Type().IsRegular() {
				continue
			}
			_, seq, _, _ := spool.ParseName(n)
			jobs = append(jobs, job{host: h.Name(), name: n, seq: seq, path: filepath.Join(dir, n)})
		}
	}
	sort.Slice(jobs, func(i, j int) bool {
		if jobs[i].host != jobs[j].host {
			return jobs[i].host < jobs[j].host
		}
		if jobs[i].seq != jobs[j].seq {
			return jobs[i].seq < jobs[j].seq
		}
		return jobs[i].name < jobs[j].name
	})
	return jobs, nil
}

// outcome of one segment.
type outcome int

const (
	loaded outcome = iota
	skipped
	quarantined
	failed
	interrupted // the pass was stopped before the segment committed
)

// result of one segment.
type result struct {
	outcome    outcome
	rows       int64
	bytes      int64
	chainBreak bool // this segment does not chain to its loaded predecessor
	succBreak  bool // its loaded successor does not chain to it
	fork       bool // quarantined as a fork
}

// cutOff reports whether ctx has ended the pass. Past its deadline counts
// even before ctx.Err says so: a dial bounded by that deadline can fail
// with an i/o timeout a moment before the context's own timer fires.
func cutOff(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// pass is one Run under the lock.
func (l *Loader) pass(ctx context.Context) (Summary, error) {
	start := time.Now()
	var sum Summary
	if err := l.checkNode(ctx); err != nil {
		return sum, err
	}
	hosts, err := l.syncHosts(ctx)
	if err != nil {
		return sum, err
	}
	jobs, err := l.pending()
	if err != nil {
		return sum, err
	}
	sum.Segments = len(jobs)

	progress := l.opt.Progress
	if len(jobs) == 0 {
		progress = nil
	}
	if progress != nil {
		progress.Start(len(jobs))
	}

	// Verification runs ahead of the loads (a bounded prefetch), so that
	// even one database connection never waits for the CPU work of the
	// next segment.
	jobsCh := make(chan job)
	work := make(chan *prepared, l.opt.Workers)
	var mu sync.Mutex
	var rows atomic.Int64
	var firstErr error
	workers := min(l.opt.Workers, max(len(jobs), 1))
	var vwg sync.WaitGroup
	for range workers {
		vwg.Add(1)
		go func() {
			defer vwg.Done()
			for j := range jobsCh {
				work <- l.prepare(ctx, hosts, j)
			}
		}()
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &worker{l: l}
			defer w.close()
			for p := range work {
				r, err := w.load(ctx, p)
				if r.outcome == failed && cutOff(ctx) {
					// Cut off by the pass's end (verify, budget, commit): the
					// file stays in the inbox for the next run.
					r.outcome, err = interrupted, nil
				}
				rows.Add(r.rows)
				mu.Lock()
				switch r.outcome {
				case loaded:
					sum.Loaded++
				case skipped:
					sum.Skipped++
				case quarantined:
					sum.Quarantined++
				case failed:
					sum.Failed++
					l.log.Error("load segment", "host", p.j.host, "segment", p.j.name, "err", err)
					if firstErr == nil {
						firstErr = loggedError{err}
					}
				}
				sum.Rows += r.rows
				sum.Bytes += r.bytes
				if r.chainBreak {
					sum.ChainBreaks++
				}
				if r.succBreak {
					sum.ChainBreaks++
				}
				if r.fork {
					sum.Forks++
				}
				mu.Unlock()
				if progress != nil {
					progress.Done(rows.Load())
				}
			}
		}()
	}
feed:
	for _, j := range jobs {
		select {
		case jobsCh <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobsCh)
	vwg.Wait()
	close(work)
	wg.Wait()
	if progress != nil {
		progress.Finish()
	}

	if sum.Loaded > 0 {
		n, err := l.checkChains(ctx)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		sum.ChainBreaks += n
		if _, err := l.db().ExecContext(ctx, `UPDATE hosts h JOIN (SELECT host_id, MAX(ts_to) AS t FROM segments GROUP BY host_id) s
			ON s.host_id = h.host_id SET h.last_seen = s.t`); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("update hosts.last_seen: %w", err)
		}
	}
	sum.Elapsed = time.Since(start)
	if err := ctx.Err(); err != nil && firstErr == nil {
		firstErr = err
	}
	return sum, firstErr
}

// checkChains settles chain_ok of ledger rows whose predecessor has been
// loaded since (two neighbours loaded at once cannot see each other) and
// returns how many of them are broken.
func (l *Loader) checkChains(ctx context.Context) (int, error) {
	tx, err := l.db().BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("check chains: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT s.segment_id, s.host_id, s.seq, s.prev_digest <=> p.digest
		FROM segments s JOIN segments p ON p.host_id = s.host_id AND p.seq = s.seq - 1
		WHERE s.chain_ok IS NULL FOR UPDATE`)
	if err != nil {
		return 0, fmt.Errorf("check chains: %w", err)
	}
	type fix struct {
		id   uint64
		host string
		seq  uint64
		ok   bool
	}
	var fixes []fix
	for rows.Next() {
		var f fix
		if err := rows.Scan(&f.id, &f.host, &f.seq, &f.ok); err != nil {
			rows.Close()
			return 0, fmt.Errorf("check chains: %w", err)
		}
		fixes = append(fixes, f)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("check chains: %w", err)
	}
	broken := 0
	for _, f := range fixes {
		if _, err := tx.ExecContext(ctx, "UPDATE segments SET chain_ok = ? WHERE segment_id = ?", f.ok, f.id); err != nil {
			return 0, fmt.Errorf("check chains: %w", err)
		}
		if !f.ok {
			broken++
			l.log.Warn("hash chain broken", "host", f.host, "seq", f.seq)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("check chains: %w", err)
	}
	return broken, nil
}
