package metrics

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pofr/pofr/internal/statedir"
)

// Ledger is a prometheus.Collector that reads the custody ledger
// (segments, quarantine, gaps, hosts) on each scrape and, with a state
// directory, the inboxes waiting to be loaded.
type Ledger struct {
	db       *sql.DB
	stateDir statedir.Dir
	timeout  time.Duration
	log      *slog.Logger
	now      func() time.Time
}

// NewLedger returns the ledger collector over db (the reader or loader
// account). stateDir may be empty (the ui has none): then the inbox
// metrics are left out. db may be nil: then only the inbox metrics are
// collected (load with a shard map: one ledger per shard, labeled with
// Labeled, and one inbox). log may be nil.
func NewLedger(db *sql.DB, stateDir statedir.Dir, log *slog.Logger) *Ledger {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Ledger{db: db, stateDir: stateDir, timeout: 10 * time.Second, log: log, now: time.Now}
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// The ledger's metrics; docs/operations.md lists them.
var (
	ledgerUp          = desc("pofr_ledger_up", "1 if the last scrape read the ledger, 0 if the database failed.")
	segmentsLoaded    = desc("pofr_segments_loaded_total", "Segments in the ledger (loaded), by host.", "host")
	segmentsQuar      = desc("pofr_segments_quarantined_total", "Segments quarantined by the loader, by reason (quarantine class).", "reason")
	rowsLoaded        = desc("pofr_rows_loaded_total", "Rows loaded, by table.", "table")
	chainBreaks       = desc("pofr_chain_breaks_total", "Ledger rows whose hash chain link is broken (segments.chain_ok = 0), by host.", "host")
	gapsTotal         = desc("pofr_gaps_total", "Gap rows (intervals a host's record is incomplete), by reason (the gap's source: proc, file, sock, spool, collector).", "reason")
	gapLost           = desc("pofr_gap_lost_events_total", "Events (spool: rows) the gap rows say were lost, by reason.", "reason")
	hostLastSegment   = desc("pofr_host_last_segment_timestamp_seconds", "End (latest event time) of the newest segment loaded for a host, Unix seconds.", "host")
	hostsByStatus     = desc("pofr_hosts", "Hosts in the database, by status (active, revoked).", "status")
	lastLoad          = desc("pofr_last_load_timestamp_seconds", "When the newest ledger row was committed, Unix seconds.")
	inboxSegments     = desc("pofr_inbox_segments", "Segment files waiting in the inboxes to be loaded.")
	loadLag           = desc("pofr_load_lag_seconds", "Age of the oldest segment file waiting in the inboxes (0 when none waits): how far loading is behind.")
	ledgerScrapeSecs  = desc("pofr_ledger_scrape_duration_seconds", "Time the last scrape spent reading the ledger.")
	ledgerDescriptors = []*prometheus.Desc{ledgerUp, segmentsLoaded, segmentsQuar, rowsLoaded, chainBreaks, gapsTotal, gapLost,
		hostLastSegment, hostsByStatus, lastLoad, inboxSegments, loadLag, ledgerScrapeSecs}
)

// Describe implements prometheus.Collector.
func (l *Ledger) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range ledgerDescriptors {
		inboxDesc := d == inboxSegments || d == loadLag
		if inboxDesc && l.stateDir != "" || !inboxDesc && l.db != nil {
			ch <- d
		}
	}
}

// Collect implements prometheus.Collector: a few aggregate queries, each
// one scan of a small table (the ledger has one row per segment; gaps and
// quarantine are small), bounded by a timeout.
func (l *Ledger) Collect(ch chan<- prometheus.Metric) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	if l.db != nil {
		err := l.collectDB(ctx, ch)
		up := 1.0
		if err != nil {
			up = 0
			l.log.Warn("metrics: read ledger", "err", err)
		}
		ch <- prometheus.MustNewConstMetric(ledgerUp, prometheus.GaugeValue, up)
	}
	if l.stateDir != "" {
		n, oldest, err := inbox(l.stateDir)
		if err != nil {
			l.log.Warn("metrics: list inboxes", "err", err)
		} else {
			lag := 0.0
			if n > 0 {
				lag = max(0, l.now().Sub(oldest).Seconds())
			}
			ch <- prometheus.MustNewConstMetric(inboxSegments, prometheus.GaugeValue, float64(n))
			ch <- prometheus.MustNewConstMetric(loadLag, prometheus.GaugeValue, lag)
		}
	}
	if l.db != nil {
		ch <- prometheus.MustNewConstMetric(ledgerScrapeSecs, prometheus.GaugeValue, time.Since(start).Seconds())
	}
}

// collectDB reads the ledger. Times are DATETIME in UTC; they are turned
// into Unix seconds by arithmetic (TIMESTAMPDIFF from the epoch), not
// UNIX_TIMESTAMP, which would read them in the session's time zone.
func (l *Ledger) collectDB(ctx context.Context, ch chan<- prometheus.Metric) error {
	// Per host: segments, chain breaks, newest event time.
	err := l.query(ctx, `SELECT host_id, COUNT(*), COALESCE(SUM(chain_ok = 0), 0), TIMESTAMPDIFF(MICROSECOND, '1970-01-01', MAX(ts_to)) / 1e6 FROM segments GROUP BY host_id`,
		func(rs *sql.Rows) error {
			var host string
			var n, breaks float64
			var last sql.NullFloat64
			if err := rs.Scan(&host, &n, &breaks, &last); err != nil {
				return err
			}
			ch <- prometheus.MustNewConstMetric(segmentsLoaded, prometheus.CounterValue, n, host)
			ch <- prometheus.MustNewConstMetric(chainBreaks, prometheus.CounterValue, breaks, host)
			if last.Valid {
				ch <- prometheus.MustNewConstMetric(hostLastSegment, prometheus.GaugeValue, last.Float64, host)
			}
			return nil
		})
	if err != nil {
		return err
	}
	err = l.query(ctx, `SELECT COALESCE(SUM(rows_proc), 0), COALESCE(SUM(rows_file), 0), COALESCE(SUM(rows_sock), 0),
		COALESCE(SUM(rows_gap), 0), COALESCE(SUM(rows_acct), 0), TIMESTAMPDIFF(MICROSECOND, '1970-01-01', MAX(loaded_at)) / 1e6 FROM segments`,
		func(rs *sql.Rows) error {
			var proc, file, sock, gap, acct float64
			var last sql.NullFloat64
			if err := rs.Scan(&proc, &file, &sock, &gap, &acct, &last); err != nil {
				return err
			}
			for _, r := range []struct {
				table string
				n     float64
			}{{"proc_events", proc}, {"file_events", file}, {"sock_events", sock}, {"gaps", gap}, {"accounts", acct}} {
				ch <- prometheus.MustNewConstMetric(rowsLoaded, prometheus.CounterValue, r.n, r.table)
			}
			if last.Valid {
				ch <- prometheus.MustNewConstMetric(lastLoad, prometheus.GaugeValue, last.Float64)
			}
			return nil
		})
	if err != nil {
		return err
	}
	// Per label: one value per descriptor.
	for _, c := range []struct {
		q     string
		t     prometheus.ValueType
		descs []*prometheus.Desc
	}{
		{`SELECT class, COUNT(*) FROM quarantine GROUP BY class`, prometheus.CounterValue, []*prometheus.Desc{segmentsQuar}},
		{`SELECT COALESCE(source, 'unknown'), COUNT(*), COALESCE(SUM(lost), 0) FROM gaps GROUP BY 1`, prometheus.CounterValue, []*prometheus.Desc{gapsTotal, gapLost}},
		{`SELECT status, COUNT(*) FROM hosts GROUP BY status`, prometheus.GaugeValue, []*prometheus.Desc{hostsByStatus}},
	} {
		err := l.query(ctx, c.q, func(rs *sql.Rows) error {
			var label string
			vals := make([]float64, len(c.descs))
			dst := []any{&label}
			for i := range vals {
				dst = append(dst, &vals[i])
			}
			if err := rs.Scan(dst...); err != nil {
				return err
			}
			for i, d := range c.descs {
				ch <- prometheus.MustNewConstMetric(d, c.t, vals[i], label)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (l *Ledger) query(ctx context.Context, q string, row func(*sql.Rows) error) error {
	rs, err := l.db.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("%s: %w", strings.Fields(q)[1], err)
	}
	defer rs.Close()
	for rs.Next() {
		if err := row(rs); err != nil {
			return err
		}
	}
	return rs.Err()
}

// inbox counts the segment files waiting in the inboxes of d and returns
// the modification time of the oldest (the time it arrived).
func inbox(d statedir.Dir) (n int, oldest time.Time, err error) {
	hosts, err := os.ReadDir(d.Inboxes())
	if errors.Is(err, os.ErrNotExist) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, err
	}
	for _, h := range hosts {
		ents, err := os.ReadDir(filepath.Join(d.Inboxes(), h.Name()))
		if err != nil {
			continue // not a directory, or gone meanwhile
		}
		for _, e := range ents {
			name := e.Name()
			if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".pofr") || !e.Type().IsRegular() {
				continue // uploads in progress, reason files, anything not ours
			}
			fi, err := e.Info()
			if err != nil {
				continue
			}
			n++
			if oldest.IsZero() || fi.ModTime().Before(oldest) {
				oldest = fi.ModTime()
			}
		}
	}
	return n, oldest, nil
}
