package receiver

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pofr/pofr/internal/durable"
	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/spool"
	"github.com/pofr/pofr/wire"
)

// Sentinel errors of the registration store.
var (
	// ErrNoRequest reports an unknown registration request id.
	ErrNoRequest = errors.New("receiver: no such registration request")
	// ErrDecided reports an approve or deny of a request already decided.
	ErrDecided = errors.New("receiver: registration request already decided")
	// ErrDuplicate reports a registration of a machine or key that belongs
	// to an active host, without replace.
	ErrDuplicate = errors.New("receiver: duplicate of an active host")
	// ErrTooManyPending reports that the pending queue is full.
	ErrTooManyPending = errors.New("receiver: too many pending registration requests")
)

// MaxPending bounds the pending registration requests kept on disk, so that a
// holder of the registration password cannot fill the disk.
const MaxPending = 1000

// Decider says who decided a registration request.
type Decider string

// Who decided a request.
const (
	ByToken  Decider = "token"  // granted at once: a valid one-time token
	ByAdmin  Decider = "admin"  // registrations approve or deny
	ByServer Decider = "server" // denied at once: a duplicate machine
)

// Auth is how a registration request authenticated.
type Auth string

// How a request authenticated.
const (
	AuthPassword Auth = "password" // the registration password
	AuthToken    Auth = "token"    // a one-time token
)

// Registration is one registration request as the server keeps it, in
// requests/<request_id>.json under the state directory.
type Registration struct {
	RequestID  string      `json:"request_id"`
	Status     wire.Status `json:"status"` // wire.StatusPending, StatusGranted or StatusDenied
	Reason     string      `json:"reason,omitempty"`
	HostID     string      `json:"host_id,omitempty"`
	Facts      wire.Facts  `json:"facts"`
	SSHKey     string      `json:"ssh_key"`
	SigningKey []byte      `json:"signing_key"`
	Replace    bool        `json:"replace,omitempty"`
	Auth       Auth        `json:"auth"`
	RemoteAddr string      `json:"remote_addr,omitempty"`
	CreatedAt  time.Time   `json:"created_at"`
	DecidedAt  time.Time   `json:"decided_at,omitzero"`
	DecidedBy  Decider     `json:"decided_by,omitempty"`
	// Replaces lists the hosts revoked when this request was granted.
	Replaces []string `json:"replaces,omitempty"`
}

// Fingerprint returns the SHA256 fingerprint of the request's upload key.
func (r *Registration) Fingerprint() string { return wire.Fingerprint(r.SSHKey) }

// LoadRegistration reads one request.
func LoadRegistration(state statedir.Dir, id string) (*Registration, error) {
	if !wire.ValidRequestID(id) {
		return nil, fmt.Errorf("load request %q: %w", id, ErrNoRequest)
	}
	b, err := os.ReadFile(state.Request(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("load request %s: %w", id, ErrNoRequest)
	}
	if err != nil {
		return nil, fmt.Errorf("load request %s: %w", id, err)
	}
	var r Registration
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("load request %s: %w", id, err)
	}
	if r.RequestID != id {
		return nil, fmt.Errorf("load request %s: file names request %q", id, r.RequestID)
	}
	return &r, nil
}

func saveRegistration(state statedir.Dir, r *Registration) error {
	if err := os.MkdirAll(state.Requests(), 0o700); err != nil {
		return fmt.Errorf("save request %s: %w", r.RequestID, err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("save request %s: %w", r.RequestID, err)
	}
	return durable.WriteFile(state.Request(r.RequestID), append(b, '\n'), 0o600)
}

// ListRegistrations returns every request kept, oldest first.
func ListRegistrations(state statedir.Dir) ([]*Registration, error) {
	ents, err := os.ReadDir(state.Requests())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	var out []*Registration
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !wire.ValidRequestID(id) {
			continue
		}
		r, err := LoadRegistration(state, id)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, nil
}

// token is a one-time registration token as stored: only its hash names the
// file.
type token struct {
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// tokenPrefix starts every token, so that it is recognisable in files.
const tokenPrefix = "pofr-"

// CreateToken makes a one-time registration token valid for ttl and returns
// it. Only its SHA-256 is stored; the token itself cannot be shown again.
func CreateToken(state statedir.Dir, ttl time.Duration) (string, error) {
	if ttl <= 0 {
		return "", fmt.Errorf("create token: ttl %v must be positive", ttl)
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("create token: %w", err)
	}
	tok := tokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	if err := os.MkdirAll(state.Tokens(), 0o700); err != nil {
		return "", fmt.Errorf("create token: %w", err)
	}
	now := time.Now().UTC()
	data, _ := json.Marshal(token{CreatedAt: now, ExpiresAt: now.Add(ttl)})
	if err := durable.WriteFile(state.Token(hashToken([]byte(tok))), data, 0o600); err != nil {
		return "", fmt.Errorf("create token: %w", err)
	}
	return tok, nil
}

func hashToken(tok []byte) string {
	h := sha256.Sum256(tok)
	return hex.EncodeToString(h[:])
}

// checkToken reports whether secret is an unexpired token, and returns its
// hash. An expired token's file is removed.
func checkToken(state statedir.Dir, secret []byte, now time.Time) (string, bool) {
	if !strings.HasPrefix(string(secret), tokenPrefix) || len(secret) > 128 {
		return "", false
	}
	h := hashToken(secret)
	b, err := os.ReadFile(state.Token(h))
	if err != nil {
		return "", false
	}
	var t token
	if json.Unmarshal(b, &t) != nil {
		return "", false
	}
	if now.After(t.ExpiresAt) {
		os.Remove(state.Token(h))
		return "", false
	}
	return h, true
}

// checkPassword compares secret with the registration password in constant
// time. An empty password never matches.
func checkPassword(password, secret []byte) bool {
	if len(password) == 0 {
		return false
	}
	a := sha256.Sum256(password)
	b := sha256.Sum256(secret)
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// duplicates returns the active hosts that share the request's machine id,
// DMI uuid or upload key, with the reason.
func duplicates(state statedir.Dir, r *Registration) ([]string, string, error) {
	hosts, err := registry.List(state)
	if err != nil {
		return nil, "", err
	}
	var ids []string
	var why string
	for _, h := range hosts {
		if h.Status != registry.StatusActive {
			continue
		}
		var w string
		switch {
		case h.MachineID == r.Facts.MachineID:
			w = "same machine-id"
		case r.Facts.DMIUUID != "" && strings.EqualFold(h.DMIUUID, r.Facts.DMIUUID):
			w = "same DMI uuid"
		case h.SSHKey != "" && wire.Fingerprint(h.SSHKey) == r.Fingerprint():
			w = "same upload key"
		default:
			continue
		}
		ids = append(ids, h.HostID)
		if why == "" {
			why = fmt.Sprintf("host %s is active with the %s", h.HostID, w)
		}
	}
	return ids, why, nil
}

// notOwnedBy returns the hosts among ids whose upload key is not the
// request's (whose possession the request proved).
func notOwnedBy(state statedir.Dir, ids []string, r *Registration) []string {
	var out []string
	for _, id := range ids {
		h, err := registry.Load(state, id)
		if err != nil || h.SSHKey == "" || wire.Fingerprint(h.SSHKey) != r.Fingerprint() {
			out = append(out, id)
		}
	}
	return out
}

// submit records a request from the network and decides it when it can:
// a token approves it, a duplicate without replace denies it, anything else
// waits for an admin. A request id seen before answers with its state (and a
// token may approve a pending one). Call with the state lock held.
func submit(state statedir.Dir, req *wire.Request, auth Auth, tokenHash, remote string, now time.Time) (*Registration, error) {
	r, err := LoadRegistration(state, req.RequestID)
	switch {
	case err == nil:
		if wire.Fingerprint(r.SSHKey) != wire.Fingerprint(req.SSHKey) {
			return nil, fmt.Errorf("%w: request id belongs to another key", wire.ErrBadRequest)
		}
		if r.Status != wire.StatusPending || tokenHash == "" {
			return r, nil
		}
		r.Auth = auth
		return decide(state, r, tokenHash, now)
	case !errors.Is(err, ErrNoRequest):
		return nil, err
	}
	r = &Registration{
		RequestID:  req.RequestID,
		Status:     wire.StatusPending,
		Facts:      req.Facts,
		SSHKey:     strings.TrimSpace(req.SSHKey),
		SigningKey: req.SigningKey,
		Replace:    req.Replace,
		Auth:       auth,
		RemoteAddr: remote,
		CreatedAt:  now.UTC(),
	}
	// A duplicate without replace is denied at once and not stored: the
	// answer tells the host, the log the admin, and a stranger repeating it
	// cannot fill the disk.
	dups, why, err := duplicates(state, r)
	if err != nil {
		return nil, err
	}
	if len(dups) > 0 && !r.Replace {
		r.Status, r.Reason, r.DecidedAt, r.DecidedBy = wire.StatusDenied, "duplicate machine: "+why+"; register with --replace to replace it", now.UTC(), ByServer
		return r, nil
	}
	pending, err := countPending(state)
	if err != nil {
		return nil, err
	}
	if pending >= MaxPending {
		return nil, ErrTooManyPending
	}
	if tokenHash != "" {
		return decide(state, r, tokenHash, now)
	}
	return r, saveRegistration(state, r)
}

// decide approves r with a token, or denies it as a duplicate.
func decide(state statedir.Dir, r *Registration, tokenHash string, now time.Time) (*Registration, error) {
	dups, why, err := duplicates(state, r)
	if err != nil {
		return nil, err
	}
	if len(dups) > 0 && !r.Replace {
		r.Status, r.Reason, r.DecidedAt, r.DecidedBy = wire.StatusDenied, "duplicate machine: "+why+"; register with --replace to replace it", now.UTC(), ByServer
		return r, saveRegistration(state, r)
	}
	// A token approves a new host, and the replacement of a host only when
	// the request proved possession of that host's upload key (the same
	// machine registering again with its kept keys). Anyone who read another
	// host's machine-id could otherwise revoke it: that waits for an admin.
	if foreign := notOwnedBy(state, dups, r); len(foreign) > 0 {
		r.Reason = fmt.Sprintf("replacing host %s needs an administrator's approval (the request is not signed by its upload key)", strings.Join(foreign, ", "))
		return r, saveRegistration(state, r)
	}
	// One-time: the token file goes before the grant is written; if it is
	// gone already, another request used it and this one waits for an admin.
	if err := os.Remove(state.Token(tokenHash)); err != nil {
		return r, saveRegistration(state, r)
	}
	if err := grant(state, r, dups, ByToken, now); err != nil {
		return nil, err
	}
	return r, nil
}

// grant assigns a host id, revokes the hosts r replaces and writes the
// registry. Call with the state lock held.
func grant(state statedir.Dir, r *Registration, replaces []string, by Decider, now time.Time) error {
	for _, id := range replaces {
		if err := revoke(state, id, false); err != nil {
			return err
		}
	}
	id, err := newHostID(state, r.Facts.Hostname)
	if err != nil {
		return err
	}
	h := &registry.Host{
		HostID:       id,
		Facts:        r.Facts,
		SSHKey:       r.SSHKey,
		SigningKey:   r.SigningKey,
		Status:       registry.StatusActive,
		RegisteredAt: now.UTC(),
		LastIP:       r.RemoteAddr,
	}
	if err := registry.Save(state, h); err != nil {
		return err
	}
	r.Status, r.HostID, r.DecidedAt, r.DecidedBy, r.Replaces, r.Reason = wire.StatusGranted, id, now.UTC(), by, replaces, ""
	return saveRegistration(state, r)
}

// newHostID derives an unused host id from the hostname's first label and a
// random suffix: "web-01-3fa9c2", or "h-3fa9c2d1" for an unusable name.
func newHostID(state statedir.Dir, hostname string) (string, error) {
	base := registry.IDBase(hostname)
	for range 10 {
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("new host id: %w", err)
		}
		id := "h-" + hex.EncodeToString(b[:])
		if base != "" {
			id = base + "-" + hex.EncodeToString(b[:3])
		}
		if !spool.ValidHostID(id) {
			continue
		}
		if _, err := os.Stat(state.Host(id).Dir); errors.Is(err, os.ErrNotExist) {
			return id, nil
		}
	}
	return "", errors.New("new host id: no free id after 10 tries")
}

// statusIndex remembers the status of each request file by its size and
// modification time, so that counting the pending requests at every new
// request stats the files instead of reading them all.
var statusIndex = struct {
	sync.Mutex
	m map[string]indexedStatus // path → status
}{m: map[string]indexedStatus{}}

type indexedStatus struct {
	size   int64
	mtime  time.Time
	status wire.Status
}

// countPending counts the pending requests, reading only the files that
// changed since the last count.
func countPending(state statedir.Dir) (int, error) {
	dir := state.Requests()
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
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
			r, err := LoadRegistration(state, id)
			if err != nil {
				return 0, err
			}
			ix = indexedStatus{size: fi.Size(), mtime: fi.ModTime(), status: r.Status}
			statusIndex.m[p] = ix
		}
		if ix.status == wire.StatusPending {
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

// Approve grants a pending request as an admin: it assigns the host id,
// writes the registry and, when the request asked to replace a duplicate,
// revokes the hosts it replaces. A duplicate without replace is refused with
// ErrDuplicate and stays pending.
func Approve(state statedir.Dir, requestID string) (*Registration, error) {
	return decidePending(state, requestID, "approve", func(r *Registration) (*Registration, error) {
		dups, why, err := duplicates(state, r)
		if err != nil {
			return nil, err
		}
		if len(dups) > 0 && !r.Replace {
			return r, fmt.Errorf("approve %s: %w: %s", requestID, ErrDuplicate, why)
		}
		if err := grant(state, r, dups, ByAdmin, time.Now()); err != nil {
			return nil, fmt.Errorf("approve %s: %w", requestID, err)
		}
		return r, nil
	})
}

// Deny refuses a pending request with a reason the host will print.
func Deny(state statedir.Dir, requestID, reason string) (*Registration, error) {
	return decidePending(state, requestID, "deny", func(r *Registration) (*Registration, error) {
		if reason == "" {
			reason = "denied by the server's administrator"
		}
		r.Status, r.Reason, r.DecidedAt, r.DecidedBy = wire.StatusDenied, reason, time.Now().UTC(), ByAdmin
		return r, saveRegistration(state, r)
	})
}

// decidePending hands an admin's decision the pending request requestID,
// loaded under the state lock; a request already decided is refused with
// ErrDecided (verb names the decision in the error).
func decidePending(state statedir.Dir, requestID, verb string, decide func(*Registration) (*Registration, error)) (*Registration, error) {
	unlock, err := lockState(state)
	if err != nil {
		return nil, err
	}
	defer unlock()
	r, err := LoadRegistration(state, requestID)
	if err != nil {
		return nil, err
	}
	if r.Status != wire.StatusPending {
		return r, fmt.Errorf("%s %s: %w (%s)", verb, requestID, ErrDecided, r.Status)
	}
	return decide(r)
}

// Revoke deregisters a host: its status becomes revoked and its upload key
// is removed, so it can no longer log in. With purge its inbox, archive and
// quarantine directories are deleted too; rows already in the database are
// the loader's to keep or remove.
func Revoke(state statedir.Dir, hostID string, purge bool) error {
	unlock, err := lockState(state)
	if err != nil {
		return err
	}
	defer unlock()
	return revoke(state, hostID, purge)
}

func revoke(state statedir.Dir, hostID string, purge bool) error {
	h, err := registry.Load(state, hostID)
	if err != nil {
		return fmt.Errorf("revoke host: %w", err)
	}
	h.Status, h.SSHKey = registry.StatusRevoked, ""
	if err := registry.Save(state, h); err != nil {
		return fmt.Errorf("revoke host %s: %w", hostID, err)
	}
	if purge {
		d := state.Host(hostID)
		for _, dir := range []string{d.Inbox, d.Archive, d.Quarantine} {
			if err := os.RemoveAll(dir); err != nil {
				return fmt.Errorf("purge host %s: %w", hostID, err)
			}
		}
	}
	return nil
}
