package fleet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"

	"github.com/pofr/pofr/internal/durable"
	"github.com/pofr/pofr/spool"
)

// DefaultFile is the shard map read when no --shards is given.
const DefaultFile = "/etc/pofr-server/shards.json"

// MaxFileBytes bounds the size of a shard map file.
const MaxFileBytes = 1 << 20

// MaxShards bounds the number of shards in a map.
const MaxShards = 1024

// Map is the shard map.
type Map struct {
	// Shards hold the hosts' rows; each host lives on exactly one.
	Shards []Shard `json:"shards"`
	// Head, if set, is a Spider head over the shards (pofr-server head
	// apply builds it; query, export and ui read through it).
	Head *Head `json:"head,omitempty"`
	// Registry, if set, keeps the host registry (hosts, keys, registration
	// requests, tokens, shard assignments) in MariaDB, shared by every
	// receiver, loader and admin command that reads this map; otherwise
	// each server keeps it in files under its state directory.
	Registry *Registry `json:"registry,omitempty"`
}

// Registry names the MariaDB database that holds the shared registry.
type Registry struct {
	// DSNFile holds the DSN of an account that may create the registry's
	// tables (at first use) and read and write them.
	DSNFile string `json:"dsn_file"`
}

// Shard is one MariaDB server (or Galera cluster) holding some hosts.
type Shard struct {
	// Name identifies the shard; it is also the head's CREATE SERVER and
	// partition name, so it is a short SQL identifier ([a-z][a-z0-9_]*).
	Name string `json:"name"`
	// AdminDSNFile holds the DSN of the schema owner (schema, retention,
	// deregister --purge-rows).
	AdminDSNFile string `json:"admin_dsn_file"`
	// ReaderDSNFile holds a read-only DSN (verify; the head's Spider
	// server connects with it, so it must name an address the head can
	// reach).
	ReaderDSNFile string `json:"reader_dsn_file,omitempty"`
	// LoaderDSNFiles hold the loader's DSN, one per Galera node, tried in
	// order; one entry for a plain server.
	LoaderDSNFiles []string `json:"loader_dsn_files"`
	// Pinned are host ids an admin pinned to this shard.
	Pinned []string `json:"pinned,omitempty"`
	// Closed shards take no new hosts (their hosts stay).
	Closed bool `json:"closed,omitempty"`
}

// Head is a Spider head: it holds no data.
type Head struct {
	AdminDSNFile  string `json:"admin_dsn_file"`
	ReaderDSNFile string `json:"reader_dsn_file,omitempty"`
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// ValidName reports whether s can name a shard.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// ErrNoMap reports that no shard map file exists (single-server mode).
var ErrNoMap = errors.New("fleet: no shard map")

// Parse reads a shard map strictly: unknown fields, trailing data,
// duplicate or invalid names, missing DSN files and a host pinned twice
// are errors.
func Parse(b []byte) (*Map, error) {
	if len(b) > MaxFileBytes {
		return nil, fmt.Errorf("shard map: %d bytes, at most %d", len(b), MaxFileBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Map
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("shard map: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("shard map: data after the JSON object")
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks the rules Parse enforces.
func (m *Map) Validate() error {
	if len(m.Shards) == 0 {
		return errors.New("shard map: no shards")
	}
	if len(m.Shards) > MaxShards {
		return fmt.Errorf("shard map: %d shards, at most %d", len(m.Shards), MaxShards)
	}
	names := map[string]bool{}
	pinned := map[string]string{}
	for i, s := range m.Shards {
		switch {
		case !ValidName(s.Name):
			return fmt.Errorf("shard map: shard %d: name %q: want [a-z][a-z0-9_]*, at most 32 bytes", i+1, s.Name)
		case names[s.Name]:
			return fmt.Errorf("shard map: shard %q listed twice", s.Name)
		case s.AdminDSNFile == "":
			return fmt.Errorf("shard map: shard %s: admin_dsn_file is required", s.Name)
		case len(s.LoaderDSNFiles) == 0:
			return fmt.Errorf("shard map: shard %s: loader_dsn_files needs at least one file", s.Name)
		}
		for _, f := range s.LoaderDSNFiles {
			if f == "" {
				return fmt.Errorf("shard map: shard %s: empty loader DSN file name", s.Name)
			}
		}
		names[s.Name] = true
		for _, h := range s.Pinned {
			if !spool.ValidHostID(h) {
				return fmt.Errorf("shard map: shard %s: pinned host %q is not a host id", s.Name, h)
			}
			if o, ok := pinned[h]; ok {
				return fmt.Errorf("shard map: host %s pinned to both %s and %s", h, o, s.Name)
			}
			pinned[h] = s.Name
		}
	}
	if m.Head != nil && m.Head.AdminDSNFile == "" {
		return errors.New("shard map: head: admin_dsn_file is required")
	}
	if m.Registry != nil && m.Registry.DSNFile == "" {
		return errors.New("shard map: registry: dsn_file is required")
	}
	return nil
}

// Load reads the shard map in path. Relative DSN file names are taken
// relative to the map's directory. A missing file returns ErrNoMap.
func Load(path string) (*Map, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNoMap, path)
	}
	if err != nil {
		return nil, fmt.Errorf("shard map: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("shard map %s: %w", path, err)
	}
	m, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m.resolve(filepath.Dir(path))
	return m, nil
}

// resolve makes relative DSN file names relative to dir.
func (m *Map) resolve(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	for i := range m.Shards {
		s := &m.Shards[i]
		abs(&s.AdminDSNFile)
		abs(&s.ReaderDSNFile)
		for j := range s.LoaderDSNFiles {
			abs(&s.LoaderDSNFiles[j])
		}
	}
	if m.Head != nil {
		abs(&m.Head.AdminDSNFile)
		abs(&m.Head.ReaderDSNFile)
	}
	if m.Registry != nil {
		abs(&m.Registry.DSNFile)
	}
}

// Save writes m to path atomically (0600) after validating it.
func (m *Map) Save(path string) error {
	if err := m.Validate(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return durable.WriteFile(path, append(b, '\n'), 0o600)
}

// Shard returns the shard called name, or nil.
func (m *Map) Shard(name string) *Shard {
	for i := range m.Shards {
		if m.Shards[i].Name == name {
			return &m.Shards[i]
		}
	}
	return nil
}

// PinnedShard returns the shard host is pinned to, or "".
func (m *Map) PinnedShard(host string) string {
	for _, s := range m.Shards {
		for _, h := range s.Pinned {
			if h == host {
				return s.Name
			}
		}
	}
	return ""
}

// Pin pins host to shard (moving an earlier pin).
func (m *Map) Pin(host, shard string) error {
	if !spool.ValidHostID(host) {
		return fmt.Errorf("pin: %q is not a host id", host)
	}
	if m.Shard(shard) == nil {
		return fmt.Errorf("pin: no shard %q", shard)
	}
	for i := range m.Shards {
		s := &m.Shards[i]
		kept := s.Pinned[:0]
		for _, h := range s.Pinned {
			if h != host {
				kept = append(kept, h)
			}
		}
		s.Pinned = kept
		if s.Name == shard {
			s.Pinned = append(s.Pinned, host)
			sort.Strings(s.Pinned)
		}
	}
	return nil
}

// Assign returns the shard for a new host: the one it is pinned to, else
// the open shard with the fewest active hosts (load: shard name → count),
// ties broken by name. It fails when every shard is closed.
func (m *Map) Assign(host string, load map[string]int) (string, error) {
	if p := m.PinnedShard(host); p != "" {
		return p, nil
	}
	best := ""
	for _, s := range m.Shards {
		if s.Closed {
			continue
		}
		if best == "" || load[s.Name] < load[best] || (load[s.Name] == load[best] && s.Name < best) {
			best = s.Name
		}
	}
	if best == "" {
		return "", errors.New("fleet: every shard is closed to new hosts")
	}
	return best, nil
}
