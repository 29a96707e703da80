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
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/go-sql-driver/mysql"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/spool"
)

// worker loads segments on its own connection.
type worker struct {
	l    *Loader
	conn *sql.Conn
	node int64 // the Loader's node index conn is on
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
	w.node = w.l.cur.Load()
	c, err := w.l.dbs[w.node].Conn(ctx)
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
		p.res.outcome, p.err = failed, err // logged by the pass, unless cut off
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
	lost := 0    // nodes lost in a row
	retries := 0 // deadlocks and lock wait timeouts retried
	for {
		res, err = w.commit(ctx, j, seg, p.size, p.mtime)
		if err != nil && nodeLost(err) && l.failover(w.node, err) { // w.node: the node commit used
			// The node died or is out of the primary component (the
			// cluster may be reforming): retry on the next node, and
			// on, until awaitNode gives up. The transaction either
			// committed on the cluster (the ledger has it: skipped) or
			// not at all.
			lost++
			w.dropConn()
			if werr := l.awaitNode(ctx, lost, err); werr != nil {
				err = werr
				break
			}
			if lost == 1 {
				log.Warn("retry segment on the next node", "err", err)
			} else {
				log.Debug("retry segment on the next node", "err", err, "try", lost)
			}
			continue
		}
		if err == nil || !nodeLost(err) {
			l.nodeFound()
		}
		if err == nil || !retryable(err) || retries == 2 {
			break
		}
		retries++
		log.Debug("retry segment", "err", err, "attempt", retries+1)
	}
	switch {
	case err == nil:
	case !cutOff(ctx) && classify(err) != "": // an error of a pass cut off is never the segment's
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
	if res.outcome == loaded && l.opt.RemoteAddrs != nil {
		offerRemotes(seg, l.opt.RemoteAddrs)
	}
	return res, nil
}

// offerRemotes hands the remote addresses of seg's sock rows to o.
func offerRemotes(seg *segment, o AddrOfferer) {
	if seg.manifest.TableRows(event.TableSock) == 0 {
		return
	}
	rec, err := seg.record(event.TableSock)
	if err != nil {
		return
	}
	i := rec.Schema().FieldIndices("remote_addr")
	if len(i) != 1 {
		return
	}
	col, ok := rec.Column(i[0]).(*array.Binary)
	if !ok {
		return
	}
	for r := 0; r < col.Len(); r++ {
		if col.IsValid(r) {
			if a, ok := netip.AddrFromSlice(col.Value(r)); ok {
				o.Offer(a)
			}
		}
	}
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
		rows_proc, rows_file, rows_sock, rows_gap, rows_acct, rows_dns, counters, file_name, file_bytes, received_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		m.HostID, m.BootID, m.Seq, digest, prevArg, chain,
		nsTime(m.MinTS), nsTime(m.MaxTS), m.TZOffset, truncate(strings.Join(modes, ","), 1024), m.Created.UTC(), truncate(m.CollectorVersion, 64),
		m.TableRows(event.TableProc), m.TableRows(event.TableFile), m.TableRows(event.TableSock),
		m.TableRows(event.TableGap), m.TableRows(event.TableAcct), m.TableRows(event.TableDNS), string(counters), j.name, size, received.UTC())
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
		switch ti.table {
		case event.TableDNS:
			err = w.loadDNSNames(ctx, tx, seg, c)
		case event.TableExe:
			err = mergeExeIDs(ctx, tx, c.SegmentID, m.HostID, n)
		}
		if err != nil {
			return result{}, err
		}
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
	return loadStream(ctx, tx, ti.sqlName, r, func() error { return r.err }, func(name string) string {
		return loadStatement(ti, rec.Schema(), w.l.opt.Encoding, name, c)
	})
}

// loadStream runs the LOAD DATA statement stmt(name) with r registered as
// Reader::name in tx, and returns the rows it took; readErr is r's own
// error (the segment's fault, whatever the driver made of it). Any warning
// refuses the load (ErrRejected).
func loadStream(ctx context.Context, tx *sql.Tx, table string, r io.Reader, readErr func() error, stmt func(name string) string) (int64, error) {
	name := fmt.Sprintf("pofr-%d-%d", os.Getpid(), readerSeq.Add(1))
	mysql.RegisterReaderHandler(name, func() io.Reader { return r })
	defer mysql.DeregisterReaderHandler(name)
	res, err := tx.ExecContext(ctx, stmt(name))
	if err := readErr(); err != nil {
		return 0, err
	}
	if err != nil {
		return 0, fmt.Errorf("load %s: %w", table, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("load %s: %w", table, err)
	}
	var warnings int
	if err := tx.QueryRowContext(ctx, "SELECT @@warning_count").Scan(&warnings); err != nil {
		return 0, fmt.Errorf("load %s: count warnings: %w", table, err)
	}
	if warnings > 0 {
		return 0, fmt.Errorf("%w: %s: %d warnings: %s", ErrRejected, table, warnings, showWarnings(ctx, tx))
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

// retryable reports deadlocks and lock wait timeouts.
func retryable(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205)
}
