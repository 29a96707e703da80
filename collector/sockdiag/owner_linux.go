package sockdiag

import (
	"fmt"
	"os"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// sockFDScanner finds the processes holding socket inodes by reading
// /proc/PID/fd links (socket:[N]). It is incremental: a scan looks only for
// the inodes it is asked for and stops when it has found them all, visiting
// first the processes that appeared since the previous scan, then those that
// held wanted sockets recently, then the rest (newest pid first). It keeps no
// inode index of its own, so its memory is a few words per process.
type sockFDScanner struct {
	root    string
	prev    map[int32]struct{} // pids visited or already known at the last scan
	holders map[int32]uint64   // pid → scan in which it last held a wanted inode
	scans   uint64
	link    []byte
	pids    []int32
	order   []int32
	statBuf []byte
}

// sockHolderMemory is how many scans a pid stays a preferred holder.
const sockHolderMemory = 64

func newSockFDScanner(root string) *sockFDScanner {
	return &sockFDScanner{
		root:    root,
		prev:    make(map[int32]struct{}),
		holders: make(map[int32]uint64),
		link:    make([]byte, 128),
		statBuf: make([]byte, 1024),
	}
}

// listPids reads the numeric entries of the proc root into f.pids.
func (f *sockFDScanner) listPids() error {
	d, err := os.Open(f.root)
	if err != nil {
		return fmt.Errorf("list processes: %w", err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return fmt.Errorf("list processes: %w", err)
	}
	f.pids = f.pids[:0]
	for _, n := range names {
		if n[0] < '0' || n[0] > '9' {
			continue
		}
		if p, err := strconv.ParseInt(n, 10, 32); err == nil {
			f.pids = append(f.pids, int32(p))
		}
	}
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
	for r := range 3 {
		for _, p := range f.pids {
			if rank(p) == r {
				f.order = append(f.order, p)
			}
		}
	}
	visited := 0
	for _, pid := range f.order {
		if len(want) == 0 {
			break
		}
		visited++
		f.scanPid(pid, want, found)
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
	fd, err := unix.Open(f.root+"/"+strconv.Itoa(int(pid))+"/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return // gone, or a kernel thread
	}
	d := os.NewFile(uintptr(fd), "fd")
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return
	}
	const prefix = "socket:["
	for _, n := range names {
		l, err := unix.Readlinkat(fd, n, f.link)
		if err != nil || l < len(prefix)+2 || string(f.link[:len(prefix)]) != prefix || f.link[l-1] != ']' {
			continue
		}
		ino, ok := sockParseDec(f.link[len(prefix) : l-1])
		if !ok || ino > 1<<32-1 {
			continue
		}
		if e := want[uint32(ino)]; e != nil {
			found(e, pid)
			delete(want, uint32(ino))
			f.holders[pid] = f.scans
			if len(want) == 0 {
				return
			}
		}
	}
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
	var st unix.Stat_t
	for _, p := range f.pids {
		if unix.Stat(f.root+"/"+strconv.Itoa(int(p))+"/ns/net", &st) != nil {
			continue
		}
		if _, ok := seen[st.Ino]; !ok && st.Ino != self {
			seen[st.Ino] = p
		}
	}
	return seen
}

// sockProcStart reads the proc_start of pid from root/PID/stat.
func sockProcStart(root string, pid int32) (int64, error) {
	b, err := os.ReadFile(root + "/" + strconv.Itoa(int(pid)) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("read start of pid %d: %w", pid, err)
	}
	return sockParseStatStart(b)
}
