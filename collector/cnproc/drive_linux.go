package cnproc

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pofr/pofr/collector/tracepoint"
)

// driveState is the tracepoint reader's side of Drive: the queues of other
// sources (fanotify) it drains at each of its drains, so that their events
// cost no wakeup of their own (docs/design.md, "One drain for every queue").
type driveState struct {
	mu     sync.Mutex // held by the reader while it runs the drains
	queues []*drivenQueue
	set    *tracepoint.Set // polls the queues' fds while idle
	// ok is closed once the reader takes queues, done once it stops (or
	// the capture is not the tracepoint one).
	initOnce, okOnce, endOnce sync.Once
	ok, done                  chan struct{}
	tid                       atomic.Int32 // the reader's thread while it runs the drains, else 0
	// pinned is the reader's thread when the reader is locked to it for
	// good (a raised reader), else 0. Only the reader uses it.
	pinned int32
}

type drivenQueue struct {
	fd    int
	drain func() (bool, time.Time)
	stop  chan struct{} // closed when drain returned false
}

func (d *driveState) init() {
	d.initOnce.Do(func() { d.ok, d.done = make(chan struct{}), make(chan struct{}) })
}

// start is called by the reader once the capture is recording.
func (d *driveState) start(set *tracepoint.Set) {
	d.init()
	d.mu.Lock()
	d.set = set
	d.mu.Unlock()
	d.okOnce.Do(func() { close(d.ok) })
}

// end stops driving: Drive calls return and no drain runs after them.
func (d *driveState) end() {
	d.init()
	d.endOnce.Do(func() { close(d.done) })
}

// run calls every queue's drain (the reader goroutine), after peek, and
// returns the earliest time a queue needs its next drain (zero: none). An
// unpinned reader is locked to its thread meanwhile, so that inReader can
// tell its Lookups by the thread id.
func (d *driveState) run(peek func()) (due time.Time) {
	d.mu.Lock()
	if len(d.queues) > 0 {
		peek()
		tid := d.pinned
		if tid == 0 {
			runtime.LockOSThread()
			tid = int32(unix.Gettid())
		}
		d.tid.Store(tid)
		for _, q := range d.queues {
			ok, at := q.drain()
			if !ok {
				d.set.Unwatch(q.fd)
				close(q.stop)
				continue
			}
			if !at.IsZero() && (due.IsZero() || at.Before(due)) {
				due = at
			}
		}
		d.queues = slices.DeleteFunc(d.queues, func(q *drivenQueue) bool {
			select {
			case <-q.stop:
				return true
			default:
				return false
			}
		})
		d.tid.Store(0)
		if d.pinned == 0 {
			runtime.UnlockOSThread()
		}
	}
	d.mu.Unlock()
	return due
}

// inReader reports whether the caller is a drain run by the reader.
func (d *driveState) inReader() bool {
	t := d.tid.Load()
	return t != 0 && t == int32(unix.Gettid())
}

// Drive implements collector.QueueDriver: with the tracepoint capture
// recording, the reader thread calls drain at each of its drains, after the
// drain's forks and execs are in the table and the forks still in the rings
// are visible to Lookup, and wakes from idle when fd is readable.
func (s *Source) Drive(ctx context.Context, fd int, drain func() (bool, time.Time)) {
	d := &s.drive
	d.init()
	select {
	case <-ctx.Done():
		return
	case <-d.done:
		return
	case <-d.ok:
	}
	q := &drivenQueue{fd: fd, drain: drain, stop: make(chan struct{})}
	d.mu.Lock()
	select {
	case <-d.done:
		d.mu.Unlock()
		return
	default:
	}
	d.queues = append(d.queues, q)
	d.set.Watch(fd)
	d.mu.Unlock()
	d.set.Interrupt() // a reader asleep without fd must poll it
	select {
	case <-ctx.Done():
	case <-d.done:
	case <-q.stop:
		return // run removed it
	}
	d.mu.Lock()
	select {
	case <-q.stop: // removed by run meanwhile
	default:
		d.queues = slices.DeleteFunc(d.queues, func(x *drivenQueue) bool { return x == q })
		d.set.Unwatch(fd)
	}
	d.mu.Unlock()
}
