// Package registry is the server's registry of hosts, registration requests
// and tokens, behind one interface (Store) with two implementations:
//
//   - Files (the default): one host.json (0600) per host and the request
//     and token files under the server's state directory (package statedir
//     has the layout), so that one server accepts uploads and loads while
//     MariaDB is down;
//   - DB: the same records in MariaDB tables, named by the shard map's
//     "registry" entry, so that several receivers (behind DNS or a load
//     balancer) and their loaders share one registry. Changes are ordered
//     by a transaction that locks one row, as the files are by a lock file.
//
// The receiver and the admin commands write it; the loader reads it.
//
// Host ids are assigned by the server at approval; they match
// [spool.ValidHostID].
package registry

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/pofr/pofr/internal/durable"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/spool"
	"github.com/pofr/pofr/wire"
)

// Status is a host's standing in the registry (and in the hosts table).
type Status string

// Host statuses.
const (
	StatusActive  Status = "active"  // may upload
	StatusRevoked Status = "revoked" // deregistered: uploads refused, files kept until cleaned
)

// ErrNotFound reports an unknown host id.
var ErrNotFound = errors.New("registry: host not found")

// Host is one registered host: the facts it reported when it registered
// (their fields sit at the top level of host.json, as before), its keys and
// its status.
type Host struct {
	HostID string `json:"host_id"`
	wire.Facts
	SSHKey       string    `json:"ssh_key"`     // authorized_keys line of the upload key
	SigningKey   []byte    `json:"signing_key"` // raw 32-byte Ed25519 public key that signs segments
	Status       Status    `json:"status"`
	RegisteredAt time.Time `json:"registered_at"`
	LastIP       string    `json:"last_ip,omitempty"`
	// Shard is the shard (package fleet) holding the host's rows; "" when
	// the server runs without a shard map.
	Shard string `json:"shard,omitempty"`
}

// SigningPublicKey returns the host's segment-signing key.
func (h *Host) SigningPublicKey() (ed25519.PublicKey, error) {
	if len(h.SigningKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("host %s: signing key has %d bytes, want %d", h.HostID, len(h.SigningKey), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(h.SigningKey), nil
}

// Load reads host id from the registry under state.
func Load(state statedir.Dir, id string) (*Host, error) {
	if !spool.ValidHostID(id) {
		return nil, fmt.Errorf("load host %q: %w", id, ErrNotFound)
	}
	b, err := os.ReadFile(state.Host(id).Record)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("load host %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load host %s: %w", id, err)
	}
	return decodeHost(id, b)
}

// decodeHost parses host id's record, which must name it.
func decodeHost(id string, b []byte) (*Host, error) {
	if len(b) > maxRecordBytes {
		return nil, fmt.Errorf("load host %s: record of %d bytes", id, len(b))
	}
	var h Host
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("load host %s: %w", id, err)
	}
	if h.HostID != id {
		return nil, fmt.Errorf("load host %s: record names host %q", id, h.HostID)
	}
	return &h, nil
}

// List returns every host in the registry, ordered by id.
func List(state statedir.Dir) ([]*Host, error) {
	ents, err := statedir.ReadDir(state.Hosts())
	if err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	var out []*Host
	for _, e := range ents {
		if !e.IsDir() || !spool.ValidHostID(e.Name()) {
			continue
		}
		h, err := Load(state, e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	SortHosts(out)
	return out, nil
}

// Save writes h atomically (temp file, fsync, rename, fsync dir) and creates
// the host's inbox, archive and quarantine directories.
func Save(state statedir.Dir, h *Host) error {
	if !spool.ValidHostID(h.HostID) {
		return fmt.Errorf("save host %q: invalid host id", h.HostID)
	}
	if err := EnsureDirs(state, h.HostID); err != nil {
		return fmt.Errorf("save host: %w", err)
	}
	b, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return fmt.Errorf("save host %s: %w", h.HostID, err)
	}
	return durable.WriteFile(state.Host(h.HostID).Record, append(b, '\n'), 0o600)
}
