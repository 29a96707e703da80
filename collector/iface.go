package collector

import (
	"context"
	"time"
)

// ProcInfo is what other sources need to know about the process holding a pid
// now: the key of its life and its effective user.
type ProcInfo struct {
	// Start is the process's proc_start (ns since boot, clock-tick resolution,
	// procfs.StartFromTicks of /proc/PID/stat starttime). With the pid it names one life.
	Start int64
	// EUID is the effective user id, or event.NoID if unknown.
	EUID uint32
	// Self reports that the pid is pofr's own collector.
	Self bool
}

// Processes resolves a pid to the process life currently holding it. The
// process source's live table implements it; the socket and file sources use
// it to attribute their events. Implementations are safe for concurrent use.
type Processes interface {
	Lookup(pid int32) (ProcInfo, bool)
}

// QueueDriver drains the event queues of other sources at its own drain
// ticks, so that a busy host pays one thread wakeup per tick for all of
// them instead of one per source, and an idle one is woken by the first
// event of any. The tracepoint process reader implements it.
type QueueDriver interface {
	// Drive calls drain at each of the driver's drains, in its thread,
	// after the process events of that drain are visible to Lookup, and
	// polls fd (which must be non-blocking) for readability while the
	// driver is idle. drain must not block; it returns ok false to stop
	// being driven (a read error: the caller's own loop reports it), and in
	// due, unless zero, when it needs a drain although fd stays quiet (a
	// window to close): an idle driver sleeps long, but not past it. Drive
	// returns once ctx is done, drain returned false, or the driver stops
	// driving (or never starts: no tracepoint capture), and drain is not
	// called after it returned: the caller then reads fd itself.
	Drive(ctx context.Context, fd int, drain func() (ok bool, due time.Time))
}

// ExecObserver is told of every executable opened for execution
// (fanotify FAN_OPEN_EXEC), so that the process source can fill the exe of an
// exec row whose process was gone before /proc could be read, and give each
// exec row the identity of its file. pid is the thread group id; ts is the
// event time in ns since the Unix epoch; exeKey is the file's
// event.ExeKey as the ExecHasher returned it (0: unknown).
type ExecObserver interface {
	ObserveExecOpen(pid int32, ts int64, path []byte, exeKey uint64)
}

// ExecHasher is given every executable opened for execution (fanotify
// FAN_OPEN_EXEC) to record its SHA-256. fd is a read-only descriptor of the
// executed file opened by its fanotify file handle, or -1 if the handle could
// not be opened (the hasher then tries /proc/PID/exe); the hasher owns and
// closes it. path is the resolved path or nil, valid only during the call.
// It returns the event.ExeKey of the file's identity (0 if it could not be
// stated). Implementations must not block: the fanotify reader calls it.
type ExecHasher interface {
	HashExec(fd int, pid int32, ts int64, path []byte) uint64
}

// ExecKeyHasher is an ExecHasher that spares the caller the open of a file
// it has seen before. The caller names the executed file by key, a stable
// identifier of the file (fanotify's FID: file system, inode and generation),
// and must call ForgetExecKey(key) whenever the file may have been written
// (a FAN_CLOSE_WRITE of it), or ForgetExecKey(nil) when such events may have
// been lost. SeenExecKey counts an exec of a key remembered by an earlier
// HashExecKey and reports false (the caller then opens the file and calls
// HashExecKey) if there is none. key is valid only during the call. Both
// return the identity's event.ExeKey, as HashExec does.
type ExecKeyHasher interface {
	ExecHasher
	SeenExecKey(key []byte, pid int32, ts int64) (uint64, bool)
	HashExecKey(fd int, key []byte, pid int32, ts int64, path []byte) uint64
	ForgetExecKey(key []byte)
}
