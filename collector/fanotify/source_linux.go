package fanotify

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/pofr/pofr/collector"
	"github.com/pofr/pofr/internal/defaults"
	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/procfs"
	"github.com/pofr/pofr/profiles"
)

// Source records which process opened, executed, wrote, created, deleted
// or renamed which file, from fanotify (or, where fanotify is unavailable,
// from /proc/PID/fd scans), and writes aggregated rows to a Sink.
//
// In fanotify mode it holds one notification group reporting directory
// handles and names (no descriptor per event) with one filesystem mark per
// real file system, and a bounded kernel queue whose overflow becomes a gap
// row. docs/design.md ("File source") explains the group, the path
// resolution, the queue and what the source costs the workloads it watches.
type Source struct {
	opts  Options
	fs    procfs.FS
	log   *slog.Logger
	now   func() time.Time
	mode  Mode
	batch time.Duration

	fd   int    // fanotify group (fanotify mode)
	mask uint64 // event mask of the filesystem marks

	mu      sync.RWMutex
	fss     map[[2]int32]*fanFS // marked file systems by fsid
	devs    map[uint64]bool     // st_dev marked or refused, so a rescan tries each once
	renameV bool                // FAN_RENAME works: renames arrive as one event

	opened   []*fanFS     // file systems whose mfd is open in this batch
	tap      func([]byte) // tests: sees every read buffer (captures testdata)
	cache    *fanDirCache
	agg      *fileAgg
	path     []byte
	newPath  []byte
	fidKey   []byte   // exe hasher key of an event's FID, reused
	ev       fanEvent // the event being decoded
	lastRead int64
	buf      []byte    // read buffer
	next     time.Time // end of the aggregation window

	events, rows, overflows, unresolved, self, excluded, execs, misses, corrupt atomic.Uint64
	nfs                                                                         atomic.Int64
}

// fanFS is a marked file system.
type fanFS struct {
	point string // a mount point of its root
	dev   uint64
	mfd   int // descriptor of point during a batch, 0 otherwise (see openHandle)
}

// New sets up the file source. In fanotify mode the marks are in
// place when it returns, so events from then on are queued even before Run.
// If fanotify cannot be used (no CAP_SYS_ADMIN, a kernel without
// FAN_REPORT_DFID_NAME, no file system could be marked) it logs a warning and
// returns a source in ModeFDScan.
func New(opts Options) (*Source, error) {
	if opts.Sink == nil {
		return nil, errors.New("new file source: no sink")
	}
	s := &Source{
		opts:  opts,
		fs:    procfs.New(opts.ProcRoot),
		log:   opts.Log,
		now:   opts.Now,
		batch: opts.BatchDelay,
		fd:    -1,
		fss:   make(map[[2]int32]*fanFS),
		devs:  make(map[uint64]bool),
		cache: newFanDirCache(8192),
		agg:   newFileAgg(),
	}
	defaults.Zero(&s.log, slog.New(slog.DiscardHandler))
	if s.now == nil {
		s.now = time.Now
	}
	if s.batch == 0 {
		s.batch = 10 * time.Millisecond
	}
	defaults.Positive(&s.opts.ScanInterval, time.Second)
	defaults.Positive(&s.opts.Profile.Window, profiles.Duration(time.Second))
	for i, d := range s.opts.ExcludeDirs {
		if d != "/" {
			s.opts.ExcludeDirs[i] = strings.TrimRight(d, "/")
		}
	}
	s.mode = ModeFDScan
	if opts.ForceFallback {
		return s, nil
	}
	if err := s.initFanotify(); err != nil {
		s.log.Warn("file source: fanotify unavailable, falling back to /proc/PID/fd scans: short-lived file accesses will be missed", "err", err)
		s.closeFanotify()
		return s, nil
	}
	s.mode = ModeFanotify
	return s, nil
}

// fanMask returns the event mask for the profile's ops. FAN_OPEN_EXEC is
// always on (the exe join needs it); FAN_RENAME and FAN_ONDIR are always on
// so that directory renames keep the path cache right.
func fanMask(p *profiles.File) uint64 {
	m := uint64(unix.FAN_OPEN_EXEC | unix.FAN_RENAME | unix.FAN_ONDIR)
	if p.HasOp("open") {
		m |= unix.FAN_OPEN
	}
	if p.HasOp("write") {
		m |= unix.FAN_CLOSE_WRITE
	}
	if p.HasOp("create") {
		m |= unix.FAN_CREATE
	}
	if p.HasOp("delete") {
		m |= unix.FAN_DELETE
	}
	return m
}

// initFanotify creates the group and places the marks.
func (s *Source) initFanotify() error {
	flags := uint(unix.FAN_CLASS_NOTIF | unix.FAN_CLOEXEC | unix.FAN_NONBLOCK | unix.FAN_REPORT_DFID_NAME | unix.FAN_REPORT_FID)
	sysctl := s.fs.Path("sys/fs/fanotify/max_queued_events")
	if q := s.opts.Profile.QueueSize; q > 0 {
		if old, err := readSysctlInt(sysctl); err == nil && old != q {
			if err := os.WriteFile(sysctl, []byte(strconv.Itoa(q)), 0); err != nil {
				s.log.Warn("file source: cannot set the fanotify queue size, keeping the kernel's", "want", q, "have", old, "err", err)
			} else {
				defer os.WriteFile(sysctl, []byte(strconv.Itoa(old)), 0)
			}
		}
	}
	// FAN_REPORT_TARGET_FID (Linux 5.17) adds the child's fid to create,
	// delete and rename events, which gives their rows an inode.
	fd, err := unix.FanotifyInit(flags|unix.FAN_REPORT_TARGET_FID, unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC)
	if errors.Is(err, unix.EINVAL) {
		fd, err = unix.FanotifyInit(flags, unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC)
	}
	if errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("fanotify_init: this kernel refuses FAN_REPORT_DFID_NAME (file events need Linux ≥ 5.9): %w", err)
	}
	if err != nil {
		return fmt.Errorf("fanotify_init: %w", err)
	}
	s.fd = fd
	s.mask = fanMask(&s.opts.Profile)
	s.renameV = true
	if err := s.scanMounts(); err != nil {
		return err
	}
	if s.nfs.Load() == 0 {
		return errors.New("mark file systems: no file system could be marked")
	}
	for _, d := range s.opts.ExcludeDirs {
		s.ignoreDir(d)
	}
	s.log.Info("file source: fanotify", "filesystems", s.nfs.Load(), "mask", fmt.Sprintf("%#x", s.mask),
		"rename_pairs", s.renameV, "ops", s.opts.Profile.Ops)
	return nil
}

func (s *Source) closeFanotify() {
	if s.fd >= 0 {
		unix.Close(s.fd)
	}
	s.fd = -1
}

func readSysctlInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// ignoreDir places an ignore mark on dir and its direct children, so that
// their events never enter the queue. Deeper levels are dropped in user space.
func (s *Source) ignoreDir(dir string) {
	mask := s.mask | unix.FAN_CLOSE_WRITE | unix.FAN_OPEN | unix.FAN_CREATE | unix.FAN_DELETE | unix.FAN_EVENT_ON_CHILD
	err := unix.FanotifyMark(s.fd, unix.FAN_MARK_ADD|unix.FAN_MARK_IGNORE_SURV, mask, unix.AT_FDCWD, dir)
	if errors.Is(err, unix.EINVAL) { // before Linux 6.0: the legacy ignored mask
		err = unix.FanotifyMark(s.fd, unix.FAN_MARK_ADD|unix.FAN_MARK_IGNORED_MASK|unix.FAN_MARK_IGNORED_SURV_MODIFY,
			mask&^(unix.FAN_RENAME|unix.FAN_ONDIR), unix.AT_FDCWD, dir)
	}
	if err != nil {
		s.log.Info("file source: no ignore mark, excluding in user space only", "dir", dir, "err", err)
	}
}

// Mode returns ModeFanotify or ModeFDScan.
func (s *Source) Mode() Mode { return s.mode }

// Stats returns the counters so far. It is safe to call while Run runs.
func (s *Source) Stats() Stats {
	return Stats{
		Mode:         s.mode,
		Filesystems:  int(s.nfs.Load()),
		Events:       s.events.Load(),
		Rows:         s.rows.Load(),
		Overflows:    s.overflows.Load(),
		Unresolved:   s.unresolved.Load(),
		Self:         s.self.Load(),
		Excluded:     s.excluded.Load(),
		ExecObserved: s.execs.Load(),
		CacheMisses:  s.misses.Load(),
		Corrupt:      s.corrupt.Load(),
	}
}

// Run reads events until ctx ends, then drains the queue, flushes the open
// window to the sink, releases the fanotify group and returns nil. A Source
// runs once.
func (s *Source) Run(ctx context.Context) error {
	if s.mode == ModeFDScan {
		return s.runFDScan(ctx)
	}
	defer s.closeFanotify()
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { s.watchMounts(wctx) })
	defer wg.Wait()
	defer stop()
	// The group's descriptor is not registered with the Go netpoller: an
	// epoll entry sits on the group's wait queue for good, and every queued
	// event then wakes the runtime thread blocked in epoll_wait, in the
	// context of the process that caused the event (about a fifth of a tar x
	// into tmpfs was spent there). Instead the reader blocks in poll(2) only
	// while the queue is empty; once events come it reads with non-blocking
	// reads every BatchDelay until the queue is empty again, with nobody on
	// the wait queue in between, so a burst costs its writers one wakeup.
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fmt.Errorf("create stop eventfd: %w", err)
	}
	defer unix.Close(efd)
	defer context.AfterFunc(ctx, func() {
		unix.Write(efd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	})()

	s.buf = make([]byte, 256<<10)
	buf := s.buf
	window := time.Duration(s.opts.Profile.Window)
	s.lastRead = s.now().UnixNano()
	s.next = time.Now().Add(window)
	if s.opts.Driver != nil {
		s.opts.Driver.Drive(ctx, s.fd, s.drainQueue)
	}
	next := s.next
	var batch *time.Timer
	for ctx.Err() == nil {
		n, err := unix.Read(s.fd, buf)
		if n > 0 {
			s.process(buf[:n])
		}
		switch {
		case n > 0, err == nil, errors.Is(err, unix.EINTR):
		case errors.Is(err, unix.EAGAIN):
			n = 0
		default:
			s.flush()
			return fmt.Errorf("read fanotify events: %w", err)
		}
		if now := time.Now(); !now.Before(next) || s.agg.len() >= fileAggMax {
			s.flush()
			next = now.Add(window)
		}
		switch {
		case n >= len(buf)/2:
			// More is probably queued: read again at once.
		case n > 0 && s.batch > 0:
			if batch == nil {
				batch = time.NewTimer(s.batch)
			} else {
				batch.Reset(s.batch)
			}
			select {
			case <-ctx.Done():
			case <-batch.C:
			}
		case n <= 0:
			// Empty: block until an event, the window's end or a stop.
			wait := max(time.Until(next), time.Millisecond)
			pfd := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}, {Fd: int32(efd), Events: unix.POLLIN}}
			if _, err := unix.Poll(pfd, int(wait.Milliseconds())+1); err != nil && !errors.Is(err, unix.EINTR) {
				s.flush()
				return fmt.Errorf("poll fanotify group: %w", err)
			}
		}
	}
	// Drain what is queued, so that a stop loses nothing already seen. On a
	// busy machine the queue refills as fast as it is read: stop after
	// stopDrainMax and say that the rest was not read.
	from, deadline := s.now().UnixNano(), time.Now().Add(stopDrainMax)
	for {
		if time.Now().After(deadline) {
			s.opts.Sink.AppendGap(&event.Gap{FromTS: from, ToTS: s.now().UnixNano(), Source: event.SourceFile,
				Reason: "collector stopping: fanotify events still queued were not read"})
			break
		}
		n, err := unix.Read(s.fd, buf)
		if n <= 0 || err != nil {
			break
		}
		s.process(buf[:n])
	}
	s.flush()
	return nil
}

// stopDrainMax bounds the read of what is queued when the source stops.
const stopDrainMax = 2 * time.Second

// drainQueue reads what the group has queued without blocking, and writes
// the window's rows when it is over: the Driver's reader calls it at each
// of its drains. A read error other than an empty queue ends the driving:
// Run's own loop then reports it. While the window holds rows, the end of
// the window is when it needs the next drain.
func (s *Source) drainQueue() (bool, time.Time) {
	for range 64 { // bounded: a flood must not hold the driver's drain
		// A raw read: the driver's thread keeps its P (it never blocks).
		n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(s.fd), uintptr(unsafe.Pointer(&s.buf[0])), uintptr(len(s.buf)))
		if e == unix.EAGAIN || e == unix.EINTR || e == 0 && int(n) <= 0 {
			break
		}
		if e != 0 {
			return false, time.Time{}
		}
		s.process(s.buf[:n])
		if int(n) < len(s.buf)/2 {
			break // the queue is empty (or nearly: the next drain)
		}
	}
	if now := time.Now(); !now.Before(s.next) || s.agg.len() >= fileAggMax {
		s.flush()
		s.next = now.Add(time.Duration(s.opts.Profile.Window))
	}
	if s.agg.len() > 0 {
		return true, s.next
	}
	return true, time.Time{}
}

// flush writes the window's rows to the sink.
func (s *Source) flush() {
	s.rows.Add(uint64(s.agg.flush(s.opts.Sink)))
}

// process decodes and handles one read buffer.
func (s *Source) process(b []byte) {
	ts := s.now().UnixNano()
	if s.tap != nil {
		s.tap(b)
	}
	if err := decodeFanotify(b, &s.ev, func(ev *fanEvent) { s.handle(ev, ts) }); err != nil {
		if s.corrupt.Add(1) == 1 {
			s.log.Warn("file source: undecodable fanotify buffer (further ones only counted)", "err", err)
		}
	}
	s.closeMounts()
	s.lastRead = ts
}

// handle turns one event into aggregated rows.
func (s *Source) handle(ev *fanEvent, ts int64) {
	s.events.Add(1)
	if ev.Mask&unix.FAN_Q_OVERFLOW != 0 {
		s.overflows.Add(1)
		s.cache.reset()
		if kh, ok := s.opts.Hash.(collector.ExecKeyHasher); ok {
			kh.ForgetExecKey(nil) // a write may have been dropped
		}
		s.opts.Sink.AppendGap(&event.Gap{FromTS: s.lastRead, ToTS: ts, Source: event.SourceFile,
			Reason: "fanotify queue overflow (FAN_Q_OVERFLOW): events dropped by the kernel"})
		return
	}
	if ev.FD >= 0 { // not in FID mode; never expected, but never leak a descriptor
		unix.Close(int(ev.FD))
	}
	if ev.Mask&unix.FAN_CLOSE_WRITE != 0 && ev.FID.valid() {
		if kh, ok := s.opts.Hash.(collector.ExecKeyHasher); ok {
			kh.ForgetExecKey(s.keyOf(&ev.FID)) // its next exec is stated again
		}
	}
	if ev.PID == s.opts.SelfPID && s.opts.SelfPID != 0 {
		s.self.Add(1)
		return
	}
	m := ev.Mask
	isDir := m&unix.FAN_ONDIR != 0
	if isDir && m&(unix.FAN_RENAME|unix.FAN_MOVED_FROM|unix.FAN_MOVED_TO) != 0 {
		s.cache.reset() // every cached path below the directory changed
	}
	if isDir && m&unix.FAN_DELETE != 0 && ev.FID.valid() {
		s.cache.drop(&ev.FID)
	}
	p := &s.opts.Profile
	switch {
	case m&unix.FAN_OPEN_EXEC != 0:
		path, ok := s.resolve(&ev.Name, &s.path)
		var exeKey uint64
		if s.opts.Hash != nil {
			var p []byte
			if ok {
				p = path
			}
			exeKey = s.hashExec(ev, ts, p)
		}
		if s.opts.Exec != nil && ok {
			s.execs.Add(1)
			s.opts.Exec.ObserveExecOpen(ev.PID, ts, path, exeKey)
		}
		if p.HasOp(event.FileExec) {
			s.record(ev, event.FileExec, path, ok, nil, &ev.FID, ts)
		}
	case m&unix.FAN_OPEN != 0 && p.HasOp(event.FileOpen):
		path, ok := s.resolve(&ev.Name, &s.path)
		s.record(ev, event.FileOpen, path, ok, nil, &ev.FID, ts)
	}
	if m&unix.FAN_CLOSE_WRITE != 0 && p.HasOp(event.FileWrite) {
		path, ok := s.resolve(&ev.Name, &s.path)
		s.record(ev, event.FileWrite, path, ok, nil, &ev.FID, ts)
	}
	if m&unix.FAN_CREATE != 0 && p.HasOp(event.FileCreate) {
		path, ok := s.resolve(&ev.Name, &s.path)
		s.record(ev, event.FileCreate, path, ok, nil, &ev.FID, ts)
	}
	if m&unix.FAN_DELETE != 0 && p.HasOp(event.FileDelete) {
		path, ok := s.resolve(&ev.Name, &s.path)
		s.record(ev, event.FileDelete, path, ok, nil, &ev.FID, ts)
	}
	if p.HasOp(event.FileRename) {
		if m&unix.FAN_RENAME != 0 {
			oldPath, ok1 := s.resolve(&ev.Old, &s.path)
			newPath, ok2 := s.resolve(&ev.New, &s.newPath)
			s.record(ev, event.FileRename, oldPath, ok1 && ok2, newPath, &ev.FID, ts)
		}
		if m&unix.FAN_MOVED_FROM != 0 {
			path, ok := s.resolve(&ev.Name, &s.path)
			s.record(ev, event.FileMoveFrom, path, ok, nil, &ev.FID, ts)
		}
		if m&unix.FAN_MOVED_TO != 0 {
			path, ok := s.resolve(&ev.Name, &s.path)
			s.record(ev, event.FileMoveTo, path, ok, nil, &ev.FID, ts)
		}
	}
}

// record adds one access to the window. resolved false means path is only
// the name and dir identifies its directory.
func (s *Source) record(ev *fanEvent, op string, path []byte, resolved bool, newPath []byte, obj *fanFID, ts int64) {
	if pathExcluded(path, s.opts.ExcludeDirs, s.opts.Profile.Exclude) &&
		(newPath == nil || pathExcluded(newPath, s.opts.ExcludeDirs, s.opts.Profile.Exclude)) {
		s.excluded.Add(1)
		return
	}
	var info collector.ProcInfo
	known := false
	if s.opts.Procs != nil {
		info, known = s.opts.Procs.Lookup(ev.PID)
	}
	start := event.Opt[int64]{}
	if known {
		start = event.Some(info.Start)
	}
	r, isNew := s.agg.add(ev.PID, start, op, path, newPath, ts)
	if !isNew {
		return
	}
	r.UID = event.NoID
	if known {
		r.UID = info.EUID
	} else {
		r.Flags |= event.FileFlagProcUnknown
	}
	if ev.Mask&unix.FAN_ONDIR != 0 {
		r.Flags |= event.FileFlagDir
	}
	dir := &ev.Name.Dir
	if op == event.FileRename {
		dir = &ev.Old.Dir
	}
	s.mu.RLock()
	fs := s.fss[dir.FSID]
	s.mu.RUnlock()
	if fs != nil {
		r.Dev = event.Some(fs.dev)
	}
	if !resolved {
		s.unresolved.Add(1)
		r.Flags |= event.FileFlagUnresolved
		if ino, ok := handleInode(dir); ok {
			r.Inode = event.Some(ino)
		}
		return
	}
	if obj.valid() {
		if ino, ok := handleInode(obj); ok {
			r.Inode = event.Some(ino)
		} else if fs != nil {
			if st, ok := s.statHandle(fs, obj); ok {
				r.Inode = event.Some(st.Ino)
			}
		}
	}
}

// resolve returns the path of a directory-plus-name record, built in *buf.
// If the directory cannot be resolved it returns the name alone and false.
func (s *Source) resolve(dn *fanDirName, buf *[]byte) ([]byte, bool) {
	if !dn.Dir.valid() {
		*buf = append((*buf)[:0], dn.Name...)
		return *buf, false
	}
	dir, ok := s.cache.get(&dn.Dir)
	if !ok {
		dir, ok = s.openDir(&dn.Dir)
		if ok {
			s.cache.put(&dn.Dir, dir)
		}
	}
	if !ok {
		*buf = append((*buf)[:0], dn.Name...)
		return *buf, false
	}
	*buf = joinPath((*buf)[:0], dir, dn.Name)
	return *buf, true
}

// openDir resolves a directory handle with open_by_handle_at and readlink of
// /proc/self/fd/N. A removed directory (ESTALE, or no links left) fails.
func (s *Source) openDir(f *fanFID) (string, bool) {
	s.misses.Add(1)
	s.mu.RLock()
	fs := s.fss[f.FSID]
	s.mu.RUnlock()
	if fs == nil {
		return "", false
	}
	fd, ok := s.openHandle(fs, f)
	if !ok {
		return "", false
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Nlink == 0 {
		return "", false
	}
	var lb [unix.PathMax]byte
	n, err := unix.Readlink(s.fs.Path("self/fd/"+strconv.Itoa(fd)), lb[:])
	if err != nil || n <= 0 || n >= len(lb) || lb[0] != '/' {
		return "", false
	}
	return string(lb[:n]), true
}

// openHandle opens f with O_PATH. open_by_handle_at needs a descriptor on
// the file system that is not O_PATH; the source opens the mount point on
// the first miss of a read batch and closes it at the end of the batch
// (closeMounts), so that it never holds a file system busy for longer than a
// batch takes: a held descriptor would make its unmount fail with EBUSY.
// That open is the source's own (SelfPID) event, dropped when read.
func (s *Source) openHandle(fs *fanFS, f *fanFID) (int, bool) {
	return s.openHandleFlags(fs, f, unix.O_PATH|unix.O_CLOEXEC)
}

// openHandleFlags is openHandle with the open flags given.
func (s *Source) openHandleFlags(fs *fanFS, f *fanFID, flags int) (int, bool) {
	if fs.mfd <= 0 {
		mfd, err := unix.Open(fs.point, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOATIME, 0)
		if err != nil {
			return -1, false
		}
		fs.mfd = mfd
		s.opened = append(s.opened, fs)
	}
	fd, err := unix.OpenByHandleAt(fs.mfd, unix.NewFileHandle(f.Type, f.Handle), flags)
	if err != nil {
		return -1, false
	}
	return fd, true
}

// hashExec hands an exec to the exe hasher. When the marks report
// FAN_CLOSE_WRITE (which drops a file's key) and the hasher keeps keys, an
// exec of a file already seen is counted by its FID alone: no
// open_by_handle_at, fstat and close for every exec (two per exec of a
// dynamic binary: the program and its ELF interpreter). It returns the
// file's identity key (event.ExeKey; 0 if unknown) for the exec row.
func (s *Source) hashExec(ev *fanEvent, ts int64, path []byte) uint64 {
	kh, ok := s.opts.Hash.(collector.ExecKeyHasher)
	if !ok || s.mask&unix.FAN_CLOSE_WRITE == 0 || !ev.FID.valid() {
		return s.opts.Hash.HashExec(s.openExec(&ev.FID), ev.PID, ts, path)
	}
	key := s.keyOf(&ev.FID)
	if exeKey, ok := kh.SeenExecKey(key, ev.PID, ts); ok {
		return exeKey
	}
	return kh.HashExecKey(s.openExec(&ev.FID), key, ev.PID, ts, path)
}

// keyOf returns the exe hasher key of f (fsid, handle type, handle) in
// s.fidKey.
func (s *Source) keyOf(f *fanFID) []byte {
	k := binary.LittleEndian.AppendUint32(s.fidKey[:0], uint32(f.FSID[0]))
	k = binary.LittleEndian.AppendUint32(k, uint32(f.FSID[1]))
	k = binary.LittleEndian.AppendUint32(k, uint32(f.Type))
	s.fidKey = append(k, f.Handle...)
	return s.fidKey
}

// openExec opens the executed file an exec event's handle names, read-only,
// for the hasher; -1 if it cannot.
func (s *Source) openExec(f *fanFID) int {
	if !f.valid() {
		return -1
	}
	s.mu.RLock()
	fs := s.fss[f.FSID]
	s.mu.RUnlock()
	if fs == nil {
		return -1
	}
	fd, ok := s.openHandleFlags(fs, f, unix.O_RDONLY|unix.O_CLOEXEC)
	if !ok {
		return -1
	}
	return fd
}

// closeMounts closes the mount point descriptors opened during a batch.
func (s *Source) closeMounts() {
	for _, fs := range s.opened {
		unix.Close(fs.mfd)
		fs.mfd = 0
	}
	clear(s.opened)
	s.opened = s.opened[:0]
}

// statHandle stats the object a handle names.
func (s *Source) statHandle(fs *fanFS, f *fanFID) (unix.Stat_t, bool) {
	var st unix.Stat_t
	fd, ok := s.openHandle(fs, f)
	if !ok {
		return st, false
	}
	defer unix.Close(fd)
	return st, unix.Fstat(fd, &st) == nil
}
