package bench

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/loader"
	"github.com/pofr/pofr/schema"
	"github.com/pofr/pofr/spool"
)

// LoadOptions configure MeasureLoad.
type LoadOptions struct {
	// DSN of an administrator on a database with the current schema. Bench
	// EMPTIES its tables (TRUNCATE) before each measurement.
	DSN string
	// Workers lists the worker counts to measure (default 1, 2, 4).
	Workers []int
	// Hosts, Segments (per host) and RowsPerSegment size the data (default
	// 2 hosts × 8 segments × 25000 rows of the mix of LoadRows).
	Hosts, Segments, RowsPerSegment int
	// Rounds is how many times each of loader and ceiling runs per worker
	// count, alternating which goes first; the best time counts (default 2).
	Rounds int
	// Log, if set, gets one line per measurement.
	Log *slog.Logger
}

// LoadResult is one measurement: the loader against the ceiling, a plain
// LOAD DATA LOCAL of the same rows pre-rendered as text into the same tables
// with the same indexes, one transaction per segment, on as many
// connections as the loader has workers.
type LoadResult struct {
	Workers  int
	Segments int
	Rows     int64
	// Loader is the wall time of Loader.Run (verify, decode, escape, load,
	// ledger, archive); Ceiling that of the plain load.
	Loader, Ceiling time.Duration
	// LoaderRowsPerSec, CeilingRowsPerSec and Ratio (loader / ceiling).
	LoaderRowsPerSec, CeilingRowsPerSec, Ratio float64
	// LoaderCPUPerMRows is the CPU time (user + system) of this process
	// during Loader.Run per million rows; CeilingCPUPerMRows the same for the
	// plain load (the driver's share).
	LoaderCPUPerMRows, CeilingCPUPerMRows float64
}

// String formats r as one line of a table.
func (r LoadResult) String() string {
	return fmt.Sprintf("workers %d: loader %.0f rows/s, ceiling %.0f rows/s, ratio %.2f; loader CPU %.2f s/Mrows (ceiling %.2f); %d rows in %d segments",
		r.Workers, r.LoaderRowsPerSec, r.CeilingRowsPerSec, r.Ratio, r.LoaderCPUPerMRows, r.CeilingCPUPerMRows, r.Rows, r.Segments)
}

// LoadRows returns n rows of a busy host's mix starting at base (ns): 30 %
// process events (fork, exec with argv, exit), 60 % file accesses, 10 %
// socket closes. Pids and proc_start follow the rows' time, as on a host:
// each process life's fork, exec and exit rows are three consecutive rows,
// and no life repeats in a later segment.
func LoadRows(base int64, n int) ([]event.Proc, []event.File, []event.Sock) {
	var procs []event.Proc
	var files []event.File
	var socks []event.Sock
	for i := range n {
		ts := base + int64(i)*1000
		life := (base/1000 + int64(i)) / 3 // fork, exec and exit rows of one process; files and sockets of it
		pid, start := int32(300+life%4_000_000), life*3000
		switch {
		case i%10 < 3:
			procs = append(procs, event.Proc{TS: ts, Event: []string{event.ProcFork, event.ProcExec, event.ProcExit}[i%3], PID: pid,
				TID: pid, PPID: 1, ProcStart: start, ParentStart: event.Some[int64](1), UID: 1000, EUID: 1000, GID: 1000, EGID: 1000,
				AUID: 1000, SessionID: 3, Comm: []byte("worker"), Exe: []byte("/usr/bin/worker"),
				Argv: fmt.Appendf(nil, "worker\x00--job\x00%d\x00--out\x00/srv/out/%d.json\x00", i, i%97), Cwd: []byte("/srv"),
				Cgroup: []byte("/system.slice/worker.service")})
		case i%10 < 9:
			files = append(files, event.File{TS: ts, LastTS: ts + 10, Count: 1, PID: pid, ProcStart: event.Some(start),
				UID: 1000, Op: []string{event.FileOpen, event.FileWrite, event.FileExec}[i%3],
				Path: fmt.Appendf(nil, "/srv/data/%d/file-%d", i%13, i%1009), Inode: event.Some(uint64(i)), Dev: event.Some[uint64](2049)})
		default:
			socks = append(socks, event.Sock{TS: ts, Event: event.SockClose, Proto: "tcp", Family: 4, State: "CLOSE", Direction: event.DirOut,
				LocalAddr: []byte{10, 0, 0, 1}, LocalPort: uint16(30000 + i%1000), RemoteAddr: []byte{192, 0, 2, byte(i)}, RemotePort: 443,
				Inode: event.Some(uint64(i)), Cookie: uint64(i), UID: 1000, PID: event.Some(pid), ProcStart: event.Some(start),
				BytesSent: event.Some(uint64(i)), BytesRecv: event.Some(uint64(2 * i)), FirstTS: event.Some(ts - 1e6), Flags: event.SockFlagFromDestroy})
		}
	}
	return procs, files, socks
}

// loadSegmentsDir writes opt's segments (WriteLoadSegments) into a new
// temporary state directory and returns it with the rows written; the
// caller removes it.
func loadSegmentsDir(opt LoadOptions) (string, int64, error) {
	src, err := os.MkdirTemp("", "pofr-bench-state-")
	if err != nil {
		return "", 0, err
	}
	rows, err := WriteLoadSegments(statedir.Dir(src), opt.Hosts, opt.Segments, opt.RowsPerSegment)
	if err != nil {
		os.RemoveAll(src)
		return "", 0, fmt.Errorf("write bench segments: %w", err)
	}
	return src, rows, nil
}

// prerenderedSegments is loadSegmentsDir with the segments also rendered
// as LOAD DATA text (prerender).
func prerenderedSegments(opt LoadOptions) (string, int64, []prerendered, error) {
	src, rows, err := loadSegmentsDir(opt)
	if err != nil {
		return "", 0, nil, err
	}
	pre, err := prerender(statedir.Dir(src))
	if err != nil {
		os.RemoveAll(src)
		return "", 0, nil, err
	}
	return src, rows, pre, nil
}

// WriteLoadSegments registers hosts bench-0… in the state directory and
// writes segments of LoadRows into their inboxes with the real spool
// writer. It returns the rows written.
func WriteLoadSegments(state statedir.Dir, hosts, segments, rowsPerSegment int) (int64, error) {
	var total int64
	base := time.Now().Truncate(time.Second).UnixNano()
	for h := range hosts {
		id := fmt.Sprintf("bench-%d", h)
		pub, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			return 0, err
		}
		if err := registry.Save(state, &registry.Host{HostID: id, SigningKey: pub, Status: registry.StatusActive, RegisteredAt: time.Now().UTC()}); err != nil {
			return 0, err
		}
		dir, err := os.MkdirTemp("", "pofr-bench-spool-")
		if err != nil {
			return 0, err
		}
		defer os.RemoveAll(dir)
		w, err := spool.Open(dir, spool.Options{HostID: id, BootID: "bench-boot", Key: priv, MaxSegmentAge: time.Hour, MaxSegmentBytes: 32 << 20, Quota: 4 << 30})
		if err != nil {
			return 0, err
		}
		for s := range segments {
			procs, files, socks := LoadRows(base+int64(s*rowsPerSegment)*1000, rowsPerSegment)
			event.AppendAll(w, procs, files, socks, nil, nil)
			if err := w.Seal(); err != nil {
				w.Close()
				return 0, err
			}
			total += int64(rowsPerSegment)
		}
		if err := w.Close(); err != nil {
			return 0, err
		}
		infos, err := spool.List(dir)
		if err != nil {
			return 0, err
		}
		for _, in := range infos {
			if err := os.Rename(in.Path, filepath.Join(state.Host(id).Inbox, in.Name)); err != nil {
				return 0, err
			}
		}
	}
	return total, nil
}

// prerendered is one segment's tables as LOAD DATA text.
type prerendered struct {
	id     uint64 // segment_id
	tables []loader.Rendered
}

// MeasureLoad measures the loader against the ceiling for each worker count.
func MeasureLoad(ctx context.Context, opt LoadOptions) ([]LoadResult, error) {
	if len(opt.Workers) == 0 {
		opt.Workers = []int{1, 2, 4}
	}
	if opt.Hosts <= 0 {
		opt.Hosts = 2
	}
	if opt.Segments <= 0 {
		opt.Segments = 8
	}
	if opt.RowsPerSegment <= 0 {
		opt.RowsPerSegment = 25000
	}
	if opt.Rounds <= 0 {
		opt.Rounds = 2
	}
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	db, err := loader.OpenDB(opt.DSN)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	src, rows, pre, err := prerenderedSegments(opt)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(src)
	now := time.Now()
	if _, err := schema.EnsurePartitions(ctx, db, now.AddDate(0, 0, -1), now.AddDate(0, 0, 2)); err != nil {
		return nil, err
	}
	var out []LoadResult
	for _, n := range opt.Workers {
		r := LoadResult{Workers: n, Segments: len(pre), Rows: rows}
		// Rounds alternate which of the two goes first; the best time of
		// each counts, so that a busy machine penalises both alike.
		for round := range opt.Rounds {
			for k := range 2 {
				if (k+round)%2 == 0 {
					d, cpu, err := benchCeiling(ctx, db, pre, n)
					if err != nil {
						return nil, fmt.Errorf("ceiling: %w", err)
					}
					if r.Ceiling == 0 || d < r.Ceiling {
						r.Ceiling, r.CeilingCPUPerMRows = d, cpu.Seconds()/float64(rows)*1e6
					}
				} else {
					d, cpu, err := benchLoader(ctx, db, src, n, rows, len(pre))
					if err != nil {
						return nil, fmt.Errorf("loader: %w", err)
					}
					if r.Loader == 0 || d < r.Loader {
						r.Loader, r.LoaderCPUPerMRows = d, cpu.Seconds()/float64(rows)*1e6
					}
				}
			}
		}
		r.LoaderRowsPerSec = float64(rows) / r.Loader.Seconds()
		r.CeilingRowsPerSec = float64(rows) / r.Ceiling.Seconds()
		r.Ratio = r.LoaderRowsPerSec / r.CeilingRowsPerSec
		log.Info("bench", "result", r.String())
		out = append(out, r)
	}
	return out, emptyTables(ctx, db)
}

// benchCeiling empties the tables and loads the pre-rendered text.
func benchCeiling(ctx context.Context, db *sql.DB, pre []prerendered, workers int) (time.Duration, time.Duration, error) {
	if err := emptyTables(ctx, db); err != nil {
		return 0, 0, err
	}
	cpu0, t0 := processCPU(), time.Now()
	err := loadPrerendered(ctx, db, pre, workers)
	return time.Since(t0), processCPU() - cpu0, err
}

// benchLoader empties the tables and runs the loader on a copy of src.
func benchLoader(ctx context.Context, db *sql.DB, src string, workers int, rows int64, segments int) (time.Duration, time.Duration, error) {
	if err := emptyTables(ctx, db); err != nil {
		return 0, 0, err
	}
	state, err := os.MkdirTemp("", "pofr-bench-run-")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(state)
	if err := os.CopyFS(state, os.DirFS(src)); err != nil {
		return 0, 0, err
	}
	l, err := loader.New(loader.Options{DB: db, StateDir: statedir.Dir(state), Workers: workers})
	if err != nil {
		return 0, 0, err
	}
	defer l.Close()
	cpu0, t0 := processCPU(), time.Now()
	sum, err := l.Run(ctx)
	d, cpu := time.Since(t0), processCPU()-cpu0
	if err != nil {
		return 0, 0, err
	}
	if sum.Rows != rows || sum.Loaded != segments {
		return 0, 0, fmt.Errorf("%s, want %d rows in %d segments", sum, rows, segments)
	}
	return d, cpu, nil
}

// prerender verifies every segment in the inboxes of state and renders its
// tables to text, outside any measurement.
func prerender(state statedir.Dir) ([]prerendered, error) {
	hosts, err := registry.List(state)
	if err != nil {
		return nil, err
	}
	var out []prerendered
	for _, h := range hosts {
		pub, err := h.SigningPublicKey()
		if err != nil {
			return nil, err
		}
		inbox := state.Host(h.HostID).Inbox
		ents, err := os.ReadDir(inbox)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			tables, err := loader.Render(filepath.Join(inbox, e.Name()), pub, h.HostID)
			if err != nil {
				return nil, err
			}
			out = append(out, prerendered{id: uint64(len(out) + 1), tables: tables})
		}
	}
	return out, nil
}

// loadPrerendered is the ceiling: each segment's text in one transaction
// of plain LOAD DATA statements, on `workers` connections.
func loadPrerendered(ctx context.Context, db *sql.DB, pre []prerendered, workers int) error {
	work := make(chan *prerendered)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := db.Conn(ctx)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			if _, err := conn.ExecContext(ctx, loader.SessionSQL); err != nil {
				errs <- err
				return
			}
			for p := range work {
				if err := loadOne(ctx, conn, p); err != nil {
					errs <- err
					for range work {
					}
					return
				}
			}
		}()
	}
	for i := range pre {
		work <- &pre[i]
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs
}

func loadOne(ctx context.Context, conn *sql.Conn, p *prerendered) error {
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, t := range p.tables {
		name := fmt.Sprintf("pofr-ceiling-%d", readerSeq.Add(1))
		text := t.Text
		mysql.RegisterReaderHandler(name, func() io.Reader { return bytes.NewReader(text) })
		_, err := tx.ExecContext(ctx, t.Statement(name, p.id))
		mysql.DeregisterReaderHandler(name)
		if err != nil {
			return err
		}
	}
	return tx.Commit()
}

// readerSeq makes the ceiling's Reader:: handler names unique.
var readerSeq atomic.Uint64

// processCPU returns the user + system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return rusageCPU(&ru)
}

// emptyTables truncates the ledger and every event table.
func emptyTables(ctx context.Context, db *sql.DB) error {
	for _, t := range []string{"segments", "proc_events", "file_events", "sock_events", "gaps", "accounts", "quarantine", "hosts"} {
		if _, err := db.ExecContext(ctx, "TRUNCATE TABLE "+t); err != nil {
			return fmt.Errorf("empty %s: %w", t, err)
		}
	}
	return nil
}
