package loader

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/pofr/pofr/schema"
	"github.com/pofr/pofr/spool"
)

// ErrGaleraConfig reports a server (a Galera node, or any server writing a
// row-based binary log) whose settings would make loads fail or quarantine
// good segments. The loader refuses to load into it.
var ErrGaleraConfig = errors.New("loader: database settings unsafe for loading")

// Galera (and row-based binary log) requirements, checked at the start of
// every pass on the node in use.
const (
	// MinWritesetRows is the least wsrep_max_ws_rows (0 = unlimited) that
	// takes any segment a collector makes: its rows, the ledger row and the
	// successor's chain update, in one transaction.
	MinWritesetRows = spool.MaxSegmentRows + 2
	// MinWritesetBytes is the least wsrep_max_ws_size: four times the
	// largest segment's estimated row bytes (the write set of a loaded
	// segment measured 1.08 times its estimate; see docs/design.md). The
	// server's default and maximum is 2 GiB.
	MinWritesetBytes = 4 * spool.MaxSegmentEstimate
)

// db returns the database (Galera node) in use.
func (l *Loader) db() *sql.DB { return l.dbs[l.cur.Load()] }

// FailoverWait is how long the loader keeps looking for a node in the
// primary component once the nodes it tries are gone or out of it. A
// cluster whose majority lives forms a new primary component within its
// own timeouts: evs.inactive_timeout (15 s by default) evicts a node that
// stopped answering and evs.install_timeout (7.5 s) bounds the view change,
// 22.5 s in all; measured here, 2–10 s (docs/design.md). Twice the 22.5 s,
// and more, covers a loaded server; past it the cluster needs an operator,
// and each segment is tried once on every node and counted failed (it stays
// in the inbox).
const FailoverWait = 60 * time.Second

// maxFailoverBackoff caps the pause between two tries of the nodes.
const maxFailoverBackoff = 2 * time.Second

// checkNode checks the schema version and the settings of the node in use,
// first failing over to the next node while the one in use is unreachable
// or out of the primary component.
func (l *Loader) checkNode(ctx context.Context) error {
	for try := 1; ; try++ {
		from := l.cur.Load()
		err := schema.Check(ctx, l.db())
		if err == nil {
			l.nodeFound()
			return checkSettings(ctx, l.db())
		}
		if !nodeLost(err) || !l.failover(from, err) {
			return err
		}
		if err := l.awaitNode(ctx, try, err); err != nil {
			return err
		}
	}
}

// failover moves from node from to the next one, unless another worker has
// already moved on. It reports whether there is another node.
func (l *Loader) failover(from int64, cause error) bool {
	if len(l.dbs) < 2 {
		return false
	}
	to := (from + 1) % int64(len(l.dbs))
	if l.cur.CompareAndSwap(from, to) {
		l.log.Warn("database node lost; failing over to the next node", "from", from+1, "to", to+1, "err", cause)
	}
	return true
}

// awaitNode decides, after the try'th node lost in a row (counted from 1),
// whether to try the next node: every node is tried once, and all of them
// again and again while the nodes have been lost for less than
// FailoverWait (the clock is the Loader's, shared by its workers and
// passes, so that a cluster down for good costs each segment one try of
// every node, not FailoverWait). It pauses before each try but the first,
// longer each time. It returns nil to try, or why not.
func (l *Loader) awaitNode(ctx context.Context, try int, cause error) error {
	now := time.Now()
	l.lostAt.CompareAndSwap(0, now.UnixNano())
	lost := now.Sub(time.Unix(0, l.lostAt.Load()))
	if try >= len(l.dbs) && lost >= FailoverWait {
		return fmt.Errorf("no database node in the primary component for %v (%d nodes, tried %d times): %w",
			lost.Round(time.Second), len(l.dbs), try, cause)
	}
	if try == 1 {
		return nil // the next node may well be fine: no pause
	}
	t := time.NewTimer(min(maxFailoverBackoff, 100*time.Millisecond<<min(try-2, 5)))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("%w (waiting for a database node: %w)", ctx.Err(), cause)
	case <-t.C:
		return nil
	}
}

// nodeFound ends the wait of awaitNode: a node answered.
func (l *Loader) nodeFound() {
	if l.lostAt.Load() == 0 {
		return
	}
	if at := l.lostAt.Swap(0); at != 0 {
		l.log.Info("database node in the primary component again", "node", l.cur.Load()+1,
			"after", time.Since(time.Unix(0, at)).Round(time.Millisecond))
	}
}

// nodeLost reports errors of a node that died or left the primary
// component (as opposed to errors of the segment or the transaction):
// lost or refused connections, 1047 "WSREP has not yet prepared node for
// application use" (any statement on a node out of the primary component),
// 1180 "Error while appending streaming replication fragment(provider
// status: Not connected to Primary Component)" (a commit there; 1180 itself
// is any error during COMMIT), a shutdown or a killed connection.
func nodeLost(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1047, 1053, 1927, 2002, 2006, 2013:
			return true
		}
		return strings.Contains(me.Message, "Primary Component") || strings.Contains(me.Message, "WSREP has not yet prepared")
	}
	var ne *net.OpError
	return errors.Is(err, mysql.ErrInvalidConn) || errors.Is(err, driver.ErrBadConn) || errors.As(err, &ne) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNREFUSED)
}

// checkSettings refuses a server whose binary log or Galera settings would
// break loads: with row-based replication (always on a Galera node) and
// binlog_row_image=FULL, the virtual proc_events.cmdline column is evaluated
// for every row and a non-UTF-8 argv raises warning 1300, which quarantines
// the segment; a write set limit below the largest segment fails that
// segment whole, again and again.
func checkSettings(ctx context.Context, db *sql.DB) error {
	vars := map[string]string{}
	rows, err := db.QueryContext(ctx, `SHOW VARIABLES WHERE Variable_name IN
		('log_bin', 'binlog_format', 'binlog_row_image', 'wsrep_on', 'wsrep_max_ws_rows', 'wsrep_max_ws_size')`)
	if err != nil {
		return fmt.Errorf("read server settings: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return fmt.Errorf("read server settings: %w", err)
		}
		vars[strings.ToLower(k)] = strings.ToUpper(v)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read server settings: %w", err)
	}
	galera := vars["wsrep_on"] == "ON"
	rowLog := galera || (vars["log_bin"] == "ON" && vars["binlog_format"] == "ROW")
	var problems []string
	if img := vars["binlog_row_image"]; rowLog && img != "NOBLOB" && img != "MINIMAL" {
		problems = append(problems, fmt.Sprintf("binlog_row_image is %s: set binlog_row_image=NOBLOB (or MINIMAL) on every node "+
			"(with FULL row images the virtual column proc_events.cmdline is evaluated for every row, a non-UTF-8 argv raises "+
			"warning 1300 and the segment is quarantined)", img))
	}
	if galera {
		if n, err := strconv.ParseUint(vars["wsrep_max_ws_rows"], 10, 64); err == nil && n != 0 && n < MinWritesetRows {
			problems = append(problems, fmt.Sprintf("wsrep_max_ws_rows is %d: set it to 0 (unlimited) or at least %d, the rows of the largest segment a collector makes", n, MinWritesetRows))
		}
		if n, err := strconv.ParseUint(vars["wsrep_max_ws_size"], 10, 64); err == nil && n < MinWritesetBytes {
			problems = append(problems, fmt.Sprintf("wsrep_max_ws_size is %d: set it to at least %d (the default, 2 GiB, is fine); a larger segment fails whole", n, MinWritesetBytes))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrGaleraConfig, strings.Join(problems, "; "))
	}
	return nil
}
