package sockowner

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pofr/pofr/collector/tracepoint"
	"github.com/pofr/pofr/internal/defaults"
)

// DefaultRingBytes is each CPU's ring: about 3,600 records of 104 (TCP) or
// 112–128 (route) bytes plus their headers, 2 records per TCP connection
// and 1–3 per connected UDP socket. The rings are drained when the socket
// source needs owners (each batch of destroy notifications, each dump) and
// by Run when one is half full.
const DefaultRingBytes = 512 << 10

// Options configure [Open].
type Options struct {
	// UDP also opens the route lookup tracepoints (connected UDP owners).
	UDP bool
	// RingBytes is each CPU's ring size; zero means DefaultRingBytes.
	RingBytes int
	// Limits bound the join tables.
	Limits Limits
	// FS is the tracefs to read formats from; nil opens one.
	FS *tracepoint.FS
}

// SourceStats are a [Source]'s counters.
type SourceStats struct {
	Tracker Stats
	// Events lists the tracepoints open ("sys:name").
	Events []string
	// Samples, Lost and Bad come from the rings: samples read, samples the
	// kernel dropped (ring full), records that did not decode.
	Samples, Lost, Bad uint64
	// Syncs counts drains.
	Syncs uint64
}

// Source reads the connection-owner tracepoints through perf rings
// (package tracepoint) into a [Tracker]. The socket source calls Sync
// before it looks owners up with Lookup; Run drains under load in between.
// All methods are safe for concurrent use, so the sources of several
// network namespaces can share one Source.
type Source struct {
	mu     sync.Mutex
	set    *tracepoint.Set
	tr     *Tracker
	kinds  []int // per event index: kindState, kindRoute4, kindRoute6
	state  *StateLayout
	route  [2]*RouteLayout
	events []string
	sc     StateChange
	rt     Route
	syncs  uint64
	bad    uint64
	lost   uint64 // reported by Sync so far
	last   int64  // last expiry
}

const (
	kindState = iota
	kindRoute4
	kindRoute6
)

// Open opens the tracepoints on every CPU and starts recording. With UDP, a
// kernel without a route tracepoint still gets the others. Errors wrap the
// tracepoint package's (ErrPerm, ErrMemlock, ErrEvent): the caller then
// runs without connection owners from tracepoints, as before.
func Open(o Options) (*Source, error) {
	defaults.Positive(&o.RingBytes, DefaultRingBytes)
	try := [][]string{{eventState}}
	if o.UDP {
		try = [][]string{{eventState, eventRoute4, eventRoute6}, {eventState, eventRoute4}, {eventState}}
	}
	var errs []error
	for _, names := range try {
		s, err := open(o, names)
		if err == nil {
			return s, nil
		}
		errs = append(errs, err)
		if !errors.Is(err, tracepoint.ErrEvent) {
			break // no permission or no memory: fewer events will not help
		}
	}
	return nil, fmt.Errorf("open connection owner tracepoints: %w", errors.Join(errs...))
}

func open(o Options, names []string) (*Source, error) {
	evs := make([]tracepoint.Event, len(names))
	for i, n := range names {
		evs[i] = tracepoint.Event{Name: n, Filter: RouteFilter}
		if n == eventState {
			evs[i].Filter = StateFilter
		}
	}
	set, err := tracepoint.Open(tracepoint.Options{Events: evs, RingBytes: o.RingBytes, FS: o.FS})
	if err != nil {
		return nil, err
	}
	s := &Source{set: set, tr: NewTracker(o.Limits), events: names, kinds: make([]int, len(names))}
	for i, f := range set.Formats() {
		switch names[i] {
		case eventState:
			s.kinds[i] = kindState
			s.state, err = NewStateLayout(f)
		case eventRoute4:
			s.kinds[i] = kindRoute4
			s.route[0], err = NewRouteLayout(f, false)
		case eventRoute6:
			s.kinds[i] = kindRoute6
			s.route[1], err = NewRouteLayout(f, true)
		}
		if err != nil {
			set.Close()
			return nil, fmt.Errorf("%w: %v", tracepoint.ErrEvent, err)
		}
	}
	if err := set.Enable(); err != nil {
		set.Close()
		return nil, err
	}
	return s, nil
}

// Run drains the rings whenever one is half full, so that a burst of
// connections between two Syncs is not lost, until ctx ends. Under a light
// load it never wakes: the Syncs of the socket source drain the rings.
func (s *Source) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, s.set.Interrupt)
	defer stop()
	for ctx.Err() == nil {
		woken, err := s.set.Wait(-1)
		if err != nil {
			return fmt.Errorf("connection owner rings: %w", err)
		}
		if woken {
			s.mu.Lock()
			s.flush(time.Now().UnixNano())
			s.mu.Unlock()
		}
	}
	return nil
}

// flush moves everything in the rings into the tracker; s.mu is held.
func (s *Source) flush(now int64) {
	s.set.Flush(func(r *tracepoint.Record) {
		if r.Event < 0 {
			s.tr.Lost()
			return
		}
		s.handle(now, r.Event, &r.Sample)
	})
}

// Sync reads everything in the rings into the tracker and expires old
// entries (at most once a second). It returns the number of samples the
// kernel dropped since the previous Sync (rings full): owners of some
// connections of that interval will be unknown.
func (s *Source) Sync() (lost uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now().UnixNano()
	s.syncs++
	s.flush(now)
	if now-s.last >= int64(time.Second) {
		s.tr.Expire(now)
		s.last = now
	}
	total := s.set.Stats().Lost
	lost, s.lost = total-s.lost, total
	return lost
}

// Refresh reads everything in the rings into the tracker, leaving the loss
// accounting of Sync to its one caller (the socket source).
func (s *Source) Refresh() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flush(time.Now().UnixNano())
}

// handle feeds one sample to the tracker.
func (s *Source) handle(now int64, ev int, smp *tracepoint.Sample) {
	pid, tid := int32(smp.PID), int32(smp.TID)
	switch s.kinds[ev] {
	case kindState:
		if s.state.Decode(smp.Raw, &s.sc) != nil {
			s.bad++
			return
		}
		s.tr.StateChange(now, int64(smp.Time), pid, tid, &s.sc)
	case kindRoute4, kindRoute6:
		if s.route[s.kinds[ev]-kindRoute4].Decode(smp.Raw, &s.rt) != nil {
			s.bad++
			return
		}
		s.tr.Route(now, pid, tid, &s.rt)
	}
}

// AppearSettle is how old the newest record counted by Changes must be for
// it to be settled: the kernel writes the record just before it stores the
// socket's new state, so a dump started right after the record was read
// might still see the old state.
const AppearSettle = time.Millisecond

// Changes returns how many TCP records read so far could mean a socket that
// an inet_diag dump has not seen ([Tracker.Appeared]), plus the records the
// kernel dropped (any of them may have been one); and settled, false if the
// newest of them is younger than AppearSettle. It reads what Sync and the
// other drains brought in, not the rings.
func (s *Source) Changes() (n uint64, settled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, newest := s.tr.Appeared()
	return n + s.set.Stats().Lost, newest == 0 || int64(tracepoint.Now())-newest >= int64(AppearSettle)
}

// Lookup returns the owner of a connection (see [Tracker.Lookup]).
func (s *Source) Lookup(k Key, laddr [16]byte) (Owner, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tr.Lookup(k, laddr)
}

// Stats returns the counters.
func (s *Source) Stats() SourceStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := s.set.Stats()
	return SourceStats{Tracker: s.tr.Stats(), Events: s.events, Samples: rs.Samples, Lost: rs.Lost,
		Bad: rs.Bad + s.bad, Syncs: s.syncs}
}

// Close stops recording and releases the rings.
func (s *Source) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.set.Close()
}
