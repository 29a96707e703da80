package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

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
			skip, err := present(err, ErrNotFound, &sum)
			if err != nil {
				return err
			}
			if skip {
				continue
			}
			if err := dst.PutHost(h); err != nil {
				return err
			}
			sum.Hosts++
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
			skip, err := present(err, ErrNoRequest, &sum)
			if err != nil {
				return err
			}
			if skip {
				continue
			}
			if err := dst.PutRequest(Request{ID: r.RequestID, Pending: r.Status == wire.StatusPending, CreatedAt: r.CreatedAt, Record: b}); err != nil {
				return err
			}
			sum.Requests++
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
			skip, err := present(err, ErrNoToken, &sum)
			if err != nil {
				return err
			}
			if skip {
				continue
			}
			if err := dst.PutToken(h, t); err != nil {
				return err
			}
			sum.Tokens++
		}
		return nil
	})
	return sum, err
}

// present reads the result of dst's lookup of an entry: the entry is there
// (skip it, counted in sum), absent (notFound: import it), or the lookup
// failed.
func present(err, notFound error, sum *ImportSummary) (skip bool, _ error) {
	switch {
	case err == nil:
		sum.Skipped++
		return true, nil
	case errors.Is(err, notFound):
		return false, nil
	}
	return false, err
}

// TokenHashes lists the stored tokens' hashes.
func (f *Files) TokenHashes() ([]string, error) {
	ents, err := os.ReadDir(f.dir.Tokens())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
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
	c, cancel := ctx()
	defer cancel()
	rows, err := d.q.QueryContext(c, "SELECT token_sha256 FROM registry_tokens ORDER BY token_sha256")
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		out = append(out, h)
	}
	return out, rows.Err()
}
