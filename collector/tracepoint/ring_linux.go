package tracepoint

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"runtime"
	"strings"
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
	Lost        uint64 // samples the kernel dropped (sum of PERF_RECORD_LOST counts)
	LostRecords uint64 // PERF_RECORD_LOST records
	Bad         uint64 // records that did not decode (skipped)
	Bytes       uint64 // ring bytes consumed
	Drains      uint64
	Wakeups     uint64 // Wait returns because a ring reached its watermark
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
	heap    []int // ring indexes with a pending record, for the merge
	bells   []*ring
	armed   bool
	enabled bool
	// What openRing needs to open a CPU's ring later (checkCPUs).
	pages, page, wm int
	bellID          uint16
	bellName        string
	lastCheck       uint64
	cpuCheckEvery   time.Duration // CPUCheckEvery; tests shorten it
	// pmu guards pfds and nring, which checkCPUs changes while Wait may
	// run; Wait polls its own copy, wpfds.
	pmu   sync.Mutex
	nring int
	wpfds []unix.PollFd
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
		sys, name, found := strings.Cut(ev.Name, ":")
		if !found {
			return nil, fmt.Errorf("%w: %q: want sys:name", ErrEvent, ev.Name)
		}
		f, err := fs.Format(sys, name)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrEvent, err)
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
		sys, name, found := strings.Cut(o.Doorbell, ":")
		if !found {
			return nil, fmt.Errorf("%w: doorbell %q: want sys:name", ErrEvent, o.Doorbell)
		}
		f, err := fs.Format(sys, name)
		if err != nil {
			return nil, fmt.Errorf("%w: doorbell: %w", ErrEvent, err)
		}
		s.bellID, s.bellName = f.ID, o.Doorbell
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
	r := &ring{cpu: cpu, fd: -1}
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
		if s.layouts[i].Stack {
			attr.Sample_type |= unix.PERF_SAMPLE_REGS_USER | unix.PERF_SAMPLE_STACK_USER
			attr.Sample_regs_user = spRegMask
			attr.Sample_stack_user = uint32(ev.StackBytes)
		}
		fd, err := unix.PerfEventOpen(&attr, -1, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
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

// openBell opens the doorbell of cpu with its one-page ring.
func (s *Set) openBell(cpu int) (*ring, error) {
	attr := unix.PerfEventAttr{
		Type:        unix.PERF_TYPE_TRACEPOINT,
		Size:        uint32(unsafe.Sizeof(unix.PerfEventAttr{})),
		Config:      uint64(s.bellID),
		Sample:      1,
		Sample_type: unix.PERF_SAMPLE_TIME,
		Bits:        unix.PerfBitDisabled,
		Wakeup:      1, // wakeup_events: every sample
	}
	fd, err := unix.PerfEventOpen(&attr, -1, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("%w: doorbell %s on CPU %d: %w", ErrEvent, s.bellName, cpu, err)
	}
	b := &ring{cpu: cpu, fd: -1}
	if err := b.mmap(fd, 1, s.page); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("mmap doorbell of CPU %d: %w", cpu, err)
	}
	b.fds = []int{fd}
	return b, nil
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

// setPollFDs rebuilds what Wait polls: rings, doorbells, the eventfd.
func (s *Set) setPollFDs() {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	s.pfds = s.pfds[:0]
	for _, r := range s.rings {
		s.pfds = append(s.pfds, unix.PollFd{Fd: int32(r.fd), Events: unix.POLLIN})
	}
	for _, b := range s.bells {
		s.pfds = append(s.pfds, unix.PollFd{Fd: int32(b.fd), Events: unix.POLLIN})
	}
	s.pfds = append(s.pfds, unix.PollFd{Fd: int32(s.efd), Events: unix.POLLIN})
	s.nring = len(s.rings) + len(s.bells)
}

// CPUCheckEvery is how often a drain checks that every online CPU has a
// live ring. The kernel drops a CPU's events when it goes offline and does
// not bring them back when it returns, and a CPU that comes online after
// Open has none: such a CPU's events are missed until the next check.
const CPUCheckEvery = 10 * time.Second

// checkCPUs reopens the rings of CPUs whose events the kernel dropped
// (offline and back: their enabled time stopped) and opens rings for CPUs
// that came online, at most once per CPUCheckEvery. Called by drain.
func (s *Set) checkCPUs(now uint64) {
	if !s.enabled || now-s.lastCheck < uint64(s.cpuCheckEvery) {
		return
	}
	elapsed := now - s.lastCheck
	s.lastCheck = now
	online, err := onlineCPUs()
	if err != nil {
		return
	}
	have := make(map[int]int, len(s.rings))
	for i, r := range s.rings {
		have[r.cpu] = i
	}
	changed := false
	for _, cpu := range online {
		i, ok := have[cpu]
		if ok {
			r := s.rings[i]
			en, err := r.enabledTime()
			alive := err == nil && en-r.enabled >= elapsed/2
			r.enabled = en
			if alive {
				continue
			}
		}
		nr, err := s.openRing(cpu)
		if err == nil {
			err = nr.enable()
		}
		if err != nil {
			if nr != nil {
				nr.close()
			}
			s.st.CPUErrors++
			continue
		}
		nr.enabled, _ = nr.enabledTime()
		nr.last = now
		if ok {
			s.rings[i].close()
			s.rings[i] = nr
		} else {
			s.rings = append(s.rings, nr)
		}
		if len(s.bells) > 0 {
			if nb, err := s.openBell(cpu); err == nil {
				replaced := false
				for j, b := range s.bells {
					if b.cpu == cpu {
						b.close()
						s.bells[j], replaced = nb, true
					}
				}
				if !replaced {
					s.bells = append(s.bells, nb)
				}
				if s.armed {
					unix.IoctlSetInt(nb.fd, unix.PERF_EVENT_IOC_ENABLE, 0)
				}
			}
		}
		s.st.CPUsReopened++
		changed = true
	}
	if changed {
		s.setPollFDs()
		s.Interrupt() // a Wait in progress polls the new rings from now on
	}
}

// enabledTime reads the ring's event's total enabled time (ns).
func (r *ring) enabledTime() (uint64, error) {
	var b [16]byte
	n, err := unix.Read(r.fds[0], b[:])
	if err != nil {
		return 0, err
	}
	if n < 16 {
		return 0, fmt.Errorf("read event: %d bytes", n)
	}
	return binary.NativeEndian.Uint64(b[8:]), nil
}

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

// onlineCPUs lists the online CPUs.
func onlineCPUs() ([]int, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return nil, fmt.Errorf("online CPUs: %w", err)
	}
	cpus, err := ParseCPUList(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("online CPUs: %w", err)
	}
	return cpus, nil
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

// Now returns CLOCK_MONOTONIC in ns, the clock of sample times.
func Now() uint64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

// Wait blocks until a ring holds at least the watermark, Interrupt is
// called, or timeout passes (negative: no timeout). It reports whether a
// ring reached its watermark.
func (s *Set) Wait(timeout time.Duration) (bool, error) {
	ms := -1
	if timeout >= 0 {
		ms = int((timeout + time.Millisecond - 1) / time.Millisecond)
	}
	s.pmu.Lock()
	s.wpfds = append(s.wpfds[:0], s.pfds...)
	nring := s.nring
	s.pmu.Unlock()
	pfds := s.wpfds
	var n int
	var err error
	if timeout >= 0 && timeout <= RawWaitMax && runtime.GOMAXPROCS(0) >= 2 {
		n, err = pollRaw(pfds, ms)
	} else {
		n, err = unix.Poll(pfds, ms)
	}
	if err == unix.EINTR {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("poll rings: %w", err)
	}
	if n == 0 {
		return false, nil
	}
	woken := false
	for _, p := range pfds[:nring] {
		if p.Revents&unix.POLLIN != 0 {
			woken = true
		}
	}
	if pfds[len(pfds)-1].Revents != 0 {
		var b [8]byte
		unix.Read(s.efd, b[:])
	}
	if woken {
		s.wakeups.Add(1)
	}
	return woken, nil
}

// Arm enables the doorbell (Options.Doorbell): the next hit of its
// tracepoint on any CPU makes Wait return. It reports whether the rings
// already hold records, in which case the caller should not sleep long.
func (s *Set) Arm() (bool, error) {
	if !s.armed && len(s.bells) > 0 {
		for _, b := range s.bells {
			// Forget earlier rings: only hits from now on count.
			atomic.StoreUint64(&b.meta.Data_tail, atomic.LoadUint64(&b.meta.Data_head))
			if err := unix.IoctlSetInt(b.fd, unix.PERF_EVENT_IOC_ENABLE, 0); err != nil {
				return false, fmt.Errorf("arm doorbell: %w", err)
			}
		}
		s.armed = true
	}
	for _, r := range s.rings {
		if atomic.LoadUint64(&r.meta.Data_head) != r.tail {
			return true, nil
		}
	}
	return false, nil
}

// Disarm disables the doorbell.
func (s *Set) Disarm() error {
	if !s.armed {
		return nil
	}
	s.armed = false
	for _, b := range s.bells {
		if err := unix.IoctlSetInt(b.fd, unix.PERF_EVENT_IOC_DISABLE, 0); err != nil {
			return fmt.Errorf("disarm doorbell: %w", err)
		}
	}
	return nil
}

// RawWaitMax is the longest Wait that blocks in poll(2) as a raw syscall:
// the goroutine keeps its P instead of entering the runtime's syscall state,
// so the runtime's sysmon does not take the P away and poll every 20 µs
// while the reader sleeps between drains (the cn_proc reader measured the
// same effect). Longer waits (idle) give the P back.
const RawWaitMax = 20 * time.Millisecond

// pollRaw is ppoll(2) as a raw syscall.
func pollRaw(fds []unix.PollFd, ms int) (int, error) {
	ts := unix.NsecToTimespec(int64(ms) * 1e6)
	n, _, e := unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), uintptr(len(fds)),
		uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// Interrupt makes a blocked Wait return.
func (s *Set) Interrupt() {
	b := [8]byte{1}
	unix.Write(s.efd, b[:])
}

// Drain hands every record older than Now() − Settle to h, samples of all
// CPUs merged by time, then frees their ring space. It returns the number of
// records handed out. h must not keep the slices of a Record.
func (s *Set) Drain(h func(*Record)) int { return s.drain(Now()-uint64(Settle), h) }

// DrainBefore is Drain with the cutoff given: records at or before t (a
// Now() time) are handed out, later ones stay in the rings. A caller that
// merges other time-stamped sources with the rings uses one cutoff for all.
func (s *Set) DrainBefore(t uint64, h func(*Record)) int { return s.drain(t, h) }

// Flush is Drain without the settle margin: everything in the rings now
// (after Disable, to empty them for good).
func (s *Set) Flush(h func(*Record)) int { return s.drain(^uint64(0), h) }

func (s *Set) drain(cutoff uint64, h func(*Record)) int {
	s.st.Drains++
	// After the records are handed out: a dropped ring still holds what
	// its CPU wrote before it went offline.
	defer s.checkCPUs(Now())
	s.heap = s.heap[:0]
	for i, r := range s.rings {
		r.head = atomic.LoadUint64(&r.meta.Data_head)
		if s.next(r, cutoff) {
			s.heap = append(s.heap, i)
		}
	}
	n := 0
	var rec Record
	for len(s.heap) > 0 {
		// Few CPUs: a linear scan for the oldest is cheaper than a heap.
		best := 0
		for j := 1; j < len(s.heap); j++ {
			if s.rings[s.heap[j]].recTime < s.rings[s.heap[best]].recTime {
				best = j
			}
		}
		r := s.rings[s.heap[best]]
		if s.emit(r, &rec) {
			h(&rec)
			n++
		}
		r.tail += uint64(len(r.rec))
		s.st.Bytes += uint64(len(r.rec))
		if !s.next(r, cutoff) {
			s.heap[best] = s.heap[len(s.heap)-1]
			s.heap = s.heap[:len(s.heap)-1]
		}
	}
	for _, r := range s.rings {
		atomic.StoreUint64(&r.meta.Data_tail, r.tail)
	}
	return n
}

// next reads the record at r.tail into r.rec, and reports whether there is
// one older than cutoff.
func (s *Set) next(r *ring, cutoff uint64) bool {
	for r.tail < r.head {
		off := r.tail & r.mask
		size := uint64(len(r.data))
		var hdr [headerLen]byte
		if off+headerLen <= size {
			copy(hdr[:], r.data[off:])
		} else {
			n := copy(hdr[:], r.data[off:])
			copy(hdr[n:], r.data)
		}
		typ, sz, err := ParseHeader(hdr[:])
		if err != nil || uint64(sz) > r.head-r.tail {
			// The ring is corrupt (cannot happen with a sane kernel): drop
			// what is there.
			s.st.Bad++
			r.tail = r.head
			return false
		}
		if off+uint64(sz) <= size {
			r.rec = r.data[off : off+uint64(sz)]
		} else {
			r.scratch = append(r.scratch[:0], r.data[off:]...)
			r.scratch = append(r.scratch, r.data[:uint64(sz)-(size-off)]...)
			r.rec = r.scratch
		}
		r.recType = typ
		switch typ {
		case recordSample:
			if len(r.rec) < headerLen+16 {
				r.recTime = r.last
			} else {
				r.recTime = binary.NativeEndian.Uint64(r.rec[headerLen+8:])
			}
		case recordLost:
			if _, t, err := ParseLost(r.rec); err == nil {
				r.recTime = t
			} else {
				r.recTime = r.last
			}
		default:
			r.recTime = r.last
		}
		if r.recTime > cutoff {
			return false
		}
		return true
	}
	return false
}

// emit decodes r.rec into rec; false for records that are skipped.
func (s *Set) emit(r *ring, rec *Record) bool {
	switch r.recType {
	case recordSample:
		if err := ParseSample(r.rec, s.layout, &rec.Sample); err != nil {
			s.st.Bad++
			return false
		}
		id, _ := rec.Sample.TypeID()
		rec.Event = -1
		for i, x := range s.ids {
			if x == id {
				rec.Event = i
			}
		}
		if rec.Event < 0 {
			s.st.Bad++
			return false
		}
		rec.Bytes = r.rec
		if rec.Sample.Time > r.last {
			r.last = rec.Sample.Time
		}
		s.st.Samples++
		return true
	case recordLost:
		n, t, err := ParseLost(r.rec)
		if err != nil {
			s.st.Bad++
			return false
		}
		*rec = Record{Event: -1, Lost: Lost{CPU: r.cpu, Count: n, From: r.last, To: t}, Bytes: r.rec}
		if t > r.last {
			r.last = t
		}
		s.st.Lost += n
		s.st.LostRecords++
		return true
	}
	return false
}

// layout returns the layout of tracepoint id.
func (s *Set) layout(id uint16) Layout {
	for i, x := range s.ids {
		if x == id {
			return s.layouts[i]
		}
	}
	return Layout{}
}
