package addrinfo

import (
	"context"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pofr/pofr/internal/geotest"
)

// writeMMDB builds a small City+ASN database: 198.51.100.0/24 is in
// Moscow, RU, AS64500 "Example Net".
func writeMMDB(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.mmdb")
	if err := geotest.WriteMMDB(path, []geotest.Net{{Prefix: netip.MustParsePrefix("198.51.100.0/24"),
		Country: "RU", City: "Moscow", ASN: "64500", AS: "Example Net"}}); err != nil {
		t.Fatal(err)
	}
	return path
}

type results struct {
	mu  sync.Mutex
	got map[netip.Addr]Info
}

func (r *results) store(in Info) { r.mu.Lock(); r.got[in.Addr] = in; r.mu.Unlock() }
func (r *results) get(a netip.Addr) (Info, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	in, ok := r.got[a]
	return in, ok
}

func TestResolver(t *testing.T) {
	db, err := OpenMMDB(writeMMDB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res := &results{got: map[netip.Addr]Info{}}
	r := NewResolver(Options{Geo: db, PTR: true, Store: res.store,
		LookupAddr: func(ctx context.Context, a string) ([]string, error) {
			if a == "198.51.100.7" {
				return []string{"host7.example.net."}, nil
			}
			return nil, &net.DNSError{Err: "no such host", Name: a, IsNotFound: true}
		}})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	go r.Run(ctx)
	in7, other := netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("203.0.113.9")
	for _, a := range []netip.Addr{in7, netip.AddrFrom16(in7.As16()), other, netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("127.0.0.1")} {
		r.Offer(a)
	}
	for {
		_, ok1 := res.get(in7)
		_, ok2 := res.get(other)
		_, ok3 := res.get(netip.AddrFrom16(in7.As16()))
		if ok1 && ok2 && ok3 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("not resolved: %+v", r.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	got, _ := res.get(in7)
	if got.Country != "RU" || got.City != "Moscow" || got.ASN != 64500 || got.ASOrg != "Example Net" ||
		got.PTR != "host7.example.net" || got.Edition == "" {
		t.Errorf("198.51.100.7: %+v", got)
	}
	if m, _ := res.get(netip.AddrFrom16(in7.As16())); m.Country != "RU" || m.PTR != "host7.example.net" {
		t.Errorf("::ffff:198.51.100.7: %+v", m)
	}
	if o, _ := res.get(other); o.Country != "" || o.PTR != "" || o.Edition != "" {
		t.Errorf("203.0.113.9: %+v", o)
	}
	st := r.Stats()
	if st.Offered != 3 || st.Cached != 0 || st.Resolved != 3 || st.PTRFailed != 1 {
		t.Errorf("stats %+v: want 3 offered (private and loopback are not), 3 resolved (the mapped form is its own key), 1 PTR failed", st)
	}
}

// TestOfferNeverWaits: with a DNS server that answers after 5 s and every
// worker busy, offers are queued up to the bound and the rest dropped and
// counted; Offer returns at once either way.
func TestOfferNeverWaits(t *testing.T) {
	r := NewResolver(Options{PTR: true, Workers: 2, Queue: 16, Timeout: 10 * time.Second,
		LookupAddr: func(ctx context.Context, a string) ([]string, error) {
			select {
			case <-time.After(5 * time.Second):
				return []string{"late."}, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go r.Run(ctx)
	for i := range 1000 {
		r.Offer(netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}))
	}
	st := r.Stats()
	if st.Offered != 1000 || st.Dropped < 1000-16-2 || st.Resolved != 0 {
		t.Errorf("stats %+v: want 1000 offered, all but the queue and the workers' dropped, none resolved yet", st)
	}
}

// BenchmarkOfferSlowResolver is the loader's cost per remote address while
// the DNS server answers after 5 s: Offer only queues or drops.
func BenchmarkOfferSlowResolver(b *testing.B) {
	r := NewResolver(Options{PTR: true, LookupAddr: func(ctx context.Context, a string) ([]string, error) {
		select {
		case <-time.After(5 * time.Second):
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		r.Offer(netip.AddrFrom4([4]byte{198, byte(i >> 16), byte(i >> 8), byte(i)}))
	}
}
