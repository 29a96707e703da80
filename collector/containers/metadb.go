package containers

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime/debug"
	"syscall"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/pofr/pofr/internal/event"
)

// DefaultMaxMetaBytes is the default of Options.MaxMetaBytes.
const DefaultMaxMetaBytes = 64 << 20

// Bounds of the containerd metadata read.
const (
	// metaCopies is how many times a copy of meta.db is taken before giving
	// up when containerd commits during each.
	metaCopies = 3
	// metaMinSize is the smallest meta.db opened: bbolt's two meta pages
	// of the smallest page size (an empty file would be initialised).
	metaMinSize = 2 * 1024
)

// The containerd metadata buckets and keys read (containerd's
// core/metadata/buckets.go: v1/NAMESPACE/containers/ID).
var (
	keyV1         = []byte("v1")
	keyContainers = []byte("containers")
	keyImage      = []byte("image")
	keyLabels     = []byte("labels")
	keySpec       = []byte("spec")
)

// Labels naming a container in containerd's metadata: the CRI plugin's
// copy of kubelet's labels, and nerdctl's name label.
var labelNameKeys = []string{"io.kubernetes.container.name", "nerdctl/name"}

// metaFile identifies one version of meta.db: a snapshot of it is reused
// while the file is unchanged.
type metaFile struct {
	dev, ino    uint64
	size, mtime int64
}

func statKey(st *syscall.Stat_t) metaFile {
	return metaFile{dev: st.Dev, ino: st.Ino, size: st.Size, mtime: st.Mtim.Nano()}
}

// metaCache is the worker's open snapshot of meta.db, kept while ids keep
// coming (a burst of new containers costs one copy) and closed when the
// queue is empty.
type metaCache struct {
	key metaFile
	db  *bolt.DB
}

func (c *metaCache) close() {
	if c != nil && c.db != nil {
		c.db.Close()
		c.db = nil
	}
}

// containerdMeta looks id up in containerd's metadata database, in
// namespace ns first ("" if unknown) and then in every namespace (at most
// maxNamespaces). It returns false if the database does not exist or does
// not know id; otherwise row has runtime, source and the names found, or an
// error. c, if not nil, caches the snapshot between calls.
func (r *Resolver) containerdMeta(id, ns string, row *event.Container, c *metaCache) bool {
	path := r.opts.Roots.ContainerdMeta
	db, errKind, ok := r.metaSnapshot(path, c)
	if !ok {
		return false
	}
	if c == nil && db != nil {
		defer db.Close()
	}
	found := event.Container{ID: row.ID, Runtime: event.RuntimeContainerd, Source: cut([]byte(path), maxPath), Error: errKind}
	if errKind == "" {
		var rec *metaRecord
		err := viewGuarded(db, func(tx *bolt.Tx) error {
			rec = findContainer(tx, id, ns)
			return nil
		})
		switch {
		case err != nil:
			found.Error = event.CtrParseError
			c.close() // a corrupt snapshot is not kept for the rest of a burst
		case rec == nil:
			return false
		default:
			rec.apply(&found, r.opts.MaxStateBytes)
		}
	}
	*row = found
	return true
}

// metaRecord is what is read of a container's bucket, copied out of the
// transaction.
type metaRecord struct {
	image, spec []byte
	labels      map[string]string // the labelNameKeys and pod keys present
}

// findContainer returns container id's record from namespace ns, or from
// the first namespace that has it; nil if none.
func findContainer(tx *bolt.Tx, id, ns string) *metaRecord {
	v1 := tx.Bucket(keyV1)
	if v1 == nil {
		return nil
	}
	if ns != "" {
		if rec := readContainer(v1.Bucket([]byte(ns)), id); rec != nil {
			return rec
		}
	}
	var rec *metaRecord
	n := 0
	c := v1.Cursor()
	for k, v := c.First(); k != nil && rec == nil && n < maxNamespaces; k, v = c.Next() {
		if v != nil || string(k) == ns { // a key (v1/version), not a bucket; or looked at already
			continue
		}
		n++
		rec = readContainer(v1.Bucket(k), id)
	}
	return rec
}

// readContainer reads container id of a namespace's bucket (nil: none).
func readContainer(nsb *bolt.Bucket, id string) *metaRecord {
	if nsb == nil {
		return nil
	}
	cb := nsb.Bucket(keyContainers)
	if cb == nil {
		return nil
	}
	b := cb.Bucket([]byte(id))
	if b == nil {
		return nil
	}
	rec := &metaRecord{image: bytes.Clone(b.Get(keyImage)), spec: bytes.Clone(b.Get(keySpec)), labels: map[string]string{}}
	if lb := b.Bucket(keyLabels); lb != nil {
		for _, keys := range [][]string{labelNameKeys, podKeys, nsKeys} {
			for _, k := range keys {
				if v := lb.Get([]byte(k)); v != nil {
					rec.labels[k] = string(v)
				}
			}
		}
	}
	return rec
}

// apply sets row's names from the record: the spec's annotations (written
// by the CRI plugin or nerdctl) before the labels (which may come from the
// image's config), the record's image before the CRI annotation. A spec
// over maxSpec bytes or not parsable leaves the annotations out.
func (m *metaRecord) apply(row *event.Container, maxSpec int64) {
	var ann map[string]string
	if int64(len(m.spec)) <= maxSpec {
		ann, _ = specAnnotations(m.spec)
	}
	row.Name = first(ann, nameKeys, maxName)
	if row.Name == nil {
		row.Name = first(m.labels, labelNameKeys, maxName)
	}
	row.Image = opt(string(m.image), maxImage)
	if row.Image == nil {
		row.Image = first(ann, imageKeys, maxImage)
	}
	setPod(row, m.labels)
	setPod(row, ann)
}

// specAnnotations returns the annotations of a container's spec as
// containerd stores it: a protobuf google.protobuf.Any (type_url = 1,
// value = 2) whose value is the OCI runtime spec in JSON.
func specAnnotations(b []byte) (map[string]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var value []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		if num == 2 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			value, b = v, b[n:]
			continue
		}
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
	}
	var c ociConfig
	if err := json.Unmarshal(value, &c); err != nil {
		return nil, err
	}
	return c.Annotations, nil
}

// viewGuarded runs fn in a read transaction of db, turning a panic or a
// memory fault in bbolt (a page that points past the snapshot) into an
// error.
func viewGuarded(db *bolt.DB, fn func(*bolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("bbolt: %v", p)
		}
	}()
	return db.View(fn)
}

// metaSnapshot returns meta.db opened from a private in-memory copy, so
// that containerd's exclusive flock on it neither blocks the read nor is
// touched, and nothing is written to disk. ok is false if the file does not
// exist; errKind is a ctr error if it cannot be read or opened. With c, a
// snapshot of the unchanged file is reused (and not to be closed by the
// caller).
func (r *Resolver) metaSnapshot(path string, c *metaCache) (db *bolt.DB, errKind string, ok bool) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", false
	}
	if err != nil {
		return nil, event.CtrReadError, true
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return nil, event.CtrReadError, true
	}
	key := statKey(&st)
	if c != nil && c.db != nil && c.key == key {
		return c.db, "", true
	}
	c.close()
	switch {
	case st.Size > r.opts.MaxMetaBytes:
		return nil, event.CtrTooLarge, true
	case st.Size < metaMinSize:
		return nil, event.CtrParseError, true
	}
	mem, errKind := copyConsistent(f, r.opts.MaxMetaBytes)
	if errKind != "" {
		return nil, errKind, true
	}
	db, err = bolt.Open(path, 0, &bolt.Options{ReadOnly: true,
		OpenFile: func(string, int, os.FileMode) (*os.File, error) { return mem, nil }})
	if err != nil {
		mem.Close()
		return nil, event.CtrParseError, true
	}
	if c != nil {
		c.key, c.db = key, db
	}
	return db, "", true
}

// copyConsistent copies the bbolt file f into a sealed memfd. bbolt writes
// a transaction's pages before its meta page, and never overwrites a page
// the newest meta page reaches until a later transaction commits: so a copy
// whose meta pages are unchanged at its end is a consistent database. A
// copy during which containerd committed is taken again, metaCopies times at
// most (then parse_error).
func copyConsistent(f *os.File, max int64) (*os.File, string) {
	for range metaCopies {
		fd, err := unix.MemfdCreate("pofr-containerd-meta", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
		if err != nil {
			return nil, event.CtrReadError
		}
		mem := os.NewFile(uintptr(fd), "memfd:pofr-containerd-meta")
		n, err := io.Copy(mem, io.NewSectionReader(f, 0, max+1))
		if err != nil || n > max || n < metaMinSize {
			mem.Close()
			switch {
			case err != nil:
				return nil, event.CtrReadError
			case n > max:
				return nil, event.CtrTooLarge
			}
			return nil, event.CtrParseError
		}
		metaLen := 2 * metaPageSize(mem)
		copied, now := make([]byte, metaLen), make([]byte, metaLen)
		_, err1 := mem.ReadAt(copied, 0)
		_, err2 := f.ReadAt(now, 0)
		if err1 == nil && err2 == nil && bytes.Equal(copied, now) {
			if _, err := unix.FcntlInt(mem.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_WRITE|unix.F_SEAL_GROW|unix.F_SEAL_SHRINK|unix.F_SEAL_SEAL); err != nil {
				mem.Close()
				return nil, event.CtrReadError
			}
			return mem, ""
		}
		mem.Close()
	}
	return nil, event.CtrParseError
}

// metaPageSize is the page size in the copy's first meta page (page header
// 16 bytes, then magic, version, page size as native uint32s), or 4096 if
// it is not a power of two from 1 KiB to 64 KiB (bbolt then rejects the
// file, or finds the second meta page at 4096 itself).
func metaPageSize(f *os.File) int {
	var b [4]byte
	if _, err := f.ReadAt(b[:], 24); err == nil {
		if ps := int(binary.NativeEndian.Uint32(b[:])); ps >= 1024 && ps <= 64<<10 && ps&(ps-1) == 0 {
			return ps
		}
	}
	return 4096
}
