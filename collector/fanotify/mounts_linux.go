package fanotify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pofr/pofr/internal/procfs"
)

// scanMounts marks every markable file system of /proc/self/mountinfo not
// marked yet, and forgets those no longer mounted.
func (s *Source) scanMounts() error {
	b, err := os.ReadFile(s.fs.Path("self/mountinfo"))
	if err != nil {
		return fmt.Errorf("read mount table: %w", err)
	}
	best := make(map[uint64]*procfs.Mount)
	var order []uint64
	mounts := procfs.ParseMountinfo(b)
	for i := range mounts {
		m := &mounts[i]
		if !fanMarkable(m) {
			continue
		}
		dev := unix.Mkdev(m.Major, m.Minor)
		cur, ok := best[dev]
		if !ok {
			order = append(order, dev)
		}
		if !ok || (cur.Root != "/" && m.Root == "/") {
			best[dev] = m
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, dev := range order {
		if s.devs[dev] {
			continue
		}
		m := best[dev]
		var st unix.Stat_t
		if err := unix.Stat(m.Point, &st); err != nil || st.Dev != dev {
			continue // covered by a later mount: its own line marks what is visible
		}
		var sfs unix.Statfs_t
		if err := unix.Statfs(m.Point, &sfs); err != nil {
			continue
		}
		s.devs[dev] = true
		err := unix.FanotifyMark(s.fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, s.mask, unix.AT_FDCWD, m.Point)
		if errors.Is(err, unix.EINVAL) && s.mask&unix.FAN_RENAME != 0 {
			// Before Linux 5.17: no FAN_RENAME; renames arrive as moved_from and moved_to.
			s.mask = s.mask&^unix.FAN_RENAME | unix.FAN_MOVED_FROM | unix.FAN_MOVED_TO
			s.renameV = false
			err = unix.FanotifyMark(s.fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, s.mask, unix.AT_FDCWD, m.Point)
		}
		if err != nil {
			s.log.Info("file source: file system not marked", "mount", m.Point, "type", m.FSType, "err", err)
			continue
		}
		s.fss[[2]int32{sfs.Fsid.Val[0], sfs.Fsid.Val[1]}] = &fanFS{point: m.Point, dev: dev}
		s.log.Debug("file source: file system marked", "mount", m.Point, "type", m.FSType)
	}
	for id, fs := range s.fss {
		if _, ok := best[fs.dev]; !ok {
			delete(s.fss, id) // unmounted: the kernel removed the mark with the super block
			delete(s.devs, fs.dev)
		}
	}
	for dev := range s.devs {
		if _, ok := best[dev]; !ok {
			delete(s.devs, dev)
		}
	}
	s.nfs.Store(int64(len(s.fss)))
	return nil
}

// watchMounts rescans the mount table whenever the kernel signals a change
// on /proc/self/mountinfo, until ctx ends. The file is registered with the
// runtime's netpoller, so the wait costs no wakeup while nothing is mounted
// (it was poll(2) with a 500 ms timeout to look at ctx: two wakeups a
// second, each with sysmon polling for the 10 ms the P stayed in the
// syscall; docs/design.md, "Idle wakeups").
func (s *Source) watchMounts(ctx context.Context) {
	f, err := os.Open(s.fs.Path("self/mountinfo"))
	if err != nil {
		s.log.Warn("file source: cannot watch mounts; new file systems will not be marked", "err", err)
		return
	}
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	if f.SetReadDeadline(time.Time{}) != nil {
		s.pollMounts(ctx, f, rc) // not in the netpoller
		return
	}
	defer context.AfterFunc(ctx, func() { f.SetReadDeadline(time.Unix(1, 0)) })()
	err = rc.Read(func(uintptr) bool {
		// The netpoller reports the file readable (edge-triggered) at each
		// change of the mount table; its own poll of the file clears the
		// change. The call that starts the wait rescans too: the file only
		// signals changes after its open, and a mount between the source's
		// first scan and that open would be missed.
		if ctx.Err() != nil {
			return true
		}
		if err := s.scanMounts(); err != nil {
			s.log.Warn("file source: rescan mounts", "err", err)
		}
		return false
	})
	if err != nil && ctx.Err() == nil {
		s.log.Warn("file source: watch mount table", "err", err)
	}
}

// pollMounts is watchMounts for a mount table the netpoller does not take:
// poll(2) for POLLPRI, waking every 500 ms to look at ctx.
func (s *Source) pollMounts(ctx context.Context, f *os.File, rc syscall.RawConn) {
	var fd int
	rc.Control(func(u uintptr) { fd = int(u) })
	io.Copy(io.Discard, f)
	// Changes are signalled from the open on: rescan what came before it.
	if err := s.scanMounts(); err != nil {
		s.log.Warn("file source: rescan mounts", "err", err)
	}
	for ctx.Err() == nil {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLPRI}}
		n, err := unix.Poll(pfd, 500)
		if err != nil && !errors.Is(err, unix.EINTR) {
			s.log.Warn("file source: poll mount table", "err", err)
			return
		}
		if n == 0 || pfd[0].Revents&(unix.POLLPRI|unix.POLLERR) == 0 {
			continue
		}
		f.Seek(0, io.SeekStart)
		io.Copy(io.Discard, f)
		if err := s.scanMounts(); err != nil {
			s.log.Warn("file source: rescan mounts", "err", err)
		}
	}
}
