// Package statedir is the layout of pofr-server's state directory, in one
// place. The receiver writes it, the loader and the custody commands read
// and move files in it, and the file registry keeps its host records,
// requests and tokens there (with a MariaDB registry, package registry, the
// hosts/, requests/ and tokens/ entries are not used):
//
//	ssh_host_ed25519_key   the receiver's SSH host key
//	hosts/<host_id>/       the registry: host.json per host (package registry)
//	inbox/<host_id>/       segments received from the host (or a link to an
//	                       OpenSSH account's upload directory)
//	archive/<host_id>/     segments loaded, kept as evidence
//	quarantine/<host_id>/  segments refused, a .reason file beside each
//	requests/<id>.json     registration requests
//	tokens/<sha256>.json   one-time registration tokens (their hashes)
//	.lock                  orders changes to requests and the registry
//	load.lock              held by the one running loader
package statedir

import (
	"errors"
	"os"
	"path/filepath"
)

// Default is the state directory when no --state-dir is given.
const Default Dir = "/var/lib/pofr-server"

// Dir is the root of a server state directory.
type Dir string

// String returns the directory's path.
func (d Dir) String() string { return string(d) }

func (d Dir) join(elem ...string) string {
	return filepath.Join(append([]string{string(d)}, elem...)...)
}

// HostKey is the receiver's SSH host key file.
func (d Dir) HostKey() string { return d.join("ssh_host_ed25519_key") }

// Hosts holds one directory per registered host.
func (d Dir) Hosts() string { return d.join("hosts") }

// Inboxes holds one inbox per host.
func (d Dir) Inboxes() string { return d.join("inbox") }

// Archives holds one archive per host.
func (d Dir) Archives() string { return d.join("archive") }

// Quarantines holds one quarantine per host.
func (d Dir) Quarantines() string { return d.join("quarantine") }

// Requests holds the registration requests.
func (d Dir) Requests() string { return d.join("requests") }

// Request is the file of registration request id.
func (d Dir) Request(id string) string { return d.join("requests", id+".json") }

// Tokens holds the registration tokens.
func (d Dir) Tokens() string { return d.join("tokens") }

// Token is the file of the token whose SHA-256 is hash (hex).
func (d Dir) Token(hash string) string { return d.join("tokens", hash+".json") }

// Lock is the file whose lock orders changes to requests and the registry.
func (d Dir) Lock() string { return d.join(".lock") }

// LoadLock is the file the running loader holds locked.
func (d Dir) LoadLock() string { return d.join("load.lock") }

// Host are the directories of one host.
type Host struct {
	Dir        string // hosts/<id>
	Record     string // hosts/<id>/host.json: its registry record
	Inbox      string
	Archive    string
	Quarantine string
}

// Host returns the directories of host id. id must be a valid host id
// (spool.ValidHostID), so that it is one path element.
func (d Dir) Host(id string) Host {
	return Host{
		Dir:        d.join("hosts", id),
		Record:     d.join("hosts", id, "host.json"),
		Inbox:      d.join("inbox", id),
		Archive:    d.join("archive", id),
		Quarantine: d.join("quarantine", id),
	}
}

// ReadDir is os.ReadDir for the directories of the layout, which appear with
// their first entry (the receiver makes a host's inbox at its first upload,
// the registry hosts/ at its first host, retention an archive at its first
// file): a directory that does not exist is empty.
func ReadDir(dir string) ([]os.DirEntry, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return ents, err
}
