package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pofr/pofr/internal/durable"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/wire"
)

// Sentinel errors of a Store.
var (
	// ErrNoRequest reports an unknown registration request id.
	ErrNoRequest = errors.New("receiver: no such registration request")
	// ErrNoToken reports an unknown registration token.
	ErrNoToken = errors.New("registry: no such token")
)

// Request is a registration request as a Store keeps it: the receiver's
// JSON record (package receiver defines it) and the two facts the store
// indexes.
type Request struct {
	ID        string
	Pending   bool
	CreatedAt time.Time
	Record    []byte // JSON
}

// Token is a one-time registration token as stored; only its SHA-256 (hex)
// names it.
type Token struct {
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Store is where the registry lives: Files, under one server's state
// directory (the default), or DB, MariaDB tables that several receivers and
// loaders share. Either way Local is this server's state directory, which
// keeps what stays on the machine: the SSH host key, the inboxes, archives
// and quarantines.
type Store interface {
	// Local is this server's state directory.
	Local() statedir.Dir
	// Host returns host id (ErrNotFound), Hosts every host by id.
	Host(id string) (*Host, error)
	Hosts() ([]*Host, error)
	// PutHost writes h and creates its local directories.
	PutHost(h *Host) error
	// Request returns request id's record (ErrNoRequest), Requests every
	// request's.
	Request(id string) ([]byte, error)
	Requests() ([][]byte, error)
	PutRequest(r Request) error
	// CountPending counts the pending requests.
	CountPending() (int, error)
	// Token returns the token whose hash is hash (ErrNoToken).
	Token(hash string) (Token, error)
	PutToken(hash string, t Token) error
	// DeleteToken removes a token and reports whether it was there: of
	// two concurrent deletes, one only sees true.
	DeleteToken(hash string) (bool, error)
	// TokenHashes lists the stored tokens.
	TokenHashes() ([]string, error)
	// Update runs fn with the registry locked against every other Update
	// (of any process sharing the store): fn's store reads and writes
	// under that lock, and with DB in one transaction, committed when fn
	// returns nil. fn may run again after a conflict (Galera), so it
	// loads what it decides on inside.
	Update(fn func(Store) error) error
	// String names the store for logs.
	String() string
}

// EnsureDirs creates host id's local inbox, archive and quarantine (and its
// registry directory) under state.
func EnsureDirs(state statedir.Dir, id string) error {
	d := state.Host(id)
	for _, dir := range []string{d.Dir, d.Inbox, d.Archive, d.Quarantine} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("host %s: %w", id, err)
		}
	}
	return nil
}

// Files is the registry in files under a state directory (statedir has
// the layout): one server, no database needed.
type Files struct {
	dir    statedir.Dir
	locked bool // inside Update: the lock is held
}

// NewFiles returns the file registry under state.
func NewFiles(state statedir.Dir) *Files { return &Files{dir: state} }

// Local returns the state directory.
func (f *Files) Local() statedir.Dir { return f.dir }

// String names the store.
func (f *Files) String() string { return "files under " + f.dir.String() }

// Host reads one host.
func (f *Files) Host(id string) (*Host, error) { return Load(f.dir, id) }

// Hosts reads every host.
func (f *Files) Hosts() ([]*Host, error) { return List(f.dir) }

// PutHost writes h.
func (f *Files) PutHost(h *Host) error { return Save(f.dir, h) }

// Request reads one request's file.
func (f *Files) Request(id string) ([]byte, error) {
	if !wire.ValidRequestID(id) {
		return nil, fmt.Errorf("load request %q: %w", id, ErrNoRequest)
	}
	b, err := os.ReadFile(f.dir.Request(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("load request %s: %w", id, ErrNoRequest)
	}
	if err != nil {
		return nil, fmt.Errorf("load request %s: %w", id, err)
	}
	return b, nil
}

// Requests reads every request file.
func (f *Files) Requests() ([][]byte, error) {
	ents, err := statedir.ReadDir(f.dir.Requests())
	if err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	var out [][]byte
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !wire.ValidRequestID(id) {
			continue
		}
		b, err := f.Request(id)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// PutRequest writes a request's file atomically.
func (f *Files) PutRequest(r Request) error {
	if !wire.ValidRequestID(r.ID) {
		return fmt.Errorf("save request %q: invalid id", r.ID)
	}
	if err := os.MkdirAll(f.dir.Requests(), 0o700); err != nil {
		return fmt.Errorf("save request %s: %w", r.ID, err)
	}
	return durable.WriteFile(f.dir.Request(r.ID), r.Record, 0o600)
}

// statusIndex remembers whether each request file is pending by its size
// and modification time, so that counting the pending requests at every new
// request stats the files instead of reading them all.
var statusIndex = struct {
	sync.Mutex
	m map[string]indexedStatus // path → status
}{m: map[string]indexedStatus{}}

type indexedStatus struct {
	size    int64
	mtime   time.Time
	pending bool
}

// CountPending counts the pending requests, reading only the files that
// changed since the last count.
func (f *Files) CountPending() (int, error) {
	dir := f.dir.Requests()
	ents, err := statedir.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("count pending requests: %w", err)
	}
	statusIndex.Lock()
	defer statusIndex.Unlock()
	seen := make(map[string]bool, len(ents))
	n := 0
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !wire.ValidRequestID(id) {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("count pending requests: %w", err)
		}
		p := filepath.Join(dir, e.Name())
		seen[p] = true
		ix, ok := statusIndex.m[p]
		if !ok || ix.size != fi.Size() || !ix.mtime.Equal(fi.ModTime()) {
			b, err := f.Request(id)
			if err != nil {
				return 0, err
			}
			var st struct {
				Status wire.Status `json:"status"`
			}
			if err := json.Unmarshal(b, &st); err != nil {
				return 0, fmt.Errorf("load request %s: %w", id, err)
			}
			ix = indexedStatus{size: fi.Size(), mtime: fi.ModTime(), pending: st.Status == wire.StatusPending}
			statusIndex.m[p] = ix
		}
		if ix.pending {
			n++
		}
	}
	for p := range statusIndex.m {
		if strings.HasPrefix(p, dir+string(filepath.Separator)) && !seen[p] {
			delete(statusIndex.m, p)
		}
	}
	return n, nil
}

// validHash reports whether h is a hex SHA-256.
func validHash(h string) bool {
	if len(h) != 64 {
		return false
	}
	for _, c := range h {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Token reads a token file.
func (f *Files) Token(hash string) (Token, error) {
	var t Token
	if !validHash(hash) {
		return t, ErrNoToken
	}
	b, err := os.ReadFile(f.dir.Token(hash))
	if errors.Is(err, os.ErrNotExist) {
		return t, ErrNoToken
	}
	if err != nil {
		return t, err
	}
	if err := json.Unmarshal(b, &t); err != nil {
		return t, fmt.Errorf("token: %w", err)
	}
	return t, nil
}

// PutToken writes a token file.
func (f *Files) PutToken(hash string, t Token) error {
	if !validHash(hash) {
		return errors.New("put token: invalid hash")
	}
	if err := os.MkdirAll(f.dir.Tokens(), 0o700); err != nil {
		return err
	}
	b, _ := json.Marshal(t)
	return durable.WriteFile(f.dir.Token(hash), b, 0o600)
}

// DeleteToken removes a token file; only one remover succeeds.
func (f *Files) DeleteToken(hash string) (bool, error) {
	if !validHash(hash) {
		return false, nil
	}
	err := os.Remove(f.dir.Token(hash))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// Update runs fn holding the state directory's lock file (flock), which
// orders the server's and the admin commands' changes.
func (f *Files) Update(fn func(Store) error) error {
	if f.locked {
		return fn(f)
	}
	if err := os.MkdirAll(string(f.dir), 0o700); err != nil {
		return fmt.Errorf("lock state: %w", err)
	}
	lf, err := os.OpenFile(f.dir.Lock(), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("lock state: %w", err)
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock state: %w", err)
	}
	return fn(&Files{dir: f.dir, locked: true})
}

// SortHosts orders hosts by id.
func SortHosts(hs []*Host) {
	sort.Slice(hs, func(i, j int) bool { return hs[i].HostID < hs[j].HostID })
}
