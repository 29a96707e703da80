package fanotify

import "container/list"

// fanDirCache maps directory handles (fsid + handle type + handle bytes) to
// the path they resolved to. It is a bounded LRU: a host with millions of
// directories costs at most max entries. Entries go stale when a directory is
// renamed or removed; the file source drops the entry of a removed directory
// and clears the whole cache on a directory rename (every path below it
// changed) and on a queue overflow (events that said so may be lost).
type fanDirCache struct {
	max int
	m   map[string]*list.Element
	l   list.List // front: most recently used
	key []byte
}

type fanDirEntry struct {
	key  string
	path string
}

func newFanDirCache(max int) *fanDirCache {
	return &fanDirCache{max: max, m: make(map[string]*list.Element, max)}
}

// fanFIDKey appends the cache key of f to b.
func fanFIDKey(b []byte, f *fanFID) []byte {
	b = append(b, byte(f.FSID[0]), byte(f.FSID[0]>>8), byte(f.FSID[0]>>16), byte(f.FSID[0]>>24),
		byte(f.FSID[1]), byte(f.FSID[1]>>8), byte(f.FSID[1]>>16), byte(f.FSID[1]>>24),
		byte(f.Type), byte(f.Type>>8), byte(f.Type>>16), byte(f.Type>>24))
	return append(b, f.Handle...)
}

// get returns the cached path of f.
func (c *fanDirCache) get(f *fanFID) (string, bool) {
	c.key = fanFIDKey(c.key[:0], f)
	e, ok := c.m[string(c.key)]
	if !ok {
		return "", false
	}
	c.l.MoveToFront(e)
	return e.Value.(*fanDirEntry).path, true
}

// put records that f resolved to path, evicting the least recently used
// entry when full.
func (c *fanDirCache) put(f *fanFID, path string) {
	c.key = fanFIDKey(c.key[:0], f)
	if e, ok := c.m[string(c.key)]; ok {
		e.Value.(*fanDirEntry).path = path
		c.l.MoveToFront(e)
		return
	}
	if c.l.Len() >= c.max {
		old := c.l.Back()
		c.l.Remove(old)
		delete(c.m, old.Value.(*fanDirEntry).key)
	}
	k := string(c.key)
	c.m[k] = c.l.PushFront(&fanDirEntry{key: k, path: path})
}

// drop forgets f.
func (c *fanDirCache) drop(f *fanFID) {
	c.key = fanFIDKey(c.key[:0], f)
	if e, ok := c.m[string(c.key)]; ok {
		c.l.Remove(e)
		delete(c.m, string(c.key))
	}
}

// reset forgets everything.
func (c *fanDirCache) reset() {
	clear(c.m)
	c.l.Init()
}

// len returns the number of entries.
func (c *fanDirCache) len() int { return c.l.Len() }
