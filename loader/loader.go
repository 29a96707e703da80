package loader

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/go-sql-driver/mysql"

	"github.com/pofr/pofr/internal/durable"
	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/schema"
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
	// StateDir is the server's state directory (inbox/, archive/, …).
	StateDir statedir.Dir
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
	db     *sql.DB
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
	l := &Loader{opt: opt, db: opt.DB, log: opt.Log, mem: mem}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.db == nil {
		db, err := OpenDB(opt.DSN)
		if err != nil {
			return nil, err
		}
		l.db, l.ownDB = db, true
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
	if l.ownDB {
		return l.db.Close()
	}
	return nil
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
	fl, err := lockFile(l.opt.StateDir.LoadLock())
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

// Watch runs a pass every interval until ctx ends, holding the lock the whole
// time. It returns the sum of the passes and ctx's error, or the first error
// of a pass that could not run at all.
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
		if err != nil && ctx.Err() == nil {
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
	hosts, err := os.ReadDir(inbox)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list inboxes: %w", err)
	}
	var jobs []job
	for _, h := range hosts {
		if !spool.ValidHostID(h.Name()) {
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

// pass is one Run under the lock.
func (l *Loader) pass(ctx context.Context) (Summary, error) {
	start := time.Now()
	var sum Summary
	if err := schema.Check(ctx, l.db); err != nil {
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
					if firstErr == nil {
						firstErr = err
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
		if _, err := l.db.ExecContext(ctx, `UPDATE hosts h JOIN (SELECT host_id, MAX(ts_to) AS t FROM segments GROUP BY host_id) s
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
	tx, err := l.db.BeginTx(ctx, nil)
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

// worker loads segments on its own connection.
type worker struct {
	l    *Loader
	conn *sql.Conn
}

func (w *worker) close() {
	if w.conn != nil {
		w.conn.Close()
	}
}

// SessionSQL is the first statement of every loading connection: it makes
// LOAD DATA as strict as it can be (it still only warns, being LOCAL: the
// warnings are checked) and times UTC.
const SessionSQL = "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'," +
	" time_zone = '+00:00', autocommit = 1"

// connection returns the worker's connection, opening it if needed.
func (w *worker) connection(ctx context.Context) (*sql.Conn, error) {
	if w.conn != nil {
		return w.conn, nil
	}
	c, err := w.l.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	if _, err := c.ExecContext(ctx, SessionSQL); err != nil {
		c.Close()
		return nil, fmt.Errorf("set session: %w", err)
	}
	w.conn = c
	return c, nil
}

// dropConn forgets a connection after an error that may have broken it.
func (w *worker) dropConn() {
	if w.conn != nil {
		w.conn.Raw(func(any) error { return driver.ErrBadConn }) // discard, do not pool
		w.conn.Close()
		w.conn = nil
	}
}

// prepared is a segment file after verification: either seg is set and the
// segment goes to the database, or the outcome is already decided.
type prepared struct {
	j     job
	seg   *segment
	size  int64
	mtime time.Time
	res   result
	err   error
}

// prepare verifies one file (no database connection needed beyond a
// quarantine row), so that it can run ahead of the loads.
func (l *Loader) prepare(ctx context.Context, hosts map[string]*registry.Host, j job) *prepared {
	p := &prepared{j: j}
	fi, err := os.Stat(j.path)
	if errors.Is(err, os.ErrNotExist) {
		p.res.outcome = skipped // another pass moved it
		return p
	}
	if err != nil {
		p.res.outcome, p.err = failed, fmt.Errorf("stat %s: %w", j.path, err)
		return p
	}
	p.size, p.mtime = fi.Size(), fi.ModTime()
	if p.size > l.opt.MaxSegmentBytes {
		return l.refuse(ctx, p, ClassTooLarge, fmt.Errorf("%w: %d bytes, limit %d", spool.ErrTooLarge, p.size, l.opt.MaxSegmentBytes), nil, "")
	}
	h := hosts[j.host]
	if h == nil {
		return l.refuse(ctx, p, ClassUnknownHost, fmt.Errorf("%w: %s is not in the registry", ErrUnknownHost, j.host), nil, "")
	}
	if h.Status == registry.StatusRevoked {
		return l.refuse(ctx, p, ClassRevokedHost, fmt.Errorf("%w: %s was deregistered; its segments are no longer loaded", ErrRevoked, j.host), nil, "")
	}
	pub, err := h.SigningPublicKey()
	if err != nil {
		return l.refuse(ctx, p, ClassUnknownHost, fmt.Errorf("%w: %v", ErrUnknownHost, err), nil, "")
	}
	seg, err := l.openBudgeted(ctx, j.path, p.size, pub, j.host)
	if err != nil {
		if c := classify(err); c != "" {
			return l.refuse(ctx, p, c, err, nil, "")
		}
		p.res.outcome, p.err = failed, err
		return p
	}
	m := seg.manifest
	if hostID, seq, prefix, ok := spool.ParseName(j.name); !ok || hostID != m.HostID || seq != m.Seq || !strings.HasPrefix(seg.digest, prefix) {
		seg.release()
		return l.refuse(ctx, p, ClassName, fmt.Errorf("%w: manifest says %s", ErrName, m.Name(seg.digest)), m, seg.digest)
	}
	if err := checkTimes(m); err != nil {
		seg.release()
		return l.refuse(ctx, p, ClassTimeRange, err, m, seg.digest)
	}
	p.seg = seg
	return p
}

// refuse quarantines p's file and decides its outcome.
func (l *Loader) refuse(ctx context.Context, p *prepared, class Class, cause error, m *spool.Manifest, digest string) *prepared {
	log := l.log.With("host", p.j.host, "segment", p.j.name)
	if err := l.quarantine(ctx, p.j, p.size, class, cause, m, digest); err != nil {
		log.Error("quarantine segment", "err", err)
		p.res.outcome, p.err = failed, err
		return p
	}
	if class == ClassFork {
		log.Error("hash chain fork: segment quarantined", "class", class, "err", cause)
		p.res.fork = true
	} else {
		log.Warn("segment quarantined", "class", class, "err", cause)
	}
	p.res.outcome = quarantined
	return p
}

// load loads a prepared segment in one transaction and archives its file.
func (w *worker) load(ctx context.Context, p *prepared) (result, error) {
	if p.seg == nil {
		return p.res, p.err
	}
	defer p.seg.release()
	l, j, seg := w.l, p.j, p.seg
	m := seg.manifest
	log := l.log.With("host", j.host, "segment", j.name)
	var res result
	var err error
	for attempt := 1; ; attempt++ {
		res, err = w.commit(ctx, j, seg, p.size, p.mtime)
		if err == nil || !retryable(err) || attempt == 3 {
			break
		}
		log.Debug("retry segment", "err", err, "attempt", attempt)
	}
	switch {
	case err == nil:
	case classify(err) != "":
		q := l.refuse(ctx, p, classify(err), err, m, seg.digest)
		return q.res, q.err
	default:
		w.dropConn()
		return result{outcome: failed}, fmt.Errorf("load %s: %w", j.name, err)
	}
	if err := moveFile(j.path, l.opt.StateDir.Host(j.host).Archive, j.name); err != nil {
		// The segment is loaded; the next pass finds it in the ledger and
		// archives it then.
		log.Error("archive segment", "err", err)
	}
	if res.chainBreak {
		log.Warn("hash chain broken", "seq", m.Seq)
	}
	if res.succBreak {
		log.Warn("hash chain broken", "seq", m.Seq+1)
	}
	if res.outcome == skipped {
		log.Info("segment already loaded; archived", "seq", m.Seq)
	}
	return res, nil
}

// retryable reports deadlocks and lock wait timeouts.
func retryable(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205)
}

// Class names why a segment was quarantined: the class column of the
// quarantine table and the first line of its .reason file.
type Class string

// The quarantine classes.
const (
	ClassBadSignature       Class = "bad_signature"       // the signature does not verify with the registered key
	ClassWrongHost          Class = "wrong_host"          // the manifest names another host than the inbox
	ClassTooLarge           Class = "too_large"           // the file is over the size limit
	ClassTooLong            Class = "too_long"            // a value is longer than its column allows
	ClassUnsupportedVersion Class = "unsupported_version" // a segment format this server does not read
	ClassCorrupt            Class = "corrupt"             // the container, manifest or a member is malformed
	ClassDecode             Class = "decode"              // the rows do not decode to the table's schema
	ClassLoad               Class = "load"                // MariaDB warned about or dropped rows (ErrRejected)
	ClassName               Class = "name"                // the file name does not match the manifest (ErrName)
	ClassReplay             Class = "replay"              // the digest is in the ledger under another (host, seq) (ErrReplay)
	ClassFork               Class = "fork"                // another digest holds this (host, seq) (ErrFork)
	ClassTimeRange          Class = "time_range"          // a timestamp outside 1970–2200 (ErrTimeRange)
	ClassUnknownHost        Class = "unknown_host"        // the inbox's host is not registered or has no key (ErrUnknownHost)
	ClassRevokedHost        Class = "revoked_host"        // the host was deregistered (ErrRevoked)
	ClassDatabase           Class = "database"            // MariaDB refused the segment's data (ErrRefused)
)

// classify names the quarantine class of an error, or "" if the error is
// not the segment's fault.
func classify(err error) Class {
	switch {
	case errors.Is(err, spool.ErrBadSignature):
		return ClassBadSignature
	case errors.Is(err, spool.ErrWrongHost):
		return ClassWrongHost
	case errors.Is(err, spool.ErrTooLarge):
		return ClassTooLarge
	case errors.Is(err, spool.ErrTooLong):
		return ClassTooLong
	case errors.Is(err, spool.ErrUnsupportedVersion):
		return ClassUnsupportedVersion
	case errors.Is(err, spool.ErrCorrupt):
		return ClassCorrupt
	case errors.Is(err, ErrDecode), errors.Is(err, event.ErrSchema):
		return ClassDecode
	case errors.Is(err, ErrRejected):
		return ClassLoad
	case errors.Is(err, ErrName):
		return ClassName
	case errors.Is(err, ErrReplay):
		return ClassReplay
	case errors.Is(err, ErrFork):
		return ClassFork
	case errors.Is(err, ErrTimeRange):
		return ClassTimeRange
	case errors.Is(err, ErrUnknownHost):
		return ClassUnknownHost
	case errors.Is(err, ErrRevoked):
		return ClassRevokedHost
	case errors.Is(err, ErrRefused), refusedData(err):
		return ClassDatabase
	}
	return ""
}

// refusedData reports a MariaDB error about the data of the statement
// rather than about the server, the connection or the account: SQLSTATE
// classes 22 (data exception) and 23 (integrity constraint), and the data
// errors MariaDB reports as HY000. Such an error is the segment's fault.
func refusedData(err error) bool {
	var me *mysql.MySQLError
	if !errors.As(err, &me) {
		return false
	}
	state := string(me.SQLState[:])
	switch {
	case strings.HasPrefix(state, "22"), strings.HasPrefix(state, "23"):
		return true
	}
	switch me.Number {
	case 1265, // data truncated
		1292, // truncated incorrect value
		1300, // invalid character string
		1366, // incorrect string value
		1367, // illegal value found during parsing
		1411, // incorrect value for function
		1526, // table has no partition for value
		1690, // value out of range
		4025: // CHECK constraint failed
		return true
	}
	return false
}

// readerSeq makes Reader:: handler names unique in the process.
var readerSeq atomic.Uint64

// commit loads seg in one transaction.
func (w *worker) commit(ctx context.Context, j job, seg *segment, size int64, received time.Time) (result, error) {
	m := seg.manifest
	digest, err := hex.DecodeString(seg.digest)
	if err != nil || len(digest) != 32 {
		return result{}, fmt.Errorf("%w: digest %q", spool.ErrCorrupt, seg.digest)
	}
	var prev []byte
	if m.PrevDigest != "" {
		if prev, err = hex.DecodeString(m.PrevDigest); err != nil {
			return result{}, fmt.Errorf("%w: prev_digest %q", spool.ErrCorrupt, m.PrevDigest)
		}
	}
	conn, err := w.connection(ctx)
	if err != nil {
		return result{}, err
	}
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return result{}, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()

	// A host revoked since the pass began (deregister --purge-rows marks
	// hosts.status first, then deletes): the shared lock makes the purge
	// wait for this transaction, or this one see the revocation.
	var status sql.NullString
	switch err := tx.QueryRowContext(ctx, "SELECT status FROM hosts WHERE host_id = ? LOCK IN SHARE MODE", m.HostID).Scan(&status); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return result{}, fmt.Errorf("read host status: %w", err)
	case registry.Status(status.String) == registry.StatusRevoked:
		return result{}, fmt.Errorf("%w: %s was deregistered while loading", ErrRevoked, m.HostID)
	}
	if res, done, err := w.existing(ctx, tx, m, digest); done || err != nil {
		return res, err
	}
	// Chain: seq 1 starts a chain; otherwise compare with the ledger's
	// seq-1 if it is there.
	var chain sql.NullBool
	if m.Seq == 1 {
		chain = sql.NullBool{Bool: true, Valid: true}
	} else {
		var pd []byte
		err := tx.QueryRowContext(ctx, "SELECT digest FROM segments WHERE host_id = ? AND seq = ?", m.HostID, m.Seq-1).Scan(&pd)
		switch {
		case err == nil:
			chain = sql.NullBool{Bool: string(pd) == string(prev), Valid: true}
		case !errors.Is(err, sql.ErrNoRows):
			return result{}, fmt.Errorf("read ledger: %w", err)
		}
	}
	counters, _ := json.Marshal(m.Counters)
	modes := make([]string, 0, len(m.Modes))
	for k, v := range m.Modes {
		modes = append(modes, k+"="+v)
	}
	sort.Strings(modes)
	var prevArg any
	if prev != nil {
		prevArg = prev
	}
	ins, err := tx.ExecContext(ctx, `INSERT INTO segments (host_id, boot_id, seq, digest, prev_digest, chain_ok,
		ts_from, ts_to, tz_offset, modes, sealed_at, collector_version,
		rows_proc, rows_file, rows_sock, rows_gap, rows_acct, counters, file_name, file_bytes, received_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		m.HostID, m.BootID, m.Seq, digest, prevArg, chain,
		nsTime(m.MinTS), nsTime(m.MaxTS), m.TZOffset, truncate(strings.Join(modes, ","), 1024), m.Created.UTC(), truncate(m.CollectorVersion, 64),
		m.TableRows(event.TableProc), m.TableRows(event.TableFile), m.TableRows(event.TableSock),
		m.TableRows(event.TableGap), m.TableRows(event.TableAcct), string(counters), j.name, size, received.UTC())
	if err != nil {
		var me *mysql.MySQLError
		if errors.As(err, &me) && me.Number == 1062 { // duplicate: another loader got there first
			tx.Rollback()
			res, _, err := w.existing(ctx, w.conn, m, digest)
			return res, err
		}
		return result{}, fmt.Errorf("insert ledger row: %w", err)
	}
	id, err := ins.LastInsertId()
	if err != nil {
		return result{}, fmt.Errorf("insert ledger row: %w", err)
	}
	c := segConsts{SegmentID: uint64(id), HostID: m.HostID, BootID: m.BootID, TZOffset: m.TZOffset}
	var rows int64
	for _, ti := range tableInfos {
		want := m.TableRows(ti.table)
		if want == 0 {
			continue
		}
		n, err := w.loadTable(ctx, tx, ti, seg, c)
		if err != nil {
			return result{}, err
		}
		if n != want {
			return result{}, fmt.Errorf("%w: %s: database took %d rows, manifest has %d", ErrRejected, ti.sqlName, n, want)
		}
		rows += n
	}
	// The successor, if loaded before us, can now be checked (and a break
	// found this way is reported like any other).
	succBreak := false
	var succID uint64
	var succPrev []byte
	switch err := tx.QueryRowContext(ctx, "SELECT segment_id, prev_digest FROM segments WHERE host_id = ? AND seq = ? AND chain_ok IS NULL FOR UPDATE",
		m.HostID, m.Seq+1).Scan(&succID, &succPrev); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return result{}, fmt.Errorf("read successor chain: %w", err)
	default:
		ok := string(succPrev) == string(digest)
		succBreak = !ok
		if _, err := tx.ExecContext(ctx, "UPDATE segments SET chain_ok = ? WHERE segment_id = ?", ok, succID); err != nil {
			return result{}, fmt.Errorf("update successor chain: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return result{}, fmt.Errorf("commit: %w", err)
	}
	return result{outcome: loaded, rows: rows, bytes: size, chainBreak: chain.Valid && !chain.Bool, succBreak: succBreak}, nil
}

type queryer interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}

// existing looks (host, seq) up in the ledger: done is true if it is there,
// as a skip (same digest) or ErrFork (another digest); a digest the ledger
// holds under another (host, seq) is ErrReplay.
func (w *worker) existing(ctx context.Context, q queryer, m *spool.Manifest, digest []byte) (result, bool, error) {
	var have []byte
	var at time.Time
	err := q.QueryRowContext(ctx, "SELECT digest, loaded_at FROM segments WHERE host_id = ? AND seq = ?", m.HostID, m.Seq).Scan(&have, &at)
	if errors.Is(err, sql.ErrNoRows) {
		var other string
		var oseq uint64
		err := q.QueryRowContext(ctx, "SELECT host_id, seq FROM segments WHERE digest = ?", digest).Scan(&other, &oseq)
		if errors.Is(err, sql.ErrNoRows) {
			return result{}, false, nil
		}
		if err != nil {
			return result{}, true, fmt.Errorf("read ledger: %w", err)
		}
		if other == m.HostID && oseq == m.Seq {
			// Another loader committed this very segment between the two
			// reads.
			return result{outcome: skipped}, true, nil
		}
		return result{}, true, fmt.Errorf("%w: digest already loaded as %s seq %d", ErrReplay, other, oseq)
	}
	if err != nil {
		return result{}, true, fmt.Errorf("read ledger: %w", err)
	}
	if string(have) == string(digest) {
		return result{outcome: skipped}, true, nil
	}
	return result{}, true, fmt.Errorf("%w: host %s seq %d was loaded at %s with digest %x, this segment claims the same seq with digest %x",
		ErrFork, m.HostID, m.Seq, at.UTC().Format(time.RFC3339), have, digest)
}

// loadTable streams one table of seg into LOAD DATA and checks that every
// row went in unchanged. It returns the rows taken.
func (w *worker) loadTable(ctx context.Context, tx *sql.Tx, ti tableInfo, seg *segment, c segConsts) (int64, error) {
	rec, err := seg.record(ti.table)
	if err != nil {
		return 0, err
	}
	if err := checkSchema(ti.table, rec); err != nil {
		return 0, err
	}
	if err := checkValues(ti, rec); err != nil {
		return 0, err
	}
	r, err := newTSVReader(ti, rec, w.l.opt.Encoding)
	if err != nil {
		return 0, err
	}
	name := fmt.Sprintf("pofr-%d-%d", os.Getpid(), readerSeq.Add(1))
	mysql.RegisterReaderHandler(name, func() io.Reader { return r })
	defer mysql.DeregisterReaderHandler(name)
	res, err := tx.ExecContext(ctx, loadStatement(ti, rec.Schema(), w.l.opt.Encoding, name, c))
	if r.err != nil {
		return 0, r.err // the segment's fault, whatever the driver made of it
	}
	if err != nil {
		return 0, fmt.Errorf("load %s: %w", ti.sqlName, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("load %s: %w", ti.sqlName, err)
	}
	var warnings int
	if err := tx.QueryRowContext(ctx, "SELECT @@warning_count").Scan(&warnings); err != nil {
		return 0, fmt.Errorf("load %s: count warnings: %w", ti.sqlName, err)
	}
	if warnings > 0 {
		return 0, fmt.Errorf("%w: %s: %d warnings: %s", ErrRejected, ti.sqlName, warnings, showWarnings(ctx, tx))
	}
	return n, nil
}

// showWarnings returns the first warnings of the last statement, for the
// quarantine reason.
func showWarnings(ctx context.Context, tx *sql.Tx) string {
	rows, err := tx.QueryContext(ctx, "SHOW WARNINGS LIMIT 3")
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var level, msg string
		var code int
		if rows.Scan(&level, &code, &msg) == nil {
			out = append(out, fmt.Sprintf("%s %d %s", level, code, msg))
		}
	}
	return strings.Join(out, "; ")
}

// checkSchema checks a member's schema against the table's.
func checkSchema(table string, rec arrow.RecordBatch) error {
	err := event.CheckSchema(table, rec.Schema())
	if errors.Is(err, event.ErrUnknownTable) {
		return fmt.Errorf("%w: %w", ErrDecode, err)
	}
	return err
}

func nsTime(ns int64) time.Time { return time.Unix(0, ns).UTC() }

func truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) > n {
		s = s[:n]
	}
	return strings.ToValidUTF8(s, "")
}

// moveFile renames path into dir under name and makes the rename durable.
// Across file systems (an inbox linked to an OpenSSH chroot elsewhere) it
// copies to a temporary file in dir, syncs it, renames it to name, syncs dir
// and only then removes path: a crash in between leaves the file in both
// places, and the ledger makes the next run skip the inbox copy.
func moveFile(path, dir, name string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	dst := filepath.Join(dir, name)
	err := os.Rename(path, dst)
	if errors.Is(err, syscall.EXDEV) {
		err = copyAcross(path, dst)
	}
	if err != nil {
		return err
	}
	for _, d := range []string{dir, filepath.Dir(path)} {
		if err := durable.SyncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// copyAcross moves path to dst on another file system; see moveFile.
func copyAcross(path, dst string) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*.tmp")
	if err != nil {
		return err
	}
	_, err = io.Copy(tmp, in)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("copy %s to %s: %w", path, dst, err)
	}
	if err := durable.SyncDir(filepath.Dir(dst)); err != nil {
		return err
	}
	return os.Remove(path)
}

// quarantine moves j's file to the host's quarantine directory with a
// .reason file and records it in the quarantine table.
func (l *Loader) quarantine(ctx context.Context, j job, size int64, class Class, cause error, m *spool.Manifest, digest string) error {
	dir := l.opt.StateDir.Host(j.host).Quarantine
	name := j.name
	if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
		name = fmt.Sprintf("%s.%d", j.name, time.Now().UnixNano()) // keep the earlier one too
	}
	reason := fmt.Sprintf("class: %s\nfile: %s\nat: %s\nerror: %v\n", class, j.name, time.Now().UTC().Format(time.RFC3339Nano), cause)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("quarantine %s: %w", j.name, err)
	}
	if err := durable.WriteFile(filepath.Join(dir, name+".reason"), []byte(reason), 0o600); err != nil {
		return fmt.Errorf("quarantine %s: %w", j.name, err)
	}
	if err := moveFile(j.path, dir, name); err != nil {
		return fmt.Errorf("quarantine %s: %w", j.name, err)
	}
	var seq sql.NullInt64
	var dg []byte
	if m != nil {
		seq = sql.NullInt64{Int64: int64(m.Seq), Valid: true}
	}
	if d, err := hex.DecodeString(digest); err == nil && len(d) == 32 {
		dg = d
	}
	var dgArg any
	if dg != nil {
		dgArg = dg
	}
	if _, err := l.db.ExecContext(ctx, "INSERT INTO quarantine (host_id, file, class, reason, seq, digest, file_bytes) VALUES (?, ?, ?, ?, ?, ?, ?)",
		j.host, name, string(class), truncate(fmt.Sprint(cause), 60000), seq, dgArg, size); err != nil {
		// The file and its .reason are in place: that is the record that
		// matters; the row is a convenience.
		l.log.Error("record quarantine row", "segment", j.name, "err", err)
	}
	return nil
}
