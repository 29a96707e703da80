package tracepoint

import (
	"errors"
	"fmt"
	"math/bits"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Errors of Open; the collector falls back to cn_proc on any of them and
// logs which.
var (
	// ErrPerm: perf_event_open was refused (no CAP_PERFMON or
	// CAP_SYS_ADMIN, a seccomp profile, lockdown).
	ErrPerm = errors.New("tracepoint: perf_event_open refused")
	// ErrMemlock: the rings exceed the locked-memory allowance.
	ErrMemlock = errors.New("tracepoint: ring memory over the locked-memory limit")
	// ErrEvent: a tracepoint or its filter was not accepted.
	ErrEvent = errors.New("tracepoint: bad event")
)

// Event is one tracepoint to open.
type Event struct {
	// Name is "sys:name", e.g. "sched:sched_process_exec".
	Name string
	// Filter is a kernel event filter (tracefs filter syntax over the
	// tracepoint's fields, e.g. "oldstate == 7 && newstate == 2"), applied
	// with PERF_EVENT_IOC_SET_FILTER; "" records every hit.
	Filter string
	// StackBytes, if positive, also samples the user stack pointer and that
	// many bytes of the user stack from it (PERF_SAMPLE_REGS_USER and
	// STACK_USER; rounded up to 8, at most MaxStackBytes). Ignored where the
	// stack pointer's register number is unknown (see Set.StackSampled).
	StackBytes int
}

// MaxStackBytes is the largest user-stack dump a sample can carry (a record's
// size is 16 bits).
const MaxStackBytes = 65528

// Options configure Open.
type Options struct {
	Events []Event
	// RingBytes is each CPU's ring data size, rounded up to a power of two
	// pages. Default 1 MiB.
	RingBytes int
	// Watermark is the number of bytes in a ring that makes Wait return;
	// default half the ring.
	Watermark int
	// FS is the tracefs to read formats from; default OpenFS (closed again
	// by Open).
	FS *FS
	// CPUs lists the CPUs to open rings on; default every online CPU.
	CPUs []int
	// Doorbell, if set ("sys:name"), is a tracepoint opened besides the
	// events on every CPU with its own one-page ring that wakes Wait at its
	// first hit, but only while armed (Arm): a caller that sleeps on a long
	// timer when idle learns at once that events flow again, and disarms it
	// while they do, so a busy host still sees no wakeup per event.
	Doorbell string
	// DoorbellAlso are more tracepoints that ring the doorbell (their
	// samples go to its ring).
	DoorbellAlso []string
}

// Record is what Drain hands to its handler: a sample of Events[Event], or,
// when Event is -1, a loss.
type Record struct {
	Event  int
	Sample Sample
	Lost   Lost
	// Bytes is the whole perf record as the kernel wrote it, for capture
	// into test data; it aliases the ring like Sample's slices.
	Bytes []byte
}

// Stats are a Set's counters since Open.
type Stats struct {
	Samples     uint64 // samples handed out
	Lost        uint64 // samples the kernel dropped (PERF_RECORD_LOST counts and Unreported)
	LostRecords uint64 // PERF_RECORD_LOST records
	// Unreported counts the losses of Lost that the events' lost counters
	// said before any lost record did (a ring that went quiet, or was
	// disabled, after dropping samples).
	Unreported uint64
	Bad        uint64 // records that did not decode (skipped)
	Bytes      uint64 // ring bytes consumed
	Drains     uint64
	Wakeups    uint64 // Wait returns because a ring reached its watermark
	// CPUsReopened counts rings opened after Open for CPUs that came
	// (back) online; CPUErrors the attempts that failed (retried).
	CPUsReopened, CPUErrors uint64
}

// Settle is how far behind the current time Drain stops: a sample is written
// a few µs after its timestamp is taken, so samples younger than this may
// still be in flight on another CPU, and are left for the next drain to
// keep the merge in time order.
const Settle = time.Millisecond

// Set is a set of tracepoints opened on every CPU, one ring per CPU. Drain
// and Flush must not be called concurrently with each other or with Stats;
// Wait may run in one goroutine while another drains (a reader woken by
// the watermark and one that drains on demand); Interrupt may be called
// from any goroutine.
type Set struct {
	events  []Event
	formats []*Format
	layouts []Layout
	ids     []uint16 // tracepoint id of events[i]
	rings   []*ring
	efd     int
	pfds    []unix.PollFd
	st      Stats
	wakeups atomic.Uint64 // Stats.Wakeups, counted by Wait
	closed  bool
	heap    []int  // ring indexes with a pending record, for the merge
	rec     Record // the record handed out, reused (a drain's own escaped to the heap)
	bells   []*ring
	armed   bool
	enabled bool
	// What openRing needs to open a CPU's ring later (checkCPUs).
	pages, page, wm int
	bellIDs         []uint16
	bellNames       []string
	lastCheck       uint64
	cpuCheckEvery   time.Duration // CPUCheckEvery; tests shorten it
	// noLostFormat: the kernel has no PERF_FORMAT_LOST (before 6.0), so a
	// loss comes out only when its ring writes the lost record.
	noLostFormat bool
	// pmu guards pfds and nring, which checkCPUs changes while Wait may
	// run; Wait polls its own copy, wpfds.
	pmu   sync.Mutex
	nring int // rings and doorbells in pfds
	nmain int // rings in pfds
	wpfds []unix.PollFd
	bpfds []unix.PollFd // Arm's poll of the doorbells
	extra []int         // Watch: polled while armed
}

// ring is one CPU's mmap'd buffer.
type ring struct {
	cpu     int
	fd      int
	mem     []byte
	meta    *unix.PerfEventMmapPage
	data    []byte
	mask    uint64
	tail    uint64 // next byte to read
	head    uint64 // data_head read at the start of this drain
	last    uint64 // time of the last record handed out
	scratch []byte // a record that wraps around the end, copied
	// The next record, parsed and not yet handed out.
	rec     []byte
	recTime uint64
	recType uint32
	fds     []int  // its events, fds[0] the one mapped
	enabled uint64 // the event's enabled time at the last check
	lost    lostLedger
	lostFmt bool // its events were opened with PERF_FORMAT_LOST
	on      bool // a doorbell: enabled (Arm)
}

// Open opens every event on every CPU, joins each CPU's outputs into one
// ring and maps it. Events stay disabled until Enable.
func Open(o Options) (*Set, error) {
	if len(o.Events) == 0 {
		return nil, fmt.Errorf("%w: no events", ErrEvent)
	}
	fs := o.FS
	if fs == nil {
		var err error
		if fs, err = OpenFS(); err != nil {
			return nil, err
		}
		defer fs.Close()
	}
	s := &Set{efd: -1, cpuCheckEvery: CPUCheckEvery}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	for _, ev := range o.Events {
		f, err := fs.event(ev.Name)
		if err != nil {
			return nil, err
		}
		for _, id := range s.ids {
			if id == f.ID {
				return nil, fmt.Errorf("%w: %s given twice", ErrEvent, ev.Name)
			}
		}
		var l Layout
		if ev.StackBytes > 0 && spRegMask != 0 {
			ev.StackBytes = min((ev.StackBytes+7)&^7, MaxStackBytes)
			l = Layout{Regs: bits.OnesCount64(spRegMask), Stack: true}
		} else {
			ev.StackBytes = 0
		}
		s.events, s.formats, s.layouts, s.ids = append(s.events, ev), append(s.formats, f), append(s.layouts, l), append(s.ids, f.ID)
	}
	cpus := o.CPUs
	if cpus == nil {
		var err error
		if cpus, err = onlineCPUs(); err != nil {
			return nil, err
		}
	}
	page := os.Getpagesize()
	pages := max(1, (o.RingBytes+page-1)/page)
	if o.RingBytes <= 0 {
		pages = (1 << 20) / page
	}
	pages = 1 << bits.Len(uint(pages-1)) // a power of two
	size := pages * page
	wm := o.Watermark
	if wm <= 0 || wm > size {
		wm = size / 2
	}
	raiseMemlock(len(cpus) * (pages + 1) * page)
	s.pages, s.page, s.wm = pages, page, wm
	for _, cpu := range cpus {
		r, err := s.openRing(cpu)
		if err != nil {
			if errors.Is(err, ErrMemlock) {
				return nil, fmt.Errorf("%w: %d CPUs × %d KiB rings: %v; grant CAP_IPC_LOCK, raise RLIMIT_MEMLOCK or kernel.perf_event_mlock_kb, or use smaller rings",
					ErrMemlock, len(cpus), (pages*page)>>10, errors.Unwrap(err))
			}
			return nil, err
		}
		s.rings = append(s.rings, r)
	}
	if o.Doorbell != "" {
		for _, name := range append([]string{o.Doorbell}, o.DoorbellAlso...) {
			f, err := fs.event(name)
			if err != nil {
				return nil, fmt.Errorf("doorbell: %w", err)
			}
			s.bellIDs, s.bellNames = append(s.bellIDs, f.ID), append(s.bellNames, name)
		}
		for _, cpu := range cpus {
			b, err := s.openBell(cpu)
			if err != nil {
				return nil, err
			}
			s.bells = append(s.bells, b)
		}
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	s.efd = efd
	s.setPollFDs()
	s.lastCheck = Now()
	ok = true
	return s, nil
}

// openRing opens every event on cpu, joins their outputs and maps the
// ring. The first event (the ring's) also reports its enabled time, which
// checkCPUs uses to find rings the kernel dropped.
func (s *Set) openRing(cpu int) (*ring, error) {
	r := &ring{cpu: cpu, fd: -1, lostFmt: !s.noLostFormat}
	ok := false
	defer func() {
		if !ok {
			r.close()
		}
	}()
	for i, ev := range s.events {
		attr := unix.PerfEventAttr{
			Type:        unix.PERF_TYPE_TRACEPOINT,
			Size:        uint32(unsafe.Sizeof(unix.PerfEventAttr{})),
			Config:      uint64(s.ids[i]),
			Sample:      1,
			Sample_type: unix.PERF_SAMPLE_TID | unix.PERF_SAMPLE_TIME | unix.PERF_SAMPLE_CPU | unix.PERF_SAMPLE_RAW,
			Read_format: unix.PERF_FORMAT_TOTAL_TIME_ENABLED,
			Bits:        unix.PerfBitDisabled | unix.PerfBitWatermark | unix.PerfBitSampleIDAll | unix.PerfBitUseClockID,
			Wakeup:      uint32(s.wm),
			Clockid:     unix.CLOCK_MONOTONIC,
		}
		if r.lostFmt {
			attr.Read_format |= unix.PERF_FORMAT_LOST
		}
		if s.layouts[i].Stack {
			attr.Sample_type |= unix.PERF_SAMPLE_REGS_USER | unix.PERF_SAMPLE_STACK_USER
			attr.Sample_regs_user = spRegMask
			attr.Sample_stack_user = uint32(ev.StackBytes)
		}
		fd, err := unix.PerfEventOpen(&attr, -1, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
		if err == unix.EINVAL && i == 0 && r.lostFmt {
			// A kernel before 6.0: no lost counters.
			attr.Read_format &^= unix.PERF_FORMAT_LOST
			if fd, err = unix.PerfEventOpen(&attr, -1, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC); err == nil {
				s.noLostFormat, r.lostFmt = true, false
			}
		}
		if err != nil {
			if err == unix.EACCES || err == unix.EPERM {
				return nil, fmt.Errorf("%w: %s on CPU %d: %w", ErrPerm, ev.Name, cpu, err)
			}
			return nil, fmt.Errorf("%w: perf_event_open %s on CPU %d: %w", ErrEvent, ev.Name, cpu, err)
		}
		r.fds = append(r.fds, fd)
		if ev.Filter != "" {
			if err := setFilter(fd, ev.Filter); err != nil {
				return nil, fmt.Errorf("%w: %s: filter %q: %w", ErrEvent, ev.Name, ev.Filter, err)
			}
		}
		if r.fd < 0 {
			if err := r.mmap(fd, s.pages, s.page); err != nil {
				if err == unix.EPERM {
					return nil, fmt.Errorf("%w: %w", ErrMemlock, err)
				}
				return nil, fmt.Errorf("mmap ring of CPU %d: %w", cpu, err)
			}
			continue
		}
		if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_SET_OUTPUT, r.fd); err != nil {
			return nil, fmt.Errorf("join %s to the ring of CPU %d: %w", ev.Name, cpu, err)
		}
	}
	ok = true
	return r, nil
}

// openBell opens the doorbell events of cpu into one one-page ring.
func (s *Set) openBell(cpu int) (*ring, error) {
	b := &ring{cpu: cpu, fd: -1}
	for i, id := range s.bellIDs {
		attr := unix.PerfEventAttr{
			Type:        unix.PERF_TYPE_TRACEPOINT,
			Size:        uint32(unsafe.Sizeof(unix.PerfEventAttr{})),
			Config:      uint64(id),
			Sample:      1,
			Sample_type: unix.PERF_SAMPLE_TIME,
			Bits:        unix.PerfBitDisabled,
			Wakeup:      1, // wakeup_events: every sample
		}
		fd, err := unix.PerfEventOpen(&attr, -1, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
		if err != nil {
			b.close()
			return nil, fmt.Errorf("%w: doorbell %s on CPU %d: %w", ErrEvent, s.bellNames[i], cpu, err)
		}
		b.fds = append(b.fds, fd)
		if i == 0 {
			if err := b.mmap(fd, 1, s.page); err != nil {
				b.close()
				return nil, fmt.Errorf("mmap doorbell of CPU %d: %w", cpu, err)
			}
		} else if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_SET_OUTPUT, b.fd); err != nil {
			b.close()
			return nil, fmt.Errorf("join doorbell %s to the ring of CPU %d: %w", s.bellNames[i], cpu, err)
		}
	}
	return b, nil
}

// enableBell enables a doorbell's events (raw syscalls: the reader keeps
// its P).
func (b *ring) enableBell() error {
	for _, fd := range b.fds {
		if err := ioctlRaw(fd, unix.PERF_EVENT_IOC_ENABLE); err != nil {
			return err
		}
	}
	return nil
}

// close unmaps the ring and closes its events.
func (r *ring) close() {
	if r.mem != nil {
		unix.Munmap(r.mem)
		r.mem = nil
	}
	for _, fd := range r.fds {
		unix.Close(fd)
	}
	r.fds = nil
}

// CPUCheckEvery is how often a drain checks that every online CPU has a
// live ring. The kernel drops a CPU's events when it goes offline and does
// not bring them back when it returns, and a CPU that comes online after
// Open has none: such a CPU's events are missed until the next check.
const CPUCheckEvery = 10 * time.Second

// enable enables every event of the ring.
func (r *ring) enable() error {
	for _, fd := range r.fds {
		if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_ENABLE, 0); err != nil {
			return fmt.Errorf("enable tracepoint: %w", err)
		}
	}
	return nil
}

// raiseMemlock raises RLIMIT_MEMLOCK to cover need bytes more when the
// hard limit (or CAP_SYS_RESOURCE) allows it. perf charges ring pages
// beyond kernel.perf_event_mlock_kb per CPU to it, unless the process has
// CAP_IPC_LOCK; when neither is enough, mmap fails with EPERM (ErrMemlock).
func raiseMemlock(need int) {
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim) != nil || lim.Cur == unix.RLIM_INFINITY {
		return
	}
	want := lim.Cur + uint64(need)
	nl := unix.Rlimit{Cur: want, Max: max(lim.Max, want)}
	if unix.Setrlimit(unix.RLIMIT_MEMLOCK, &nl) != nil && lim.Max > lim.Cur {
		nl = unix.Rlimit{Cur: lim.Max, Max: lim.Max}
		unix.Setrlimit(unix.RLIMIT_MEMLOCK, &nl)
	}
}

// setFilter applies a tracefs filter expression to an event.
func setFilter(fd int, filter string) error {
	b := append([]byte(filter), 0)
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(unix.PERF_EVENT_IOC_SET_FILTER), uintptr(unsafe.Pointer(&b[0])))
	if e != 0 {
		return e
	}
	return nil
}

// mmap maps the ring of fd: one metadata page and pages of data.
func (r *ring) mmap(fd, pages, page int) error {
	mem, err := unix.Mmap(fd, 0, (pages+1)*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return err
	}
	r.fd, r.mem = fd, mem
	r.meta = (*unix.PerfEventMmapPage)(unsafe.Pointer(&mem[0]))
	off, size := int(r.meta.Data_offset), int(r.meta.Data_size)
	if off == 0 || size == 0 { // kernels before 4.1
		off, size = page, pages*page
	}
	r.data = mem[off : off+size]
	r.mask = uint64(size - 1)
	r.tail = atomic.LoadUint64(&r.meta.Data_tail)
	return nil
}

// Formats returns the format of each event, in the order of Options.Events.
func (s *Set) Formats() []*Format { return s.formats }

// StackSampled reports whether events[i]'s samples carry the user stack.
func (s *Set) StackSampled(i int) bool { return s.layouts[i].Stack }

// CPUs returns the number of rings.
func (s *Set) CPUs() int { return len(s.rings) }

// RingBytes returns each ring's data size.
func (s *Set) RingBytes() int {
	if len(s.rings) == 0 {
		return 0
	}
	return len(s.rings[0].data)
}

// Stats returns the counters.
func (s *Set) Stats() Stats {
	st := s.st
	st.Wakeups = s.wakeups.Load()
	return st
}

// Enable starts recording on every CPU.
func (s *Set) Enable() error {
	now := Now()
	for _, r := range s.rings {
		r.last = now
		if err := r.enable(); err != nil {
			return err
		}
		r.enabled, _ = r.enabledTime()
	}
	s.enabled, s.lastCheck = true, now
	return nil
}

// Disable stops recording; what is in the rings can still be drained.
func (s *Set) Disable() error {
	s.enabled = false
	for _, r := range s.rings {
		for _, fd := range r.fds {
			if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_DISABLE, 0); err != nil {
				return fmt.Errorf("disable tracepoint: %w", err)
			}
		}
	}
	return nil
}

// Close unmaps the rings and closes the events.
func (s *Set) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	for _, r := range s.rings {
		r.close()
	}
	for _, b := range s.bells {
		b.close()
	}
	if s.efd >= 0 {
		unix.Close(s.efd)
	}
	return nil
}

// Now returns CLOCK_MONOTONIC in ns, the clock of sample times. It is read
// through the Go runtime's monotonic clock (the vDSO's CLOCK_MONOTONIC), not
// clock_gettime(2): x/sys/unix makes that a real syscall, which the reader
// paid twice per drain, in the runtime's syscall state.
func Now() uint64 { return monoBase + uint64(time.Since(monoStart)) }

// monoBase is CLOCK_MONOTONIC at monoStart: the midpoint of the tightest of
// a few readings on both sides of it (both are CLOCK_MONOTONIC, so the
// offset is constant; the error is half that bracket, well under a µs).
var monoStart, monoBase = func() (start time.Time, base uint64) {
	best := int64(-1)
	for range 5 {
		var a, b unix.Timespec
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &a)
		t := time.Now()
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &b)
		if w := b.Nano() - a.Nano(); best < 0 || w < best {
			best, start, base = w, t, uint64(a.Nano()+b.Nano())/2
		}
	}
	return start, base
}()

// RawWaitMax is the longest Wait that blocks in poll(2) as a raw syscall:
// the goroutine keeps its P instead of entering the runtime's syscall state,
// so the runtime's sysmon does not take the P away and poll every 20 µs
// while the reader sleeps between drains (the cn_proc reader measured the
// same effect). Longer waits (idle) give the P back. It covers the process
// reader's longest busy period (cnproc's TraceBusyMax, 25 ms): a 40 ms wait
// in the syscall state had sysmon polling every 20 µs again.
const RawWaitMax = 50 * time.Millisecond
