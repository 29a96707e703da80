package fanotify

import (
	"context"
	"os"
	"strconv"
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
	procDir, err := os.Open("/proc")
	if err != nil {
		return
	}
	names, _ := procDir.Readdirnames(-1)
	procDir.Close()
	var lb [unix.PathMax]byte
	for _, name := range names {
		pid64, err := strconv.ParseInt(name, 10, 32)
		if err != nil {
			continue
		}
		pid := int32(pid64)
		if pid == s.opts.SelfPID {
			continue
		}
		fdDir := "/proc/" + name + "/fd/"
		d, err := os.Open(fdDir)
		if err != nil {
			continue // gone, or a kernel thread we may not read
		}
		fds, _ := d.Readdirnames(-1)
		d.Close()
		var info collector.ProcInfo
		known := false
		if s.opts.Procs != nil && len(fds) > 0 {
			info, known = s.opts.Procs.Lookup(pid)
		}
		for _, fd := range fds {
			n, err := unix.Readlink(fdDir+fd, lb[:])
			if err != nil || n <= 0 || n >= len(lb) || lb[0] != '/' {
				continue // sockets, pipes, anon inodes
			}
			path := lb[:n]
			s.events.Add(1)
			if pathExcluded(path, s.opts.ExcludeDirs, s.opts.Profile.Exclude) {
				s.excluded.Add(1)
				continue
			}
			start := event.Opt[int64]{}
			if known {
				start = event.Some(info.Start)
			}
			r, isNew := s.agg.add(pid, start, event.FileFDOpen, path, nil, ts)
			if !isNew {
				continue
			}
			r.Flags |= event.FileFlagFallback
			if known {
				r.UID = info.EUID
			} else {
				r.Flags |= event.FileFlagProcUnknown
			}
			var st unix.Stat_t
			if unix.Stat(fdDir+fd, &st) == nil {
				r.Inode, r.Dev = event.Some(st.Ino), event.Some(st.Dev)
				if st.Mode&unix.S_IFMT == unix.S_IFDIR {
					r.Flags |= event.FileFlagDir
				}
			}
		}
	}
}
