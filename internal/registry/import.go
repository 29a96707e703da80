package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/wire"
)

// ImportSummary counts what Import copied.
type ImportSummary struct {
	Hosts, Requests, Tokens int
	Skipped                 int // already in dst: kept as they were
}

// Import copies every host, request and token of src into dst, in one
// dst.Update; entries dst has already are kept and counted as skipped.
func Import(dst, src Store) (ImportSummary, error) {
	var sum ImportSummary
	hosts, err := src.Hosts()
	if err != nil {
		return sum, err
	}
	reqs, err := src.Requests()
	if err != nil {
		return sum, err
	}
	hashes, err := src.TokenHashes()
	if err != nil {
		return sum, err
	}
	err = dst.Update(func(dst Store) error {
		sum = ImportSummary{}
		for _, h := range hosts {
			_, err := dst.Host(h.HostID)
			if err := copyOne(err, ErrNotFound, &sum, &sum.Hosts, func() error { return dst.PutHost(h) }); err != nil {
				return err
			}
		}
		for _, b := range reqs {
			var r struct {
				RequestID string      `json:"request_id"`
				Status    wire.Status `json:"status"`
				CreatedAt time.Time   `json:"created_at"`
			}
			if err := json.Unmarshal(b, &r); err != nil {
				return fmt.Errorf("import request: %w", err)
			}
			_, err := dst.Request(r.RequestID)
			put := func() error {
				return dst.PutRequest(Request{ID: r.RequestID, Pending: r.Status == wire.StatusPending, CreatedAt: r.CreatedAt, Record: b})
			}
			if err := copyOne(err, ErrNoRequest, &sum, &sum.Requests, put); err != nil {
				return err
			}
		}
		for _, h := range hashes {
			t, err := src.Token(h)
			if errors.Is(err, ErrNoToken) {
				continue
			}
			if err != nil {
				return err
			}
			_, err = dst.Token(h)
			if err := copyOne(err, ErrNoToken, &sum, &sum.Tokens, func() error { return dst.PutToken(h, t) }); err != nil {
				return err
			}
		}
		return nil
	})
	return sum, err
}

// copyOne reads the result (err) of dst's lookup of an entry: the entry is
// there (skipped, counted in sum), absent (notFound: put copies it, counted
// in n), or the lookup failed.
func copyOne(err, notFound error, sum *ImportSummary, n *int, put func() error) error {
	switch {
	case err == nil:
		sum.Skipped++
		return nil
	case !errors.Is(err, notFound):
		return err
	}
	if err := put(); err != nil {
		return err
	}
	*n++
	return nil
}

// TokenHashes lists the stored tokens' hashes.
func (f *Files) TokenHashes() ([]string, error) {
	ents, err := statedir.ReadDir(f.dir.Tokens())
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	var out []string
	for _, e := range ents {
		if h, ok := strings.CutSuffix(e.Name(), ".json"); ok && validHash(h) {
			out = append(out, h)
		}
	}
	return out, nil
}

// TokenHashes lists the stored tokens' hashes.
func (d *DB) TokenHashes() ([]string, error) {
	return list(d, "tokens", "SELECT token_sha256 FROM registry_tokens ORDER BY token_sha256", func(scan func(...any) error) (string, error) {
		var h string
		err := scan(&h)
		return h, err
	})
}
