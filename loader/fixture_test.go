package loader

import (
	"crypto/ed25519"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/spool"
	"github.com/pofr/pofr/wire"
)

// fixture is a server state directory with registered hosts, and a real
// spool writer per host whose sealed segments land in the host's inbox.
type fixture struct {
	t       testing.TB
	state   statedir.Dir
	keys    map[string]ed25519.PrivateKey
	writers map[string]*spool.Writer
	dirs    map[string]string
}

func newFixture(t testing.TB, hosts ...string) *fixture {
	t.Helper()
	f := &fixture{t: t, state: statedir.Dir(t.TempDir()), keys: map[string]ed25519.PrivateKey{}, writers: map[string]*spool.Writer{}, dirs: map[string]string{}}
	for _, h := range hosts {
		f.register(h)
	}
	t.Cleanup(func() {
		for _, w := range f.writers {
			w.Close()
		}
	})
	return f
}

func (f *fixture) register(host string) {
	f.t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		f.t.Fatal(err)
	}
	f.keys[host] = priv
	if err := registry.Save(f.state, &registry.Host{HostID: host, Facts: wire.Facts{Hostname: host + ".example", MachineID: "m-" + host},
		SigningKey: pub, Status: registry.StatusActive, RegisteredAt: time.Now().UTC()}); err != nil {
		f.t.Fatal(err)
	}
}

// writer returns host's spool writer, opening it on first use.
func (f *fixture) writer(host string) *spool.Writer {
	f.t.Helper()
	if w := f.writers[host]; w != nil {
		return w
	}
	dir := f.t.TempDir()
	w, err := spool.Open(dir, spool.Options{HostID: host, BootID: "boot-" + host, Key: f.keys[host],
		MaxSegmentAge: time.Hour, MaxSegmentBytes: 32 << 20, Quota: 1 << 30})
	if err != nil {
		f.t.Fatal(err)
	}
	f.writers[host], f.dirs[host] = w, dir
	return w
}

// seal writes rows with fill, seals them and moves the new segments into the
// host's inbox; it returns their paths there.
func (f *fixture) seal(host string, fill func(s event.Sink)) []string {
	f.t.Helper()
	w := f.writer(host)
	fill(w)
	if err := w.Seal(); err != nil {
		f.t.Fatal(err)
	}
	infos, err := spool.List(f.dirs[host])
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	inbox := f.state.Host(host).Inbox
	for _, in := range infos {
		dst := filepath.Join(inbox, in.Name)
		if err := copyFile(in.Path, dst); err != nil {
			f.t.Fatal(err)
		}
		if err := spool.Remove(f.dirs[host], in.Name); err != nil {
			f.t.Fatal(err)
		}
		out = append(out, dst)
	}
	return out
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// files returns the names in a directory of the state dir (inbox/<h> …),
// without .reason files.
func (f *fixture) files(kind, host string) []string {
	f.t.Helper()
	ents, err := os.ReadDir(filepath.Join(f.state.String(), kind, host))
	if err != nil && !os.IsNotExist(err) {
		f.t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if filepath.Ext(e.Name()) != ".reason" {
			out = append(out, e.Name())
		}
	}
	return out
}

// manifestRows sums the row counts of the manifests of the segments in the
// archive: what the database must hold.
func (f *fixture) archivedRows(host string) map[string]int64 {
	f.t.Helper()
	out := map[string]int64{}
	for _, n := range f.files("archive", host) {
		p := filepath.Join(f.state.String(), "archive", host, n)
		fi, err := os.Stat(p)
		if err != nil {
			f.t.Fatal(err)
		}
		r, err := os.Open(p)
		if err != nil {
			f.t.Fatal(err)
		}
		m, _, err := spool.ReadManifest(r, fi.Size())
		r.Close()
		if err != nil {
			f.t.Fatal(err)
		}
		for _, t := range event.Tables {
			out[t] += m.TableRows(t)
		}
	}
	return out
}
