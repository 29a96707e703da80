package loader

import (
	"context"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pofr/pofr/addrinfo"
	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/geotest"
	"github.com/pofr/pofr/internal/servertest"
	"github.com/pofr/pofr/internal/testutil"
)

// TestAddrInfoAtLoad: the remote addresses of a loaded segment are looked
// up in a generated geolocation database (a MaxMind DB and an IP2Location
// BIN) and by a PTR resolver that does not answer until the load is over
// (so the load cannot have waited for it); then plain SQL filters sockets
// on country = 'RU', and an IPv4-mapped address joins as well as a plain
// one.
func TestAddrInfoAtLoad(t *testing.T) {
	for _, c := range []struct {
		name, edition, file string
		write               func(path string, nets []geotest.Net) error
	}{
		{"mmdb", "Test-City-ASN 20", "test.mmdb", geotest.WriteMMDB},
		{"bin", "IP2Location DB26 2026-11-01", "TEST.BIN", geotest.WriteBIN},
	} {
		t.Run(c.name, func(t *testing.T) {
			// A database of the one network moscow.
			path := filepath.Join(t.TempDir(), c.file)
			if err := c.write(path, moscow); err != nil {
				t.Fatal(err)
			}
			testAddrInfoAtLoad(t, path, c.edition)
		})
	}
}

func testAddrInfoAtLoad(t *testing.T, geoPath, edition string) {
	db, _ := newDB(t)
	f := servertest.NewFixture(t, "h1")
	base := servertest.HostileBase()
	mapped := netip.MustParseAddr("::ffff:198.51.100.8").As16()
	f.Seal("h1", func(s event.Sink) {
		for i, ra := range [][]byte{{198, 51, 100, 7}, mapped[:], {203, 0, 113, 9}, {10, 0, 0, 2}} {
			s.AppendSock(&event.Sock{TS: base + int64(i), Event: event.SockOpen, Proto: "tcp", Family: 4, State: "ESTABLISHED",
				Direction: event.DirOut, LocalAddr: make([]byte, len(ra)), LocalPort: 40000, RemoteAddr: ra, RemotePort: 443,
				Cookie: uint64(i + 1), UID: 0})
		}
	})
	geo, err := addrinfo.OpenGeo(geoPath)
	if err != nil {
		t.Fatal(err)
	}
	defer geo.Close()
	release := make(chan struct{})
	res := addrinfo.NewResolver(addrinfo.Options{Geo: geo, PTR: true,
		LookupAddr: func(ctx context.Context, a string) ([]string, error) {
			select {
			case <-release:
				return []string{"host-" + a + ".example.net."}, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		},
		Timeout: time.Minute,
		Store: func(in addrinfo.Info) {
			if err := addrinfo.Upsert(context.Background(), db, in.Addr.AsSlice(), in); err != nil {
				t.Error(err)
			}
		}})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	go res.Run(ctx)

	l, err := New(Options{DB: db, StateDir: f.State, Workers: 1, RemoteAddrs: res})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if s, err := l.Run(ctx); err != nil || s.Loaded != 1 {
		t.Fatalf("run: %v, %s", err, s)
	}
	if st := res.Stats(); st.Offered != 3 || st.Resolved != 0 {
		t.Fatalf("after the load: %+v, want 3 offered (10.0.0.2 is private) and none resolved yet", st)
	}
	close(release)
	if err := res.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	var got []string
	testutil.EachRow(t, db, func(row testutil.Row) {
		var addr, city, ptr, ed string
		var asn uint32
		row.Scan(&addr, &city, &asn, &ptr, &ed)
		if city != "Moscow" || asn != 64500 || !strings.HasPrefix(ed, edition) {
			t.Errorf("%s: city %q asn %d edition %q, want Moscow 64500 %s...", addr, city, asn, ed, edition)
		}
		got = append(got, addr+" "+ptr)
	}, `SELECT INET6_NTOA(s.remote_addr), a.city, a.asn, a.ptr, a.edition
		FROM sock_events s JOIN addr_info a ON a.addr = s.remote_addr WHERE a.country = 'RU' ORDER BY s.cookie`)
	want := []string{"198.51.100.7 host-198.51.100.7.example.net", "::ffff:198.51.100.8 host-198.51.100.8.example.net"}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("WHERE country = 'RU': got %q, want %q", got, want)
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM addr_info WHERE country IS NULL AND ptr IS NOT NULL").Scan(&n); err != nil || n != 1 {
		t.Errorf("203.0.113.9 (not in the database, PTR known): %d rows (%v), want 1", n, err)
	}
}

// moscow is the one network of the test geolocation databases:
// 198.51.100.0/24 is in Moscow, RU, AS64500.
var moscow = []geotest.Net{{Prefix: netip.MustParsePrefix("198.51.100.0/24"),
	Country: "RU", CountryName: "Russian Federation", City: "Moscow", ASN: "64500", AS: "Example Net"}}
