package fanotify

import (
	"encoding/binary"
	"log/slog"
	"time"
	"unsafe"

	"github.com/pofr/pofr/collector"
	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/profiles"
)

// Mode is how the file source learns of file access (Stats.Mode, the
// segment manifest).
type Mode string

// File source modes.
const (
	// ModeFanotify: events come from fanotify filesystem marks.
	ModeFanotify Mode = "fanotify"
	// ModeFDScan: fanotify is unavailable (or ForceFallback is set); the
	// source samples /proc/PID/fd, as POFR did, and flags its rows fallback.
	ModeFDScan Mode = "fdscan"
)

// Options configures a Source.
type Options struct {
	// Sink receives the file rows and the gap rows of queue overflows.
	Sink event.Sink
	// Procs attributes a pid to a process life (proc_start, euid); may be
	// nil, in which case rows are flagged proc_unknown.
	Procs collector.Processes
	// Exec is told of every FAN_OPEN_EXEC (pid, time read, resolved path),
	// whether or not the profile records the "exec" op; may be nil.
	Exec collector.ExecObserver
	// Hash is handed every FAN_OPEN_EXEC with a read-only descriptor of the
	// executed file opened by its file handle (-1 if that failed), for its
	// SHA-256; may be nil.
	Hash collector.ExecHasher
	// Profile selects the ops, the aggregation window, excluded path
	// prefixes and the kernel queue size.
	Profile profiles.File
	// ExcludeDirs are never recorded (the spool directory and the collector's
	// configuration): an ignore mark keeps their events out of the kernel
	// queue, and a user-space filter drops what still arrives (deeper
	// subdirectories, directories created after the start).
	ExcludeDirs []string
	// SelfPID is the collector's own pid (0: none); its events are dropped (counted in
	// Stats.Self), so that spool writes can never feed back into the spool.
	SelfPID int32
	// Log receives start-up decisions and periodic summaries; nil discards.
	Log *slog.Logger
	// Now is the clock (time.Now if nil). fanotify events carry no time: a
	// row's ts is when its event was read, at most BatchDelay late.
	Now func() time.Time
	// ProcRoot is the procfs mount point ("" means /proc): the fd scans, the
	// mount table and the resolution of directory handles read it.
	ProcRoot string
	// ForceFallback skips fanotify and uses /proc/PID/fd scans.
	ForceFallback bool
	// ScanInterval is the /proc/PID/fd sampling period in fallback mode
	// (0: 1 s).
	ScanInterval time.Duration
	// BatchDelay is how long the reader lets events accumulate in the kernel
	// queue after each read (0: 10 ms; negative: none). Batching cuts the
	// listener's CPU per event about fourfold (docs/design.md, "File source");
	// it delays collector.ExecObserver calls by as much.
	BatchDelay time.Duration
	// Driver, if set, reads the group's queue at its own drain ticks for as
	// long as it drives it (the tracepoint process reader: no wakeup of the
	// file source's own; docs/design.md, "One drain for every queue"); the
	// source reads the queue itself before and after. May be nil.
	Driver collector.QueueDriver
}

// Stats are the counters of a Source since it was created.
type Stats struct {
	Mode         Mode   // ModeFanotify or ModeFDScan
	Filesystems  int    // file systems currently marked (fanotify mode)
	Events       uint64 // fanotify events read (fdscan: descriptors seen)
	Rows         uint64 // file rows written to the sink
	Overflows    uint64 // FAN_Q_OVERFLOW events (each one a gap row)
	Unresolved   uint64 // rows whose directory could not be resolved to a path
	Self         uint64 // events of the collector itself, dropped
	Excluded     uint64 // events under ExcludeDirs or profile exclusions, dropped
	ExecObserved uint64 // FAN_OPEN_EXEC events passed to the collector.ExecObserver
	CacheMisses  uint64 // directory handles resolved with open_by_handle_at
	Corrupt      uint64 // read buffers the decoder refused (should stay 0)
}

// fileAggMax bounds the distinct (process, path, op) keys held in one window;
// reaching it flushes the window early, so memory stays bounded under a scan
// of millions of files.
const fileAggMax = 1 << 16

// fileAgg folds accesses into one row per (pid, proc_start, op, path,
// new_path) within a window: first ts, last ts, count.
type fileAgg struct {
	idx  map[string]int
	rows []event.File
	key  []byte
	// arena holds the window's keys and paths: one append per new row
	// instead of three allocations. A flush hands the rows to the sink
	// (which copies what it keeps) and reuses it; the map's keys and the
	// rows that point into it are cleared first.
	arena []byte
}

func newFileAgg() *fileAgg { return &fileAgg{idx: make(map[string]int)} }

// add counts one access at ts and returns its row, and whether the row is new
// (the caller then fills uid, inode, dev and flags). The row pointer is valid
// until the next add or flush. path and newPath are copied when the row is new.
func (a *fileAgg) add(pid int32, start event.Opt[int64], op string, path, newPath []byte, ts int64) (*event.File, bool) {
	k := a.key[:0]
	k = binary.LittleEndian.AppendUint32(k, uint32(pid))
	if start.Valid {
		k = binary.LittleEndian.AppendUint64(k, uint64(start.V))
	} else {
		k = append(k, 0xff)
	}
	k = append(k, op...)
	k = append(k, 0)
	k = binary.LittleEndian.AppendUint32(k, uint32(len(path)))
	k = append(k, path...)
	k = append(k, newPath...)
	a.key = k
	if i, ok := a.idx[string(k)]; ok {
		r := &a.rows[i]
		if r.Count < ^uint32(0) {
			r.Count++
		}
		if ts > r.LastTS {
			r.LastTS = ts
		}
		return r, false
	}
	// The key ends with path and newPath: the row's slices are its tail.
	n := len(a.arena)
	a.arena = append(a.arena, k...)
	kept := a.arena[n:len(a.arena):len(a.arena)]
	a.idx[unsafe.String(unsafe.SliceData(kept), len(kept))] = len(a.rows)
	tail := kept[len(kept)-len(path)-len(newPath):]
	r := event.File{TS: ts, LastTS: ts, Count: 1, PID: pid, ProcStart: start, UID: event.NoID, Op: op}
	if len(path) > 0 { // an empty path stays null, as before
		r.Path = tail[:len(path):len(path)]
	}
	if len(newPath) > 0 {
		r.NewPath = tail[len(path):]
	}
	a.rows = append(a.rows, r)
	return &a.rows[len(a.rows)-1], true
}

// len returns the number of rows held.
func (a *fileAgg) len() int { return len(a.rows) }

// flush writes the rows, in order of first access, to sink and starts a new
// window. It returns the number of rows written.
func (a *fileAgg) flush(sink event.Sink) int {
	n := len(a.rows)
	for i := range a.rows {
		sink.AppendFile(&a.rows[i])
	}
	clear(a.idx)
	clear(a.rows) // drop path references
	a.rows = a.rows[:0]
	a.arena = a.arena[:0]
	return n
}

// pathExcluded reports whether p is one of dirs or below it, or starts with
// one of prefixes (the profile's exclusions, matched as raw byte prefixes).
func pathExcluded(p []byte, dirs, prefixes []string) bool {
	for _, d := range dirs {
		if len(p) >= len(d) && string(p[:len(d)]) == d && (len(p) == len(d) || p[len(d)] == '/' || d == "/") {
			return true
		}
	}
	for _, x := range prefixes {
		if x != "" && len(p) >= len(x) && string(p[:len(x)]) == x {
			return true
		}
	}
	return false
}

// joinPath appends dir, a slash and name to b. A name of "" or "." (an event
// on the directory itself) yields dir.
func joinPath(b []byte, dir string, name []byte) []byte {
	b = append(b, dir...)
	if len(name) == 0 || (len(name) == 1 && name[0] == '.') {
		return b
	}
	if len(dir) == 0 || dir[len(dir)-1] != '/' {
		b = append(b, '/')
	}
	return append(b, name...)
}
