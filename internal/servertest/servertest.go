// Package servertest builds what the tests of the server packages (loader,
// custody, query, ui) share: a state directory with registered hosts whose segments the
// real spool writer sealed into their inboxes, and rows of a busy host.
package servertest

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pofr/pofr/custody"
	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/internal/testutil"
	"github.com/pofr/pofr/schema"
	"github.com/pofr/pofr/spool"
	"github.com/pofr/pofr/wire"
)

// Fixture is a server state directory with registered hosts, and a real
// spool writer per host whose sealed segments land in the host's inbox.
type Fixture struct {
	State   statedir.Dir                  // the server's state directory
	Keys    map[string]ed25519.PrivateKey // each host's segment signing key
	Dirs    map[string]string             // each host's spool directory
	Writers map[string]*spool.Writer      // each host's open spool writer

	t testing.TB
}

// NewFixture returns a fixture with hosts registered; its writers close when
// the test ends.
func NewFixture(t testing.TB, hosts ...string) *Fixture {
	t.Helper()
	f := &Fixture{t: t, State: statedir.Dir(t.TempDir()), Keys: map[string]ed25519.PrivateKey{}, Writers: map[string]*spool.Writer{}, Dirs: map[string]string{}}
	for _, h := range hosts {
		f.Register(h)
	}
	t.Cleanup(func() {
		for _, w := range f.Writers {
			w.Close()
		}
	})
	return f
}

// Register registers host with a fresh signing key.
func (f *Fixture) Register(host string) {
	f.t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		f.t.Fatal(err)
	}
	f.Keys[host] = priv
	if err := registry.Save(f.State, &registry.Host{HostID: host, Facts: wire.Facts{Hostname: host + ".example", MachineID: "m-" + host},
		SigningKey: pub, Status: registry.StatusActive, RegisteredAt: time.Now().UTC()}); err != nil {
		f.t.Fatal(err)
	}
}

// Writer returns host's spool writer, opening it on first use.
func (f *Fixture) Writer(host string) *spool.Writer {
	f.t.Helper()
	if w := f.Writers[host]; w != nil {
		return w
	}
	dir := f.t.TempDir()
	w, err := spool.Open(dir, spool.Options{HostID: host, BootID: "boot-" + host, Key: f.Keys[host],
		MaxSegmentAge: time.Hour, MaxSegmentBytes: 32 << 20, Quota: 1 << 30})
	if err != nil {
		f.t.Fatal(err)
	}
	f.Writers[host], f.Dirs[host] = w, dir
	return w
}

// Seal writes rows with fill, seals them and moves the new segments into the
// host's inbox; it returns their paths there.
func (f *Fixture) Seal(host string, fill func(s event.Sink)) []string {
	f.t.Helper()
	w := f.Writer(host)
	fill(w)
	if err := w.Seal(); err != nil {
		f.t.Fatal(err)
	}
	infos, err := spool.List(f.Dirs[host])
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	inbox := f.State.Host(host).Inbox
	for _, in := range infos {
		dst := filepath.Join(inbox, in.Name)
		if err := CopyFile(in.Path, dst); err != nil {
			f.t.Fatal(err)
		}
		if err := spool.Remove(f.Dirs[host], in.Name); err != nil {
			f.t.Fatal(err)
		}
		out = append(out, dst)
	}
	return out
}

// SpoolHost registers host in state with a fresh signing key, writes each
// fill as one sealed segment with a spool writer opened with opts (HostID,
// BootID and Key are set here), and copies the segments into the host's
// inbox, for a data set that the loader then loads.
func SpoolHost(t testing.TB, state statedir.Dir, host string, facts wire.Facts, registered time.Time, opts spool.Options, fills ...func(event.Sink)) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := registry.Save(state, &registry.Host{HostID: host, Facts: facts,
		SigningKey: pub, Status: registry.StatusActive, RegisteredAt: registered}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	opts.HostID, opts.BootID, opts.Key = host, "boot-"+host, priv
	w, err := spool.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, fill := range fills {
		fill(w)
		if err := w.Seal(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	infos, err := spool.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range infos {
		if err := CopyFile(in.Path, filepath.Join(state.Host(host).Inbox, in.Name)); err != nil {
			t.Fatal(err)
		}
	}
}

// CopyFile copies the file src to dst.
func CopyFile(src, dst string) error {
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

// Files returns the names in a directory of the state dir (inbox/<h> …),
// without .reason files.
func (f *Fixture) Files(kind, host string) []string {
	f.t.Helper()
	ents, err := os.ReadDir(filepath.Join(f.State.String(), kind, host))
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

// ArchivedRows sums the row counts of the manifests of the segments in the
// archive: what the database must hold.
func (f *Fixture) ArchivedRows(host string) map[string]int64 {
	f.t.Helper()
	out := map[string]int64{}
	for _, n := range f.Files("archive", host) {
		p := filepath.Join(f.State.String(), "archive", host, n)
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

// BusyRows returns n rows of a realistic mix for one host, from base (ns)
// on, a microsecond apart.
func BusyRows(base int64, n int) ([]event.Proc, []event.File, []event.Sock) {
	var procs []event.Proc
	var files []event.File
	var socks []event.Sock
	for i := range n {
		ts := base + int64(i)*1000
		switch {
		case i%10 < 3:
			procs = append(procs, event.Proc{TS: ts, Event: []string{event.ProcFork, event.ProcExec, event.ProcExit}[i%3], PID: int32(10000 + i/3),
				TID: int32(10000 + i/3), PPID: 1, ProcStart: int64(i / 3), UID: 1000, EUID: 1000, GID: 1000, EGID: 1000, AUID: 1000, SessionID: 3,
				Comm: []byte("worker"), Exe: []byte("/usr/bin/worker"), Argv: []byte("worker\x00--job\x00" + string(rune('a'+i%26)) + "\x00"),
				Cwd: []byte("/srv"), Flags: 0})
		case i%10 < 9:
			files = append(files, event.File{TS: ts, LastTS: ts + 10, Count: 1, PID: int32(10000 + i/3), ProcStart: event.Some(int64(i / 3)),
				UID: 1000, Op: event.FileOpen, Path: []byte("/srv/data/file" + string(rune('a'+i%26))), Inode: event.Some(uint64(i)), Dev: event.Some[uint64](2049)})
		default:
			socks = append(socks, event.Sock{TS: ts, Event: event.SockClose, Proto: "tcp", Family: 4, State: "CLOSE", Direction: event.DirOut,
				LocalAddr: []byte{10, 0, 0, 1}, LocalPort: uint16(30000 + i%1000), RemoteAddr: []byte{192, 0, 2, byte(i)}, RemotePort: 443,
				Cookie: uint64(i), UID: 1000, PID: event.Some(int32(10000 + i/3)), ProcStart: event.Some(int64(i / 3)), Flags: event.SockFlagFromDestroy})
		}
	}
	return procs, files, socks
}

// BusyFill is a fill for Fixture.Seal: n BusyRows from HostileBase.
func BusyFill(n int) func(event.Sink) {
	procs, files, socks := BusyRows(HostileBase(), n)
	return func(s event.Sink) { event.AppendAll(s, procs, files, socks, nil, nil) }
}

// HostileBase is a timestamp with nanoseconds inside today's partition.
func HostileBase() int64 { return time.Now().Truncate(time.Second).UnixNano() + 123_456_789 }

// SchemaDB returns a fresh database of the test binary's private MariaDB,
// opened with open (the loader's or the querier's OpenDB), with the schema
// applied, and its DSN.
func SchemaDB(t testing.TB, open func(dsn string) (*sql.DB, error)) (*sql.DB, string) {
	t.Helper()
	m := testutil.StartMariaDB(t)
	dsn, _ := m.NewDatabase(t)
	db, err := open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := schema.Apply(ctx, db); err != nil {
		t.Fatal(err)
	}
	return db, dsn
}

// NewDB is SchemaDB with day partitions from yesterday to two days ahead.
func NewDB(t testing.TB, open func(dsn string) (*sql.DB, error)) (*sql.DB, string) {
	t.Helper()
	db, dsn := SchemaDB(t, open)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	now := time.Now()
	if _, err := schema.EnsurePartitions(ctx, db, now.AddDate(0, 0, -1), now.AddDate(0, 0, 2)); err != nil {
		t.Fatal(err)
	}
	return db, dsn
}

// KeyLine returns the authorized_keys line, with comment, of a fresh
// Ed25519 key, and the key.
func KeyLine(t testing.TB, comment string) (string, ed25519.PublicKey) {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	line, err := spool.PublicKeyLine(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(line) + " " + comment, pub
}

// Lines returns the rows of query, each as its columns' text joined by
// single spaces; a NULL column fails the test.
func Lines(t testing.TB, db *sql.DB, query string, args ...any) []string {
	t.Helper()
	var out []string
	testutil.EachRow(t, db, func(row testutil.Row) {
		cols, vals := row.Text()
		line := make([]string, len(vals))
		for i, v := range vals {
			if !v.Valid {
				t.Fatalf("%s: column %s is NULL", query, cols[i])
			}
			line[i] = v.String
		}
		out = append(out, strings.Join(line, " "))
	}, query, args...)
	return out
}

// FindingKeys renders an audit's findings as "host kind from-to file?" lines.
func FindingKeys(r *custody.AuditReport) []string {
	var out []string
	for _, h := range r.Hosts {
		for _, f := range h.Findings {
			s := f.Host + " " + string(f.Kind) + " " + strconv.FormatUint(f.FromSeq, 10) + "-" + strconv.FormatUint(f.ToSeq, 10)
			if f.Problem {
				s += " problem"
			}
			out = append(out, s)
		}
	}
	return out
}

// Audit runs custody.Audit with a deadline and fails the test on an error.
func Audit(t testing.TB, db *sql.DB, opt custody.AuditOptions) *custody.AuditReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	r, err := custody.Audit(ctx, db, opt)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
