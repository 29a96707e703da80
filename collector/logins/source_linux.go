package logins

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pofr/pofr/collector"
	"github.com/pofr/pofr/internal/defaults"
	"github.com/pofr/pofr/internal/event"
)

// Options configures a Source.
type Options struct {
	// Logins receives the login rows; Gaps the gap rows of truncations.
	Logins event.LoginSink
	Gaps   event.Sink
	// Wtmp and Btmp are the files read ("" : /var/log/wtmp, /var/log/btmp;
	// "-" : not read).
	Wtmp, Btmp string
	// FromStart reads the files' existing records at start; otherwise only
	// what is appended after it (a restart must not send the history again).
	FromStart bool
	// Poll is the period of the stat that backs inotify up (0: 5 s, or
	// WatchedPoll while inotify watches every directory).
	Poll time.Duration
	// Log receives warnings; nil discards.
	Log *slog.Logger
	// Driver, if set, reads the inotify descriptor at its own drain ticks for as long as
	// it drives it (the tracepoint process reader: no wakeup of this
	// source's own; docs/design.md, "One drain for every queue"). May be nil.
	Driver collector.QueueDriver
}

// Stats are a Source's counters.
type Stats struct {
	Records   uint64 // rows sent
	Rotations uint64 // a file replaced by a new one (read to its end first)
	Truncated uint64 // a file shorter than what was read (records may be lost: gap row)
	Partial   uint64 // reads that ended inside a record (its rest read later)
}

// Source reads wtmp and btmp as they grow.
type Source struct {
	opts                                   Options
	files                                  []*tail
	records, rotations, truncated, partial atomic.Uint64
}

// WatchedPoll is the default period of the stat that backs inotify up when
// every directory is watched: it only covers what inotify cannot see (a
// directory mounted over, a network file system), and each stat is a
// wakeup of an idle collector (docs/design.md, "Idle wakeups").
const WatchedPoll = time.Minute

// tail is one file being followed.
type tail struct {
	path string
	name string // wtmp or btmp
	f    *os.File
	ino  uint64
	off  int64
	last []byte // the record ending at off, to tell a rewrite from growth
}

// New returns a Source.
func New(opts Options) (*Source, error) {
	if opts.Logins == nil || opts.Gaps == nil {
		return nil, errors.New("logins: Logins and Gaps are required")
	}
	defaults.Zero(&opts.Wtmp, "/var/log/wtmp")
	defaults.Zero(&opts.Btmp, "/var/log/btmp")
	defaults.Zero(&opts.Log, slog.New(slog.DiscardHandler))
	s := &Source{opts: opts}
	for _, f := range []struct{ path, name string }{{opts.Wtmp, "wtmp"}, {opts.Btmp, "btmp"}} {
		if f.path != "-" {
			s.files = append(s.files, &tail{path: f.path, name: f.name})
		}
	}
	return s, nil
}

// Stats returns the counters.
func (s *Source) Stats() Stats {
	return Stats{Records: s.records.Load(), Rotations: s.rotations.Load(), Truncated: s.truncated.Load(), Partial: s.partial.Load()}
}

// Run follows the files until ctx ends.
func (s *Source) Run(ctx context.Context) error {
	for _, t := range s.files {
		s.open(t, !s.opts.FromStart)
	}
	defer func() {
		for _, t := range s.files {
			if t.f != nil {
				t.f.Close()
			}
		}
	}()
	wake := make(chan struct{}, 1)
	watched := false
	if fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK); err == nil {
		dirs := map[string]bool{}
		for _, t := range s.files {
			dirs[filepath.Dir(t.path)] = true
		}
		watched = true
		for d := range dirs {
			if _, err := unix.InotifyAddWatch(fd, d, unix.IN_MODIFY|unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE); err != nil {
				s.opts.Log.Warn("logins: inotify watch failed; polling", "dir", d, "err", err)
				watched = false
			}
		}
		go s.watch(ctx, fd, wake)
	} else {
		s.opts.Log.Warn("logins: inotify unavailable; polling", "err", err)
	}
	poll := s.opts.Poll
	switch {
	case poll > 0:
	case watched:
		poll = WatchedPoll // inotify tells of every write
	default:
		poll = 5 * time.Second
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		for _, t := range s.files {
			s.read(t)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-tick.C:
		}
	}
}

// watch turns inotify events into wake-ups (coalesced), closing fd at ctx end.
func (s *Source) watch(ctx context.Context, fd int, wake chan<- struct{}) {
	defer unix.Close(fd)
	buf := make([]byte, 4096)
	if s.opts.Driver != nil {
		s.opts.Driver.Drive(ctx, fd, func() (bool, time.Time) {
			n, err := unix.Read(fd, buf)
			if err != nil && !errors.Is(err, unix.EAGAIN) {
				return false, time.Time{}
			}
			if n > 0 {
				select {
				case wake <- struct{}{}:
				default:
				}
			}
			return true, time.Time{}
		})
	}
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for ctx.Err() == nil {
		n, err := unix.Poll(pfd, 200)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
		if n <= 0 {
			continue
		}
		if _, err := unix.Read(fd, buf); err != nil && !errors.Is(err, unix.EAGAIN) {
			return
		}
		select {
		case wake <- struct{}{}:
		default:
		}
	}
}

// open (re)opens t's path, at its end if atEnd.
func (s *Source) open(t *tail, atEnd bool) {
	f, err := os.Open(t.path)
	if err != nil {
		return
	}
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil {
		f.Close()
		return
	}
	t.f, t.ino, t.off, t.last = f, st.Ino, 0, nil
	if atEnd && st.Size >= RecordSize {
		t.off = st.Size - st.Size%RecordSize
		t.last = make([]byte, RecordSize)
		if _, err := f.ReadAt(t.last, t.off-RecordSize); err != nil {
			t.last = nil
		}
	}
}

// rewritten reports whether t's file no longer holds what was read: shorter
// than the offset, or another record where the last one read was (truncated
// and written again past the old offset between two reads).
func (s *Source) rewritten(t *tail) bool {
	var st unix.Stat_t
	if unix.Fstat(int(t.f.Fd()), &st) != nil {
		return false
	}
	if st.Size < t.off {
		return true
	}
	if t.last == nil {
		return false
	}
	b := make([]byte, RecordSize)
	if _, err := t.f.ReadAt(b, t.off-RecordSize); err != nil {
		return true
	}
	return !bytes.Equal(b, t.last)
}

// read sends the complete records appended to t since the last read, and
// follows a rotation or a truncation.
func (s *Source) read(t *tail) {
	if t.f == nil {
		s.open(t, false) // created after the start: everything in it is new
		if t.f == nil {
			return
		}
	}
	if s.rewritten(t) {
		s.truncated.Add(1)
		now := time.Now().UnixNano()
		s.opts.Gaps.AppendGap(&event.Gap{FromTS: now, ToTS: now, Source: event.SourceLogin,
			Reason: t.name + " truncated or rewritten below what was read: records appended before that may be lost"})
		t.off, t.last = 0, nil
	}
	s.drain(t)
	var st unix.Stat_t
	if err := unix.Stat(t.path, &st); err == nil && st.Ino != t.ino {
		// Rotated: what the old file got since was read just now through
		// the open descriptor; the new file is read from its start.
		s.rotations.Add(1)
		t.f.Close()
		t.f = nil
		s.open(t, false)
		if t.f != nil {
			s.drain(t)
		}
	}
}

// drain reads whole records from t.off to the end of the file.
func (s *Source) drain(t *tail) {
	buf := make([]byte, 64*RecordSize)
	for {
		n, err := t.f.ReadAt(buf, t.off)
		whole := n - n%RecordSize
		for i := 0; i < whole; i += RecordSize {
			if r, ok := Parse(buf[i : i+RecordSize]); ok {
				s.send(t.name, &r)
			}
		}
		t.off += int64(whole)
		if whole > 0 {
			t.last = append(t.last[:0], buf[whole-RecordSize:whole]...)
		}
		if n%RecordSize != 0 && (err == io.EOF || n < len(buf)) {
			s.partial.Add(1)
		}
		if err != nil || n < len(buf) {
			return
		}
	}
}

func (s *Source) send(file string, r *Record) {
	l := Row(file, r)
	s.opts.Logins.AppendLogin(&l)
	s.records.Add(1)
}

// Row turns a record of file (wtmp or btmp) into a login row.
func Row(file string, r *Record) event.Login {
	kind := event.LoginOther
	switch {
	case file == "btmp":
		kind = event.LoginFailed
	case r.Type == utUserProcess:
		kind = event.LoginLogin
	case r.Type == utDeadProcess:
		kind = event.LoginLogout
	case r.Type == utBootTime:
		kind = event.LoginBoot
	case r.Type == utRunLevel:
		kind = event.LoginRunLvl
	}
	return event.Login{TS: r.TimeNS(), Kind: kind, File: file, UTType: int32(r.Type), PID: r.PID, TTY: r.Line,
		UTID: r.ID, User: r.User, RemoteHost: r.Host, RemoteAddr: r.AddrBytes(), Session: r.Session}
}
