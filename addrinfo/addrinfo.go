// Package addrinfo describes remote addresses for the loader: country, city
// and autonomous system from a geolocation database (a MaxMind .mmdb or an
// IP2Location .BIN file, see [OpenGeo]) and the PTR name, so that they can be stored beside the record at load
// time. Lookups run off the load path in a [Resolver]: bounded workers, a
// bounded queue and a cache, and a caller that never waits ([Resolver.Offer]
// drops and counts what does not fit), so a slow or failing DNS server never
// slows loading.
package addrinfo

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oschwald/maxminddb-golang/v2"
)

// Info is what is known about one address.
type Info struct {
	Addr    netip.Addr
	Country string // ISO 3166 code, "" if unknown
	City    string // English name, "" if unknown
	ASN     uint32 // 0 if unknown
	ASOrg   string
	PTR     string // first PTR name without the final dot, "" if none
	Edition string // the geolocation database it came from (type and build date)
	At      time.Time
}

// MMDB is an open MaxMind DB file: a City or Country database, an ASN
// database, or one with both (the fields are read when present).
type MMDB struct {
	r       *maxminddb.Reader
	edition string
}

// OpenMMDB opens a .mmdb file.
func OpenMMDB(path string) (*MMDB, error) {
	r, err := maxminddb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open geolocation database %s: %w", path, err)
	}
	m := r.Metadata
	ed := m.DatabaseType + " " + time.Unix(int64(m.BuildEpoch), 0).UTC().Format("2006-01-02")
	return &MMDB{r: r, edition: ed}, nil
}

// Edition names the database: its type and build date.
func (d *MMDB) Edition() string { return d.edition }

// Close releases the file.
func (d *MMDB) Close() error { return d.r.Close() }

type mmdbRecord struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	City struct {
		Names map[string]string `maxminddb:"names"`
	} `maxminddb:"city"`
	ASN   uint32 `maxminddb:"autonomous_system_number"`
	ASOrg string `maxminddb:"autonomous_system_organization"`
}

// Lookup fills the geolocation fields of in for its address.
func (d *MMDB) Lookup(in *Info) bool {
	var rec mmdbRecord
	res := d.r.Lookup(in.Addr.Unmap())
	if !res.Found() {
		return false
	}
	if err := res.Decode(&rec); err != nil {
		return false
	}
	in.Country, in.City, in.ASN, in.ASOrg = rec.Country.ISOCode, rec.City.Names["en"], rec.ASN, rec.ASOrg
	in.Edition = d.edition
	return true
}

// Options configure a [Resolver].
type Options struct {
	// Geo is the geolocation database; nil: none.
	Geo Geo
	// PTR turns reverse DNS on; LookupAddr does it (nil: net.DefaultResolver).
	PTR        bool
	LookupAddr func(ctx context.Context, addr string) ([]string, error)
	// Timeout bounds one reverse lookup (default 2 s).
	Timeout time.Duration
	// Workers is the number of lookups in flight (default 8); Queue the
	// addresses waiting (default 4096); Cache the addresses remembered as
	// done (default 1 << 16, then the cache is cleared).
	Workers, Queue, Cache int
	// Store receives each result, from a worker goroutine.
	Store func(Info)
}

// Stats count the resolver's work.
type Stats struct {
	Offered, Cached, Dropped, Resolved, PTRFailed uint64
}

// Resolver looks addresses up in the background.
type Resolver struct {
	o        Options
	inflight atomic.Int64
	q        chan netip.Addr
	mu       sync.Mutex
	seen     map[netip.Addr]struct{}
	st       Stats
	clock    func() time.Time
}

// NewResolver returns a resolver; Run starts its workers.
func NewResolver(o Options) *Resolver {
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Workers <= 0 {
		o.Workers = 8
	}
	if o.Queue <= 0 {
		o.Queue = 4096
	}
	if o.Cache <= 0 {
		o.Cache = 1 << 16
	}
	if o.LookupAddr == nil {
		o.LookupAddr = net.DefaultResolver.LookupAddr
	}
	return &Resolver{o: o, q: make(chan netip.Addr, o.Queue), seen: map[netip.Addr]struct{}{}, clock: time.Now}
}

// Worthy reports whether an address is worth looking up: not private,
// loopback, link-local, multicast or unspecified.
func Worthy(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsValid() && a.IsGlobalUnicast() && !a.IsPrivate()
}

// Offer queues a for lookup unless it was done (or queued) before, is not
// [Worthy], or the queue is full (counted as dropped; it will be offered
// again by a later segment). It never blocks. An IPv4-mapped address is a
// key of its own (the sock row holds it so) and is looked up as IPv4.
func (r *Resolver) Offer(a netip.Addr) {
	if !Worthy(a) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.st.Offered++
	if _, ok := r.seen[a]; ok {
		r.st.Cached++
		return
	}
	r.inflight.Add(1)
	select {
	case r.q <- a:
		if len(r.seen) >= r.o.Cache {
			clear(r.seen)
		}
		r.seen[a] = struct{}{}
	default:
		r.inflight.Add(-1)
		r.st.Dropped++
	}
}

// Run looks queued addresses up until ctx ends.
func (r *Resolver) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range r.o.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case a := <-r.q:
					r.resolve(ctx, a)
					r.inflight.Add(-1)
				}
			}
		}()
	}
	wg.Wait()
}

func (r *Resolver) resolve(ctx context.Context, a netip.Addr) {
	in := Info{Addr: a, At: r.clock().UTC()}
	if r.o.Geo != nil {
		r.o.Geo.Lookup(&in)
	}
	failed := false
	if r.o.PTR {
		lctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
		names, err := r.o.LookupAddr(lctx, a.Unmap().String())
		cancel()
		if err == nil && len(names) > 0 {
			in.PTR = strings.TrimSuffix(names[0], ".")
		} else {
			failed = true
		}
	}
	r.mu.Lock()
	r.st.Resolved++
	if failed {
		r.st.PTRFailed++
	}
	r.mu.Unlock()
	if r.o.Store != nil {
		r.o.Store(in)
	}
}

// Wait returns when every queued address is done, or when ctx ends (then
// with its error): a one-shot loader waits a bounded time before it exits.
func (r *Resolver) Wait(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for r.inflight.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// Stats returns the counters.
func (r *Resolver) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st
}

// Upsert stores in as addr_info's row of its address (see schema/), raw
// being the address bytes as the sock row holds them. A later lookup
// replaces the row.
func Upsert(ctx context.Context, db *sql.DB, raw []byte, in Info) error {
	null := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	var asn any
	if in.ASN != 0 {
		asn = in.ASN
	}
	_, err := db.ExecContext(ctx, `INSERT INTO addr_info (addr, country, city, asn, as_org, ptr, edition, resolved_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON DUPLICATE KEY UPDATE country = VALUES(country), city = VALUES(city), asn = VALUES(asn), as_org = VALUES(as_org),
		  ptr = VALUES(ptr), edition = VALUES(edition), resolved_at = VALUES(resolved_at)`,
		raw, null(truncate(in.Country, 2)), null(truncate(in.City, 255)), asn, null(truncate(in.ASOrg, 255)),
		null(truncate(in.PTR, 255)), null(truncate(in.Edition, 128)), in.At)
	if err != nil {
		return fmt.Errorf("store addr_info of %s: %w", in.Addr, err)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
