package sockdiag

import (
	"fmt"
	"slices"

	"github.com/pofr/pofr/internal/procfs"
)

// sockFDScanner finds the processes holding socket inodes by reading
// /proc/PID/fd links (socket:[N]). It is incremental: a scan looks only for
// the inodes it is asked for and stops when it has found them all, visiting
// first the listener owners named by near entries' hints, then the processes
// that appeared since the previous scan, then those that held wanted sockets
// recently, then the rest (newest pid first). Inodes of
// entries marked near are not looked for in the rest: an accepted
// connection that a dump saw just before it closed would otherwise cost a
// walk of every process's fds, and it is attributed through its listener.
// It keeps no inode index of its own, so its memory is a few words per
// process.
type sockFDScanner struct {
	fs      procfs.FS
	prev    map[int32]struct{} // pids visited or already known at the last scan
	holders map[int32]uint64   // pid → scan in which it last held a wanted inode
	scans   uint64
	link    []byte
	pids    []int32
	order   []int32
	first   []int32
}

// sockHolderMemory is how many scans a pid stays a preferred holder.
const sockHolderMemory = 64

func newSockFDScanner(fs procfs.FS) *sockFDScanner {
	return &sockFDScanner{
		fs:      fs,
		prev:    make(map[int32]struct{}),
		holders: make(map[int32]uint64),
		link:    make([]byte, 128),
	}
}

// listPids lists the processes into f.pids.
func (f *sockFDScanner) listPids() error {
	pids, err := f.fs.PIDs()
	if err != nil {
		return fmt.Errorf("list processes: %w", err)
	}
	f.pids = pids
	return nil
}

// find looks for the inodes of want, calls found for each one it finds with
// the pid holding it, and deletes it from want. It returns how many processes
// it visited.
func (f *sockFDScanner) find(want map[uint32]*sockEntry, found func(*sockEntry, int32)) int {
	if f.listPids() != nil {
		return 0
	}
	f.scans++
	// Order: new pids, recent holders, the rest; each newest first.
	slices.SortFunc(f.pids, func(a, b int32) int { return int(b - a) })
	f.order = f.order[:0]
	rank := func(p int32) int {
		if _, ok := f.prev[p]; !ok {
			return 0
		}
		if _, ok := f.holders[p]; ok {
			return 1
		}
		return 2
	}
	// Hints first: on a busy host the new processes alone are many, and
	// an accepted socket is usually in its listener's process.
	f.first = f.first[:0]
	for _, e := range want {
		if e.near && e.hint > 0 && !slices.Contains(f.first, e.hint) {
			f.first = append(f.first, e.hint)
		}
	}
	for _, p := range f.pids {
		if slices.Contains(f.first, p) {
			f.order = append(f.order, p)
		}
	}
	hinted := len(f.order)
	for r := range 3 {
		for _, p := range f.pids {
			if rank(p) == r && (hinted == 0 || !slices.Contains(f.first, p)) {
				f.order = append(f.order, p)
			}
		}
	}
	far := 0 // wanted inodes to look for in every process
	for _, e := range want {
		if !e.near {
			far++
		}
	}
	foundOne := func(e *sockEntry, pid int32) {
		if !e.near {
			far--
		}
		found(e, pid)
	}
	visited := 0
	for i, pid := range f.order {
		if len(want) == 0 || i >= hinted && far == 0 && rank(pid) == 2 {
			break
		}
		visited++
		f.scanPid(pid, want, foundOne)
		f.prev[pid] = struct{}{}
	}
	// Forget pids that are gone, and old holders.
	live := make(map[int32]struct{}, len(f.pids))
	for _, p := range f.pids {
		live[p] = struct{}{}
	}
	for p := range f.prev {
		if _, ok := live[p]; !ok {
			delete(f.prev, p)
		}
	}
	for p, s := range f.holders {
		if _, ok := live[p]; !ok || f.scans-s > sockHolderMemory {
			delete(f.holders, p)
		}
	}
	return visited
}

// scanPid reads the fd links of one process.
func (f *sockFDScanner) scanPid(pid int32, want map[uint32]*sockEntry, found func(*sockEntry, int32)) {
	const prefix = "socket:["
	f.fs.FDs(pid, f.link, func(_ string, l []byte) bool {
		if len(l) < len(prefix)+2 || string(l[:len(prefix)]) != prefix || l[len(l)-1] != ']' {
			return true
		}
		ino, ok := procfs.ParseDecimal(l[len(prefix) : len(l)-1])
		if !ok || ino > 1<<32-1 {
			return true
		}
		if e := want[uint32(ino)]; e != nil {
			found(e, pid)
			delete(want, uint32(ino))
			f.holders[pid] = f.scans
			return len(want) > 0
		}
		return true
	}) // an error: gone, or a kernel thread
}

// otherNetns counts the distinct network namespaces of processes other than
// self (an nsfs inode).
func (f *sockFDScanner) otherNetns(self uint64) int { return len(f.netnsPids(self)) }

// netnsPids returns the network namespaces of processes other than self
// (nsfs inodes), each with one pid in it.
func (f *sockFDScanner) netnsPids(self uint64) map[uint64]int32 {
	if f.listPids() != nil {
		return nil
	}
	seen := make(map[uint64]int32)
	for _, p := range f.pids {
		ino, err := f.fs.NetNS(p)
		if err != nil {
			continue
		}
		if _, ok := seen[ino]; !ok && ino != self {
			seen[ino] = p
		}
	}
	return seen
}
