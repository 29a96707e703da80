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
	"sort"
	"strings"
	"time"

	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/spool"
	"github.com/pofr/pofr/wire"
)

// Sentinel errors of the registration store.
var (
	// ErrNoRequest reports an unknown registration request id.
	ErrNoRequest = registry.ErrNoRequest
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

// Registration is one registration request as the server keeps it: in
// requests/<request_id>.json under the state directory, or a row of the
// MariaDB registry (package registry).
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
func LoadRegistration(reg registry.Store, id string) (*Registration, error) {
	b, err := reg.Request(id)
	if err != nil {
		return nil, err
	}
	var r Registration
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("load request %s: %w", id, err)
	}
	if r.RequestID != id {
		return nil, fmt.Errorf("load request %s: record names request %q", id, r.RequestID)
	}
	return &r, nil
}

func saveRegistration(reg registry.Store, r *Registration) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("save request %s: %w", r.RequestID, err)
	}
	return reg.PutRequest(registry.Request{ID: r.RequestID, Pending: r.Status == wire.StatusPending, CreatedAt: r.CreatedAt, Record: append(b, '\n')})
}

// ListRegistrations returns every request kept, oldest first.
func ListRegistrations(reg registry.Store) ([]*Registration, error) {
	bs, err := reg.Requests()
	if err != nil {
		return nil, err
	}
	var out []*Registration
	for _, b := range bs {
		var r Registration
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("list requests: %w", err)
		}
		out = append(out, &r)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, nil
}

// tokenPrefix starts every token, so that it is recognisable in files.
const tokenPrefix = "pofr-"

// CreateToken makes a one-time registration token valid for ttl and returns
// it. Only its SHA-256 is stored; the token itself cannot be shown again.
func CreateToken(reg registry.Store, ttl time.Duration) (string, error) {
	if ttl <= 0 {
		return "", fmt.Errorf("create token: ttl %v must be positive", ttl)
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("create token: %w", err)
	}
	tok := tokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	now := time.Now().UTC()
	if err := reg.PutToken(hashToken([]byte(tok)), registry.Token{CreatedAt: now, ExpiresAt: now.Add(ttl)}); err != nil {
		return "", fmt.Errorf("create token: %w", err)
	}
	return tok, nil
}

func hashToken(tok []byte) string {
	h := sha256.Sum256(tok)
	return hex.EncodeToString(h[:])
}

// checkToken reports whether secret is an unexpired token, and returns its
// hash. An expired token is removed.
func checkToken(reg registry.Store, secret []byte, now time.Time) (string, bool) {
	if !strings.HasPrefix(string(secret), tokenPrefix) || len(secret) > 128 {
		return "", false
	}
	h := hashToken(secret)
	t, err := reg.Token(h)
	if err != nil {
		return "", false
	}
	if now.After(t.ExpiresAt) {
		reg.DeleteToken(h)
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
func duplicates(reg registry.Store, r *Registration) ([]string, string, error) {
	hosts, err := reg.Hosts()
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
func notOwnedBy(reg registry.Store, ids []string, r *Registration) []string {
	var out []string
	for _, id := range ids {
		h, err := reg.Host(id)
		if err != nil || h.SSHKey == "" || wire.Fingerprint(h.SSHKey) != r.Fingerprint() {
			out = append(out, id)
		}
	}
	return out
}

// submit records a request from the network and decides it when it can:
// a token approves it, a duplicate without replace denies it, anything else
// waits for an admin. A request id seen before answers with its state (and a
// token may approve a pending one). Call inside reg.Update.
func submit(reg registry.Store, req *wire.Request, auth Auth, tokenHash, remote string, now time.Time) (*Registration, error) {
	r, err := LoadRegistration(reg, req.RequestID)
	switch {
	case err == nil:
		if wire.Fingerprint(r.SSHKey) != wire.Fingerprint(req.SSHKey) {
			return nil, fmt.Errorf("%w: request id belongs to another key", wire.ErrBadRequest)
		}
		if r.Status != wire.StatusPending || tokenHash == "" {
			return r, nil
		}
		r.Auth = auth
		return decide(reg, r, tokenHash, now)
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
	dups, why, err := duplicates(reg, r)
	if err != nil {
		return nil, err
	}
	if len(dups) > 0 && !r.Replace {
		r.Status, r.Reason, r.DecidedAt, r.DecidedBy = wire.StatusDenied, "duplicate machine: "+why+"; register with --replace to replace it", now.UTC(), ByServer
		return r, nil
	}
	pending, err := reg.CountPending()
	if err != nil {
		return nil, err
	}
	if pending >= MaxPending {
		return nil, ErrTooManyPending
	}
	if tokenHash != "" {
		return decide(reg, r, tokenHash, now)
	}
	return r, saveRegistration(reg, r)
}

// decide approves r with a token, or denies it as a duplicate.
func decide(reg registry.Store, r *Registration, tokenHash string, now time.Time) (*Registration, error) {
	dups, why, err := duplicates(reg, r)
	if err != nil {
		return nil, err
	}
	if len(dups) > 0 && !r.Replace {
		r.Status, r.Reason, r.DecidedAt, r.DecidedBy = wire.StatusDenied, "duplicate machine: "+why+"; register with --replace to replace it", now.UTC(), ByServer
		return r, saveRegistration(reg, r)
	}
	// A token approves a new host, and the replacement of a host only when
	// the request proved possession of that host's upload key (the same
	// machine registering again with its kept keys). Anyone who read another
	// host's machine-id could otherwise revoke it: that waits for an admin.
	if foreign := notOwnedBy(reg, dups, r); len(foreign) > 0 {
		r.Reason = fmt.Sprintf("replacing host %s needs an administrator's approval (the request is not signed by its upload key)", strings.Join(foreign, ", "))
		return r, saveRegistration(reg, r)
	}
	// One-time: the token file goes before the grant is written; if it is
	// gone already, another request used it and this one waits for an admin.
	if ok, err := reg.DeleteToken(tokenHash); err != nil || !ok {
		return r, saveRegistration(reg, r)
	}
	if err := grant(reg, r, dups, ByToken, now); err != nil {
		return nil, err
	}
	return r, nil
}

// grant assigns a host id, revokes the hosts r replaces and writes the
// registry. Call inside reg.Update.
func grant(reg registry.Store, r *Registration, replaces []string, by Decider, now time.Time) error {
	for _, id := range replaces {
		if err := revoke(reg, id, false); err != nil {
			return err
		}
	}
	id, err := newHostID(reg, r.Facts.Hostname)
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
	if err := reg.PutHost(h); err != nil {
		return err
	}
	r.Status, r.HostID, r.DecidedAt, r.DecidedBy, r.Replaces, r.Reason = wire.StatusGranted, id, now.UTC(), by, replaces, ""
	return saveRegistration(reg, r)
}

// newHostID derives an unused host id from the hostname's first label and a
// random suffix: "web-01-3fa9c2", or "h-3fa9c2d1" for an unusable name.
func newHostID(reg registry.Store, hostname string) (string, error) {
	base := wire.IDBase(hostname)
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
		_, err := reg.Host(id)
		if errors.Is(err, registry.ErrNotFound) {
			if _, err := os.Stat(reg.Local().Host(id).Dir); errors.Is(err, os.ErrNotExist) {
				return id, nil
			}
		} else if err != nil {
			return "", fmt.Errorf("new host id: %w", err)
		}
	}
	return "", errors.New("new host id: no free id after 10 tries")
}

// Approve grants a pending request as an admin: it assigns the host id,
// writes the registry and, when the request asked to replace a duplicate,
// revokes the hosts it replaces. A duplicate without replace is refused with
// ErrDuplicate and stays pending.
func Approve(reg registry.Store, requestID string) (*Registration, error) {
	return decidePending(reg, requestID, "approve", func(reg registry.Store, r *Registration) (*Registration, error) {
		dups, why, err := duplicates(reg, r)
		if err != nil {
			return nil, err
		}
		if len(dups) > 0 && !r.Replace {
			return r, fmt.Errorf("approve %s: %w: %s", requestID, ErrDuplicate, why)
		}
		if err := grant(reg, r, dups, ByAdmin, time.Now()); err != nil {
			return nil, fmt.Errorf("approve %s: %w", requestID, err)
		}
		return r, nil
	})
}

// Deny refuses a pending request with a reason the host will print.
func Deny(reg registry.Store, requestID, reason string) (*Registration, error) {
	return decidePending(reg, requestID, "deny", func(reg registry.Store, r *Registration) (*Registration, error) {
		if reason == "" {
			reason = "denied by the server's administrator"
		}
		r.Status, r.Reason, r.DecidedAt, r.DecidedBy = wire.StatusDenied, reason, time.Now().UTC(), ByAdmin
		return r, saveRegistration(reg, r)
	})
}

// decidePending hands an admin's decision the pending request requestID,
// loaded inside reg.Update; a request already decided is refused with
// ErrDecided (verb names the decision in the error).
func decidePending(reg registry.Store, requestID, verb string, decide func(registry.Store, *Registration) (*Registration, error)) (*Registration, error) {
	var out *Registration
	err := reg.Update(func(reg registry.Store) error {
		r, err := LoadRegistration(reg, requestID)
		if err != nil {
			return err
		}
		if r.Status != wire.StatusPending {
			out = r
			return fmt.Errorf("%s %s: %w (%s)", verb, requestID, ErrDecided, r.Status)
		}
		out, err = decide(reg, r)
		return err
	})
	return out, err
}

// Revoke deregisters a host: its status becomes revoked and its upload key
// is removed, so it can no longer log in. With purge its inbox, archive and
// quarantine directories are deleted too; rows already in the database are
// the loader's to keep or remove.
func Revoke(reg registry.Store, hostID string, purge bool) error {
	return reg.Update(func(reg registry.Store) error { return revoke(reg, hostID, purge) })
}

func revoke(reg registry.Store, hostID string, purge bool) error {
	h, err := reg.Host(hostID)
	if err != nil {
		return fmt.Errorf("revoke host: %w", err)
	}
	h.Status, h.SSHKey = registry.StatusRevoked, ""
	if err := reg.PutHost(h); err != nil {
		return fmt.Errorf("revoke host %s: %w", hostID, err)
	}
	if purge {
		d := reg.Local().Host(hostID)
		for _, dir := range []string{d.Inbox, d.Archive, d.Quarantine} {
			if err := os.RemoveAll(dir); err != nil {
				return fmt.Errorf("purge host %s: %w", hostID, err)
			}
		}
	}
	return nil
}
