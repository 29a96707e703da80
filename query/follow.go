package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/pofr/pofr/internal/durable"
)

// FollowSink is where Follow writes: the documents of one segment, then
// Commit, which makes them durable (flush, fsync) before the cursor moves
// past the segment. Mark and Rewind let a sink drop a partly written
// segment: Rewind(Mark()) returns to the end of the last committed segment
// (a file truncates to it); a sink that cannot (a pipe) returns an error.
type FollowSink interface {
	io.Writer
	Commit() error
	Position() (name string, offset int64)
	Rewind(name string, offset int64) error
}

// DeliverySink is a FollowSink that delivers a segment in batches before
// Commit (an HTTP endpoint, syslog): Write sends a full batch and waits for
// it to be acknowledged, which is the backpressure on the reader. Follow
// calls BeginSegment before each segment with the number of the segment's
// documents delivered before a restart, which the sink drops, and a
// function the sink calls after each acknowledged batch with the number
// delivered so far; Follow keeps that in the cursor, so a restart neither
// skips nor repeats a document of a partly delivered segment.
type DeliverySink interface {
	FollowSink
	BeginSegment(skip int64, acked func(docs int64) error)
}

// FollowArgs configure Follow.
type FollowArgs struct {
	Export ExportArgs // table, host, bulk lines; Segment and Range are set by Follow
	// CursorFile keeps the position across restarts (written with fsync
	// after every segment). Required.
	CursorFile string
	// Interval is the wait between polls of the ledger when nothing is new.
	Interval time.Duration
	// HoleWait is how long a ledger id missing below committed ones is
	// waited for (a loader transaction still open) before it is taken as
	// rolled back or removed and passed.
	HoleWait time.Duration
	// Retry is the wait after a failed write or query before trying again.
	Retry time.Duration
	// Log, when not nil, gets one line per retry.
	Log func(msg string, err error)
}

// followCursor is the content of the cursor file: every segment id at or
// below Low, and those in Done, are exported; Sink and Offset are where the
// sink stood after the last of them.
type followCursor struct {
	Table  string   `json:"table"`
	Low    uint64   `json:"low"`
	Done   []uint64 `json:"done"`
	Sink   string   `json:"sink,omitempty"`
	Offset int64    `json:"offset"`
	// Seg's first SegDocs documents are delivered (a DeliverySink).
	Seg     uint64 `json:"seg,omitempty"`
	SegDocs int64  `json:"seg_docs,omitempty"`
}

// Follow writes the rows of every committed segment (ledger row) of one
// table to sink, one whole segment at a time, until ctx ends. The loader
// commits a segment's rows with its ledger row in one transaction, so a
// segment is exported only once it is complete. Ledger ids are handed out
// in order but may commit out of order (several loader workers), so the
// cursor is a low-water id plus the set of exported ids above it, not a
// single id. After each segment the sink commits (fsync) and then the
// cursor file is replaced atomically (fsync, rename, fsync directory): a
// crash between the two leaves the sink ahead of the cursor, and the
// restart rewinds the sink to the cursor's position, so no row is lost or
// repeated. Memory is bounded by one segment's rows in flight through the
// encoder; a slow sink slows the export, and a failing one is retried,
// except when it refused the credentials (ErrCredentials): Follow ends.
func (q *Querier) Follow(ctx context.Context, sink FollowSink, a FollowArgs) error {
	if a.CursorFile == "" {
		return errors.New("follow: no cursor file")
	}
	if !slices.Contains(ExportTables, a.Export.Table) {
		return fmt.Errorf("follow: unknown table %q", a.Export.Table)
	}
	if a.Interval <= 0 {
		a.Interval = time.Second
	}
	if a.Retry <= 0 {
		a.Retry = time.Second
	}
	if a.HoleWait <= 0 {
		a.HoleWait = 10 * time.Minute
	}
	cur, err := readFollowCursor(a.CursorFile)
	if err != nil {
		return err
	}
	if cur.Table != "" && cur.Table != a.Export.Table {
		return fmt.Errorf("follow: cursor file %s is of table %s, not %s", a.CursorFile, cur.Table, a.Export.Table)
	}
	cur.Table = a.Export.Table
	if cur.Sink != "" || cur.Offset != 0 {
		if err := sink.Rewind(cur.Sink, cur.Offset); err != nil {
			return fmt.Errorf("follow: rewind sink to the cursor: %w", err)
		}
	} else if cur.Sink, cur.Offset = sink.Position(); cur.Sink != "" || cur.Offset != 0 {
		// A first start on a sink that can rewind: its position is
		// written before any row, so that a follower killed before its
		// first cursor write rewinds to it on restart instead of writing
		// its rows again.
		if err := writeFollowCursor(a.CursorFile, cur); err != nil {
			return err
		}
	}
	done := map[uint64]bool{}
	for _, id := range cur.Done {
		done[id] = true
	}
	holeSince := map[uint64]time.Time{}
	wait := func(d time.Duration) error {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		}
	}
	for {
		ids, err := q.followPending(ctx, cur.Low, done)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			a.logf("follow: list segments", err)
			if err := wait(a.Retry); err != nil {
				return err
			}
			continue
		}
		for _, id := range ids {
			for {
				if ds, ok := sink.(DeliverySink); ok {
					skip := int64(0)
					if cur.Seg == id {
						skip = cur.SegDocs
					}
					ds.BeginSegment(skip, func(docs int64) error {
						cur.Seg, cur.SegDocs = id, docs
						return writeFollowCursor(a.CursorFile, cur)
					})
				}
				err := q.followSegment(ctx, sink, a, id)
				if err == nil {
					break
				}
				var re *rewindError
				if errors.As(err, &re) {
					return fmt.Errorf("follow: segment %d: %w", id, re.err)
				}
				if errors.Is(err, ErrCredentials) {
					return fmt.Errorf("follow: segment %d: %w", id, err)
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				a.logf(fmt.Sprintf("follow: segment %d", id), err)
				if err := wait(a.Retry); err != nil {
					return err
				}
			}
			done[id] = true
			cur.Low = advanceLow(cur.Low, done, holeSince, a.HoleWait, time.Now())
			cur.Sink, cur.Offset = sink.Position()
			cur.Seg, cur.SegDocs = 0, 0
			cur.Done = cur.Done[:0]
			for d := range done {
				cur.Done = append(cur.Done, d)
			}
			slices.Sort(cur.Done)
			if err := writeFollowCursor(a.CursorFile, cur); err != nil {
				return err
			}
		}
		if low := advanceLow(cur.Low, done, holeSince, a.HoleWait, time.Now()); low != cur.Low {
			cur.Low = low
			continue // written with the next segment
		}
		if len(ids) == 0 {
			if err := wait(a.Interval); err != nil {
				return err
			}
		}
	}
}

func (a *FollowArgs) logf(msg string, err error) {
	if a.Log != nil {
		a.Log(msg, err)
	}
}

// advanceLow moves the low-water id past ids that are exported, and past a
// hole once it has been open longer than holeWait; it forgets ids at or
// below the new low.
func advanceLow(low uint64, done map[uint64]bool, holeSince map[uint64]time.Time, holeWait time.Duration, now time.Time) uint64 {
	for len(done) > 0 {
		next := low + 1
		if done[next] {
			delete(done, next)
			low = next
			continue
		}
		since, ok := holeSince[next]
		if !ok {
			holeSince[next] = now
			break
		}
		if now.Sub(since) < holeWait {
			break
		}
		delete(holeSince, next)
		low = next
	}
	for h := range holeSince {
		if h <= low {
			delete(holeSince, h)
		}
	}
	return low
}

// followPending lists up to 1000 committed segment ids above low that are
// not exported yet, in id order.
func (q *Querier) followPending(ctx context.Context, low uint64, done map[uint64]bool) ([]uint64, error) {
	var out []uint64
	after := low
	for len(out) < 1000 {
		rows, err := q.DB.QueryContext(ctx, "SELECT segment_id FROM segments WHERE segment_id > ? ORDER BY segment_id LIMIT 1000", after)
		if err != nil {
			return nil, err
		}
		n := 0
		for rows.Next() {
			var id uint64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, err
			}
			n++
			after = id
			if !done[id] {
				out = append(out, id)
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, err
		}
		if n < 1000 {
			break
		}
	}
	return out, nil
}

// followSegment writes one segment's rows and commits the sink; on error it
// rewinds the sink to where the segment began.
func (q *Querier) followSegment(ctx context.Context, sink FollowSink, a FollowArgs, id uint64) error {
	name, off := sink.Position()
	e := a.Export
	e.Segment, e.Range = id, Range{}
	_, err := q.Export(ctx, sink, e)
	if err == nil {
		err = sink.Commit()
	}
	if err != nil {
		if rerr := sink.Rewind(name, off); rerr != nil {
			return &rewindError{fmt.Errorf("%w (and rewinding the sink: %v)", err, rerr)}
		}
		return err
	}
	return nil
}

func readFollowCursor(path string) (followCursor, error) {
	var c followCursor
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("follow: %w", err)
	}
	if len(b) > 64<<20 {
		return c, fmt.Errorf("follow: cursor file %s: too large", path)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("follow: cursor file %s: %w", path, err)
	}
	return c, nil
}

// writeFollowCursor replaces the cursor file atomically and durably.
func writeFollowCursor(path string, c followCursor) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if err := durable.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("follow: cursor: %w", err)
	}
	return nil
}

// rewindError is a failed segment that the sink could not take back: Follow
// ends rather than write it again after its part.
type rewindError struct{ err error }

func (e *rewindError) Error() string { return e.err.Error() }
