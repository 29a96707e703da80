package fanotify

import (
	"context"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pofr/pofr/collector"
	"github.com/pofr/pofr/internal/event"
)

// runFDScan is the fallback: every ScanInterval, list /proc/PID/fd of every
// process and count each open regular path (op "fd", flag fallback) in the
// window. A row's count is the number of samples the file was seen open in;
// accesses between samples are missed, as they were by POFR.
func (s *Source) runFDScan(ctx context.Context) error {
	s.log.Info("file source: /proc/PID/fd scans", "interval", s.opts.ScanInterval)
	tick := time.NewTicker(s.opts.ScanInterval)
	defer tick.Stop()
	window := time.Duration(s.opts.Profile.Window)
	if window < s.opts.ScanInterval {
		window = s.opts.ScanInterval
	}
	next := time.Now().Add(window)
	for {
		s.scanFDs()
		if now := time.Now(); !now.Before(next) || s.agg.len() >= fileAggMax {
			s.flush()
			next = now.Add(window)
		}
		select {
		case <-ctx.Done():
			s.flush()
			return nil
		case <-tick.C:
		}
	}
}

// scanFDs samples every process's descriptors once.
func (s *Source) scanFDs() {
	ts := s.now().UnixNano()
	pids, err := s.fs.PIDs()
	if err != nil {
		return
	}
	var lb [unix.PathMax]byte
	for _, pid := range pids {
		if pid == s.opts.SelfPID {
			continue
		}
		var info collector.ProcInfo
		known, looked := false, false
		s.fs.FDs(pid, lb[:], func(fd string, path []byte) bool {
			if len(path) >= len(lb) || path[0] != '/' {
				return true // sockets, pipes, anon inodes
			}
			if !looked && s.opts.Procs != nil {
				info, known = s.opts.Procs.Lookup(pid)
			}
			looked = true
			s.events.Add(1)
			if pathExcluded(path, s.opts.ExcludeDirs, s.opts.Profile.Exclude) {
				s.excluded.Add(1)
				return true
			}
			start := event.Opt[int64]{}
			if known {
				start = event.Some(info.Start)
			}
			r, isNew := s.agg.add(pid, start, event.FileFDOpen, path, nil, ts)
			if !isNew {
				return true
			}
			r.Flags |= event.FileFlagFallback
			if known {
				r.UID = info.EUID
			} else {
				r.Flags |= event.FileFlagProcUnknown
			}
			var st unix.Stat_t
			if unix.Stat(s.fs.PIDPath(pid, "fd/"+fd), &st) == nil {
				r.Inode, r.Dev = event.Some(st.Ino), event.Some(st.Dev)
				if st.Mode&unix.S_IFMT == unix.S_IFDIR {
					r.Flags |= event.FileFlagDir
				}
			}
			return true
		}) // an error: gone, or a kernel thread we may not read
	}
}
