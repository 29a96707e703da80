package fanotify

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/procfs"
)

// TestMarkable: the file source marks real file systems and tmpfs, not
// kernel interfaces nor anything under /proc or /sys.
func TestMarkable(t *testing.T) {
	mounts := []procfs.Mount{
		{Major: 0, Minor: 21, Root: "/", Point: "/proc", FSType: "proc"},
		{Major: 254, Minor: 0, Root: "/", Point: "/", FSType: "ext4"},
		{Major: 0, Minor: 27, Root: "/", Point: "/dev/shm", FSType: "tmpfs"},
		{Major: 0, Minor: 28, Root: "/", Point: "/sys/fs/cgroup", FSType: "tmpfs"},
		{Major: 254, Minor: 0, Root: "/srv/data", Point: "/mnt/with space\nnl", FSType: "ext4"},
		{Major: 8, Minor: 1, Root: "/", Point: "/boot", FSType: "vfat"},
	}
	var markable []string
	for i := range mounts {
		if fanMarkable(&mounts[i]) {
			markable = append(markable, mounts[i].Point)
		}
	}
	if d := cmp.Diff([]string{"/", "/dev/shm", "/mnt/with space\nnl", "/boot"}, markable); d != "" {
		t.Errorf("markable mounts (-want +got):\n%s", d)
	}
}

func TestFileAgg(t *testing.T) {
	a := newFileAgg()
	start := event.Some(int64(5e9))
	for i := range 1000 {
		r, isNew := a.add(10, start, "open", []byte("/etc/passwd"), nil, int64(100+i))
		if isNew != (i == 0) {
			t.Fatalf("add %d: new = %v", i, isNew)
		}
		if isNew {
			r.Inode = event.Some(uint64(77))
		}
	}
	a.add(10, start, "write", []byte("/etc/passwd"), nil, 50)             // other op
	a.add(11, start, "open", []byte("/etc/passwd"), nil, 60)              // other pid
	a.add(10, event.Opt[int64]{}, "open", []byte("/etc/passwd"), nil, 70) // unknown start
	a.add(10, start, "rename", []byte("/a"), []byte("/b"), 80)            // rename …
	a.add(10, start, "rename", []byte("/a/"), []byte("b"), 90)            // … not confused with another split
	a.add(10, start, "open", []byte("/etc/passwd\x00x"), nil, 95)         // a NUL cannot forge a key
	sink := &event.MemSink{}
	if n := a.flush(sink); n != 7 {
		t.Fatalf("flush wrote %d rows, want 7", n)
	}
	got := sink.Files()
	want0 := event.File{TS: 100, LastTS: 1099, Count: 1000, PID: 10, ProcStart: start, UID: event.NoID, Op: "open",
		Path: []byte("/etc/passwd"), Inode: event.Some(uint64(77))}
	if d := cmp.Diff(want0, got[0]); d != "" {
		t.Errorf("aggregated row (-want +got):\n%s", d)
	}
	if string(got[4].NewPath) != "/b" || string(got[5].NewPath) != "b" {
		t.Errorf("rename rows %q→%q and %q→%q", got[4].Path, got[4].NewPath, got[5].Path, got[5].NewPath)
	}
	if a.len() != 0 {
		t.Errorf("%d rows left after flush", a.len())
	}
	if n := a.flush(sink); n != 0 {
		t.Errorf("second flush wrote %d rows", n)
	}
	// The window's bytes are reused after a flush: rows of the next window
	// are whole, and an empty path or new path is null.
	if r, _ := a.add(12, start, "open", []byte{}, nil, 1); r.Path != nil {
		t.Errorf("empty path %q is not null", r.Path)
	}
	if r, _ := a.add(12, start, "rename", []byte("/long/enough/to/overwrite/the/old/bytes"), []byte{}, 2); r.NewPath != nil {
		t.Errorf("empty new path %q is not null", r.NewPath)
	}
	a.flush(sink)
	if got := sink.Files(); string(got[0].Path) != "/etc/passwd" || string(got[8].Path) != "/long/enough/to/overwrite/the/old/bytes" {
		t.Errorf("rows after a second window: %q, %q", got[0].Path, got[8].Path)
	}
}

func TestPathExcluded(t *testing.T) {
	dirs := []string{"/var/lib/pofr", "/etc/pofr"}
	prefixes := []string{"/tmp/"}
	for p, want := range map[string]bool{
		"/var/lib/pofr":          true,
		"/var/lib/pofr/spool/x":  true,
		"/var/lib/pofrx":         false,
		"/etc/pofr/key":          true,
		"/tmp/a":                 true,
		"/tmp":                   false,
		"/home/x":                false,
		"relative/var/lib/pofr/": false,
	} {
		if got := pathExcluded([]byte(p), dirs, prefixes); got != want {
			t.Errorf("pathExcluded(%q) = %v, want %v", p, got, want)
		}
	}
	if !pathExcluded([]byte("/anything"), []string{"/"}, nil) {
		t.Error("ExcludeDirs / does not exclude /anything")
	}
}

func TestJoinPath(t *testing.T) {
	for _, c := range []struct{ dir, name, want string }{
		{"/", "etc", "/etc"},
		{"/etc", "passwd", "/etc/passwd"},
		{"/etc", ".", "/etc"},
		{"/etc", "", "/etc"},
		{"/d", "a\nb\xff", "/d/a\nb\xff"},
	} {
		if got := string(joinPath(nil, c.dir, []byte(c.name))); got != c.want {
			t.Errorf("joinPath(%q, %q) = %q, want %q", c.dir, c.name, got, c.want)
		}
	}
}

func TestFanDirCache(t *testing.T) {
	c := newFanDirCache(3)
	fid := func(i int) *fanFID { return &fanFID{FSID: [2]int32{1, 2}, Type: 1, Handle: []byte{byte(i)}} }
	for i := range 4 {
		c.put(fid(i), fmt.Sprint("/d", i))
	}
	if _, ok := c.get(fid(0)); ok {
		t.Error("least recently used entry 0 survived a 4th put into a cache of 3")
	}
	if p, ok := c.get(fid(1)); !ok || p != "/d1" {
		t.Errorf("get(1) = %q, %v", p, ok)
	}
	c.put(fid(4), "/d4") // evicts 2 (1 was just used)
	if _, ok := c.get(fid(2)); ok {
		t.Error("entry 2 survived although 1 was used more recently")
	}
	other := &fanFID{FSID: [2]int32{1, 3}, Type: 1, Handle: []byte{1}}
	if _, ok := c.get(other); ok {
		t.Error("a handle of another file system hit the cache")
	}
	c.drop(fid(1))
	if _, ok := c.get(fid(1)); ok || c.len() != 2 {
		t.Errorf("after drop: len %d", c.len())
	}
	c.reset()
	if c.len() != 0 {
		t.Errorf("after reset: len %d", c.len())
	}
}

func TestHandleInode(t *testing.T) {
	for _, c := range []struct {
		f    fanFID
		want uint64
		ok   bool
	}{
		{fanFID{Type: 1, Handle: []byte{0x63, 2, 0, 0, 9, 9, 9, 9}}, 0x263, true},              // ext4: ino32, gen
		{fanFID{Type: 1, Handle: []byte{9, 9, 9, 9, 5, 0, 0, 0, 1, 0, 0, 0}}, 1<<32 | 5, true}, // tmpfs: gen, ino lo, ino hi
		{fanFID{Type: 0x81, Handle: []byte{1, 2, 3, 4, 5, 6, 7, 8}}, 0, false},
		{fanFID{Type: 1, Handle: []byte{1, 2, 3}}, 0, false},
	} {
		if got, ok := handleInode(&c.f); got != c.want || ok != c.ok {
			t.Errorf("handleInode(%+v) = %d, %v, want %d, %v", c.f, got, ok, c.want, c.ok)
		}
	}
}
