package cnproc

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// execGuard is the tracepoint capture's opt-in immediate guard
// (Options.ExecGuard): a cn_proc socket that the kernel filters to exec
// events, read by a real-time thread that reads /proc/PID/cmdline at once at
// every exec, as the cn_proc capture does. The drain takes argv from it for
// the execs whose stack dump missed argv, so that processes that exit at
// once keep it, at cn_proc's cost of one wakeup and one read per exec.
type execGuard struct {
	fd int
	mu sync.Mutex
	m  map[int32]guardArgv
}

// guardArgv is the cmdline read at one exec.
type guardArgv struct {
	ts   uint64 // kernel time of the exec event
	argv []byte
	cut  bool
}

// guardMax bounds the execs remembered; guardMatch is how far apart the
// tracepoint's and cn_proc's time of one exec may be (both are taken in the
// exec'ing task, microseconds apart).
const (
	guardMax   = 1 << 14
	guardMatch = uint64(time.Millisecond)
)

func (s *Source) openGuard() (*execGuard, error) {
	fd, _, err := procDial(s.opts.RcvBuf, procEventExec)
	if err != nil {
		return nil, fmt.Errorf("exec guard: %w", err)
	}
	return &execGuard{fd: fd, m: make(map[int32]guardArgv)}, nil
}

func (g *execGuard) close() {
	unix.Write(g.fd, procSubscribeFrame(procCnMcastIgnore))
	unix.Close(g.fd)
}

// run reads exec events until ctx is done.
func (g *execGuard) run(ctx context.Context, s *Source) {
	runtime.LockOSThread() // never unlocked: the raised thread must not run other goroutines
	procRaisePriority(s.opts.Priority, s.log)
	rd := newProcReader(s.root, s.opts.ArgvMax)
	var in procInfo
	buf := make([]byte, 64<<10)
	var msgs []procMsg
	for ctx.Err() == nil {
		n, err := unix.Read(g.fd, buf)
		if err != nil {
			continue // EAGAIN (the receive timeout), EINTR, ENOBUFS: the dump may still have argv
		}
		msgs, _ = decodeProcEvents(buf[:n], msgs[:0])
		for _, m := range msgs {
			if m.What != procEventExec {
				continue
			}
			rd.readInto(m.TGID, procHaveArgv, &in)
			if in.have&procHaveArgv == 0 || len(in.argv) == 0 {
				continue
			}
			g.put(m.TGID, guardArgv{ts: m.TS, argv: append([]byte(nil), in.argv...), cut: in.argvTrunc})
		}
	}
}

func (g *execGuard) put(pid int32, a guardArgv) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.m) >= guardMax {
		// The drain takes entries within milliseconds; what is left is
		// of execs it did not need: forget the oldest half.
		var mid uint64
		for _, e := range g.m {
			mid += e.ts / uint64(len(g.m))
		}
		for p, e := range g.m {
			if e.ts <= mid {
				delete(g.m, p)
			}
		}
	}
	g.m[pid] = a
}

// take returns the argv read at the exec of pid at kernel time ts.
func (g *execGuard) take(pid int32, ts uint64) (guardArgv, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	a, ok := g.m[pid]
	if !ok || a.ts+guardMatch < ts || ts+guardMatch < a.ts {
		return guardArgv{}, false
	}
	delete(g.m, pid)
	return a, true
}
