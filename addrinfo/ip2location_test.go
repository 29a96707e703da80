package addrinfo

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pofr/pofr/internal/geotest"
)

// writeBIN builds an IP2Location file: 198.51.100.0/24 is in Moscow, RU,
// AS64500; 2001:db8::/32 in Berlin, DE, AS64501.
func writeBIN(t testing.TB, name string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	err := geotest.WriteBIN(path, []geotest.Net{
		{Prefix: netip.MustParsePrefix("198.51.100.0/24"), Country: "RU", CountryName: "Russian Federation", City: "Moscow", ASN: "64500", AS: "Example Net"},
		{Prefix: netip.MustParsePrefix("2001:db8::/32"), Country: "DE", CountryName: "Germany", City: "Berlin", ASN: "64501", AS: "Beispiel AG"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func TestBIN(t *testing.T) {
	g, err := OpenGeo(writeBIN(t, "IP2LOCATION-TEST.BIN"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, ok := g.(*BIN); !ok || g.Edition() != "IP2Location DB26 2026-11-01" {
		t.Errorf("opened %T, edition %q: want a *BIN, IP2Location DB26 2026-11-01", g, g.Edition())
	}
	for _, c := range []struct {
		addr              string
		ok                bool
		country, city, as string
		asn               uint32
	}{
		{"198.51.100.7", true, "RU", "Moscow", "Example Net", 64500},
		{"198.51.100.0", true, "RU", "Moscow", "Example Net", 64500},
		{"198.51.100.255", true, "RU", "Moscow", "Example Net", 64500},
		{"::ffff:198.51.100.8", true, "RU", "Moscow", "Example Net", 64500},
		{"2001:db8:1::9", true, "DE", "Berlin", "Beispiel AG", 64501},
		{"198.51.101.0", false, "", "", "", 0},
		{"198.51.99.255", false, "", "", "", 0},
		{"203.0.113.9", false, "", "", "", 0},
		{"2001:db9::1", false, "", "", "", 0},
		{"255.255.255.255", false, "", "", "", 0},
	} {
		in := Info{Addr: netip.MustParseAddr(c.addr)}
		ok := g.Lookup(&in)
		if ok != c.ok || in.Country != c.country || in.City != c.city || in.ASOrg != c.as || in.ASN != c.asn {
			t.Errorf("%s: %v %+v, want %v %s %s %s %d", c.addr, ok, in, c.ok, c.country, c.city, c.as, c.asn)
		}
		if ok && in.Edition != g.Edition() {
			t.Errorf("%s: edition %q", c.addr, in.Edition)
		}
	}
}

// TestOpenGeo: the reader is chosen by content (a MaxMind DB under any
// name), then by the .BIN name; anything else is refused.
func TestOpenGeo(t *testing.T) {
	mm := filepath.Join(t.TempDir(), "geo.BIN")
	b, err := os.ReadFile(writeMMDB(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mm, b, 0o644); err != nil {
		t.Fatal(err)
	}
	g, err := OpenGeo(mm)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := g.(*MMDB); !ok {
		t.Errorf("a MaxMind DB named .BIN opened as %T", g)
	}
	g.Close()
	junk := filepath.Join(t.TempDir(), "geo.dat")
	if err := os.WriteFile(junk, []byte("not a database"), 0o644); err != nil {
		t.Fatal(err)
	}
	if g, err := OpenGeo(junk); err == nil || !strings.Contains(err.Error(), "neither") {
		t.Errorf("junk file: %T %v, want refused", g, err)
	}
	// A column count below the edition's made the reader panic.
	bin, err := os.ReadFile(writeBIN(t, "x.BIN"))
	if err != nil {
		t.Fatal(err)
	}
	bin[1] = 2
	bad := filepath.Join(t.TempDir(), "bad.BIN")
	if err := os.WriteFile(bad, bin, 0o644); err != nil {
		t.Fatal(err)
	}
	if g, err := OpenGeo(bad); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("BIN with 2 columns for DB26: %T %v, want refused as corrupt", g, err)
	}
	short := filepath.Join(t.TempDir(), "short.bin")
	if err := os.WriteFile(short, []byte("BIN"), 0o644); err != nil {
		t.Fatal(err)
	}
	if g, err := OpenGeo(short); err == nil {
		t.Errorf("3-byte .bin file opened as %T", g)
	}
}
