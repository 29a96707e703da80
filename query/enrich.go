package query

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/pofr/pofr/addrinfo"
)

// Enricher adds, at query time, what the record does not hold about remote
// addresses: reverse DNS names and country and city from a user-supplied
// geolocation database. Nothing of it happens on the capture path, and
// nothing is stored. A missing database or a failed lookup leaves the
// column empty.
type Enricher struct {
	// Resolve turns on reverse DNS (PTR) lookups.
	Resolve bool
	// Timeout bounds each reverse lookup (default 500 ms).
	Timeout time.Duration
	// LookupAddr does the reverse lookup; nil means net.DefaultResolver.
	LookupAddr func(ctx context.Context, addr string) ([]string, error)
	// Geo, if not nil, gives country and city.
	Geo *GeoDB

	mu    sync.Mutex
	names map[netip.Addr]string // the cache: "" for no name
}

// GeoDB is an open geolocation database: a MaxMind DB (GeoLite2/GeoIP2
// City or Country, or any database with the same country.iso_code and
// city.names.en fields) or an IP2Location .BIN file, the reader chosen by
// the file's content as at load (addrinfo.OpenGeo).
type GeoDB struct {
	g addrinfo.Geo
}

// OpenGeoDB opens a MaxMind DB (.mmdb) or IP2Location (.BIN) file.
func OpenGeoDB(path string) (*GeoDB, error) {
	g, err := addrinfo.OpenGeo(path)
	if err != nil {
		return nil, fmt.Errorf("open geolocation database %s: %w", path, err)
	}
	return &GeoDB{g: g}, nil
}

// Close releases the database.
func (g *GeoDB) Close() error { return g.g.Close() }

// Lookup returns the ISO 3166 country code and the English city name of a,
// empty when the database does not know them.
func (g *GeoDB) Lookup(a netip.Addr) (country, city string) {
	in := addrinfo.Info{Addr: a.Unmap()}
	if !g.g.Lookup(&in) {
		return "", ""
	}
	return in.Country, in.City
}

// Apply adds the columns rdns (with Resolve), country and city (with Geo) to
// t, for the address in column col. Private, loopback and unspecified
// addresses are not looked up.
func (e *Enricher) Apply(ctx context.Context, t *Table, col string) {
	i := t.column(col)
	if i < 0 || (!e.Resolve && e.Geo == nil) {
		return
	}
	addrs := make([]netip.Addr, len(t.Rows))
	for r, row := range t.Rows {
		if b, ok := row[i].([]byte); ok {
			if a, ok := netip.AddrFromSlice(b); ok {
				addrs[r] = a.Unmap()
			}
		}
	}
	if e.Resolve {
		e.resolveAll(ctx, addrs)
		t.Columns = append(t.Columns, Column{Name: "rdns", Kind: Text})
		for r := range t.Rows {
			var v any
			if n := e.cached(addrs[r]); n != "" {
				v = n
			}
			t.Rows[r] = append(t.Rows[r], v)
		}
	}
	if e.Geo != nil {
		t.Columns = append(t.Columns, Column{Name: "country", Kind: Text}, Column{Name: "city", Kind: Text})
		for r := range t.Rows {
			var country, city any
			if a := addrs[r]; lookupWorthy(a) {
				c, ci := e.Geo.Lookup(a)
				if c != "" {
					country = c
				}
				if ci != "" {
					city = ci
				}
			}
			t.Rows[r] = append(t.Rows[r], country, city)
		}
	}
}

func lookupWorthy(a netip.Addr) bool {
	return a.IsValid() && !a.IsUnspecified() && !a.IsLoopback() && !a.IsPrivate() &&
		!a.IsLinkLocalUnicast() && !a.IsMulticast()
}

func (e *Enricher) cached(a netip.Addr) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.names[a]
}

// resolveAll looks up every distinct address not in the cache, eight at a
// time, each bounded by Timeout.
func (e *Enricher) resolveAll(ctx context.Context, addrs []netip.Addr) {
	e.mu.Lock()
	if e.names == nil {
		e.names = map[netip.Addr]string{}
	}
	var todo []netip.Addr
	for _, a := range addrs {
		if _, ok := e.names[a]; !ok && a.IsValid() && !a.IsUnspecified() {
			e.names[a] = ""
			todo = append(todo, a)
		}
	}
	e.mu.Unlock()
	lookup := e.LookupAddr
	if lookup == nil {
		lookup = net.DefaultResolver.LookupAddr
	}
	timeout := e.Timeout
	if timeout <= 0 {
		timeout = 500 * time.Millisecond
	}
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, a := range todo {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			lctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			names, err := lookup(lctx, a.String())
			if err != nil || len(names) == 0 {
				return
			}
			e.mu.Lock()
			e.names[a] = strings.TrimSuffix(names[0], ".")
			e.mu.Unlock()
		}()
	}
	wg.Wait()
}
