package spool

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pofr/pofr/internal/durable"
)

// Files of a spool directory besides the segments.
const (
	// StateName is the writer's persistent state (next seq, last digest,
	// clean-stop flag, gaps still to be recorded).
	StateName = "state.json"
	// LockName is the file a Writer holds locked while the spool is open.
	LockName = "lock"
	// tmpPrefix starts every temporary file; Open removes leftovers.
	tmpPrefix = ".tmp-"
)

// Info describes one sealed segment file in a spool directory.
type Info struct {
	Name   string // file name
	HostID string // host id from the name
	Seq    uint64 // sequence number from the name
	Size   int64  // file size in bytes
	Path   string // dir joined with Name
}

// List returns the sealed segments in dir, oldest (lowest seq) first. Files
// that are not named like segments (state, lock, temporary files) are
// ignored. Names are not verified against contents: use Verify for that.
func List(dir string) ([]Info, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list spool %s: %w", dir, err)
	}
	var out []Info
	for _, e := range ents {
		host, seq, _, ok := ParseName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, os.ErrNotExist) {
			continue // removed meanwhile (uploaded)
		}
		if err != nil {
			return nil, fmt.Errorf("list spool %s: %w", dir, err)
		}
		out = append(out, Info{Name: e.Name(), HostID: host, Seq: seq, Size: fi.Size(), Path: filepath.Join(dir, e.Name())})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Seq != out[j].Seq {
			return out[i].Seq < out[j].Seq
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// Remove deletes the sealed segment name from dir (the uplink calls it once
// the server has the segment) and makes the removal durable. name must be a
// segment name: nothing else in dir can be removed this way.
func Remove(dir, name string) error {
	if _, _, _, ok := ParseName(name); !ok {
		return fmt.Errorf("remove segment %q: not a segment name", name)
	}
	if err := os.Remove(filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("remove segment %s: %w", name, err)
	}
	if err := durable.SyncDir(dir); err != nil {
		return fmt.Errorf("remove segment %s: %w", name, err)
	}
	return nil
}

// writeDurable writes a file of about size bytes so that it appears under
// its final name only complete and on stable storage: temporary file in dir,
// write, fsync, close, rename, fsync dir. Its write buffer is sized to the
// file, at most 256 KiB: a 256 KiB buffer for a 300-byte state file and a
// small segment was most of what an idle host's seal allocated.
func writeDurable(dir, name string, size int64, write func(io.Writer) error) (err error) {
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, int(min(max(size, 512), 256<<10)))
	if err = write(bw); err != nil {
		return err
	}
	if err = bw.Flush(); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	return durable.SyncDir(dir)
}

// removeTemps deletes temporary files left by a writer that stopped between
// creating and renaming them. It returns how many it removed.
func removeTemps(dir string) (int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return n, err
			}
			n++
		}
	}
	return n, nil
}
