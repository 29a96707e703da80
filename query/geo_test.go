package query

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/pofr/pofr/internal/geotest"
)

// mmdb encodes values in the MaxMind DB data format (enough for tests).
type mmdb struct{ bytes.Buffer }

func (m *mmdb) str(s string)  { m.WriteByte(2<<5 | byte(len(s))); m.WriteString(s) }
func (m *mmdb) mapHead(n int) { m.WriteByte(7<<5 | byte(n)) }
func (m *mmdb) uint(typ byte, v uint64) {
	var b []byte
	for ; v > 0; v >>= 8 {
		b = append([]byte{byte(v)}, b...)
	}
	if typ <= 7 {
		m.WriteByte(typ<<5 | byte(len(b)))
	} else {
		m.WriteByte(byte(len(b)))
		m.WriteByte(typ - 7)
	}
	m.Write(b)
}

// writeGeoDB writes an IPv4 MaxMind DB in which the /24 network net is in
// country and city, and every other address is unknown.
func writeGeoDB(t *testing.T, net netip.Prefix, country, city string) string {
	t.Helper()
	var data mmdb
	data.mapHead(2)
	data.str("country")
	data.mapHead(1)
	data.str("iso_code")
	data.str(country)
	data.str("city")
	data.mapHead(1)
	data.str("names")
	data.mapHead(1)
	data.str("en")
	data.str(city)

	bits := net.Bits()
	nodes := uint32(bits)
	a := net.Addr().As4()
	var tree []byte
	rec := func(v uint32) { tree = append(tree, byte(v>>16), byte(v>>8), byte(v)) }
	for i := 0; i < bits; i++ {
		next := uint32(i + 1)
		if i == bits-1 {
			next = nodes + 16 // data at offset 0
		}
		if a[i/8]&(0x80>>(i%8)) == 0 {
			rec(next)
			rec(nodes)
		} else {
			rec(nodes)
			rec(next)
		}
	}
	var meta mmdb
	meta.mapHead(7)
	meta.str("node_count")
	meta.uint(6, uint64(nodes))
	meta.str("record_size")
	meta.uint(5, 24)
	meta.str("ip_version")
	meta.uint(5, 4)
	meta.str("database_type")
	meta.str("pofr-test-City")
	meta.str("binary_format_major_version")
	meta.uint(5, 2)
	meta.str("binary_format_minor_version")
	meta.uint(5, 0)
	meta.str("build_epoch")
	meta.uint(9, 1718841600)

	var f bytes.Buffer
	f.Write(tree)
	f.Write(make([]byte, 16))
	f.Write(data.Bytes())
	f.WriteString("\xab\xcd\xefMaxMind.com")
	f.Write(meta.Bytes())
	path := filepath.Join(t.TempDir(), "test.mmdb")
	if err := os.WriteFile(path, f.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkHanoi checks g's answers for a database in which 203.0.113.0/24 is
// Hanoi, VN and nothing else is known.
func checkHanoi(t *testing.T, g *GeoDB) {
	t.Helper()
	for addr, want := range map[string][2]string{
		"203.0.113.5":        {"VN", "Hanoi"},
		"::ffff:203.0.113.9": {"VN", "Hanoi"},
		"203.0.114.5":        {"", ""},
		"198.51.100.1":       {"", ""},
	} {
		c, city := g.Lookup(netip.MustParseAddr(addr))
		if c != want[0] || city != want[1] {
			t.Errorf("Lookup(%s) = %q, %q; want %q, %q", addr, c, city, want[0], want[1])
		}
	}
}

func TestGeoDB(t *testing.T) {
	g, err := OpenGeoDB(writeGeoDB(t, netip.MustParsePrefix("203.0.113.0/24"), "VN", "Hanoi"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	checkHanoi(t, g)
	tb := &Table{Columns: []Column{{Name: "remote_addr", Kind: Addr}},
		Rows: [][]any{{[]byte{203, 0, 113, 5}}, {[]byte{10, 0, 0, 1}}, {nil}}}
	(&Enricher{Geo: g}).Apply(t.Context(), tb, "remote_addr")
	want := [][]any{{[]byte{203, 0, 113, 5}, "VN", "Hanoi"}, {[]byte{10, 0, 0, 1}, nil, nil}, {nil, nil, nil}}
	if diff := cmp.Diff(want, tb.Rows); diff != "" {
		t.Errorf("enriched rows (-want +got):\n%s", diff)
	}
	if _, err := OpenGeoDB(filepath.Join(t.TempDir(), "missing.mmdb")); err == nil {
		t.Error("OpenGeoDB of a missing file: no error")
	}
}

// TestConnsCountry answers the manual's example: connections to port 22
// from Vietnam in a night window, with a geolocation database.
func TestConnsCountry(t *testing.T) {
	d := newDemo(t)
	g, err := OpenGeoDB(writeGeoDB(t, netip.MustParsePrefix("203.0.113.0/24"), "VN", "Hanoi"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	q := &Querier{DB: d.db, Enrich: &Enricher{Geo: g}}
	for _, tc := range []struct {
		args ConnsArgs
		want int
	}{
		{ConnsArgs{Ports: []int{137, 22}, Country: "VN", Hours: "1-4"}, 1},
		{ConnsArgs{Ports: []int{137, 22}, Country: "vn"}, 1},
		{ConnsArgs{Ports: []int{137, 22}, Country: "RU"}, 0},
		{ConnsArgs{Country: "VN", Hours: "4-6"}, 0},
	} {
		tb, err := q.Conns(t.Context(), tc.args)
		if err != nil {
			t.Fatal(err)
		}
		if len(tb.Rows) != tc.want {
			t.Errorf("conns %+v: got %d rows, want %d", tc.args, len(tb.Rows), tc.want)
			continue
		}
		if tc.want == 1 {
			out := render(t, tb, FormatCSV, false)
			recs := csvRecords(t, out)
			last := recs[1][len(recs[1])-2:]
			if diff := cmp.Diff([]string{"VN", "Hanoi"}, last); diff != "" || recs[0][len(recs[0])-1] != "city" {
				t.Errorf("country, city columns (-want +got):\n%s\n%s", diff, out)
			}
		}
	}
}

// TestGeoDBBIN: --geoip takes an IP2Location .BIN file too (one the test
// builds), read like the MaxMind DB, IPv4-mapped addresses included.
func TestGeoDBBIN(t *testing.T) {
	path := filepath.Join(t.TempDir(), "IP2LOCATION-DB26.BIN")
	if err := geotest.WriteBIN(path, []geotest.Net{{Prefix: netip.MustParsePrefix("203.0.113.0/24"), Country: "VN",
		CountryName: "Viet Nam", City: "Hanoi", ASN: "64500", AS: "Example"}}); err != nil {
		t.Fatal(err)
	}
	g, err := OpenGeoDB(path)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	checkHanoi(t, g)
	tb := &Table{Columns: []Column{{Name: "remote_addr", Kind: Addr}}, Rows: [][]any{{[]byte{203, 0, 113, 5}}}}
	(&Enricher{Geo: g}).Apply(t.Context(), tb, "remote_addr")
	if diff := cmp.Diff([][]any{{[]byte{203, 0, 113, 5}, "VN", "Hanoi"}}, tb.Rows); diff != "" {
		t.Errorf("enriched rows (-want +got):\n%s", diff)
	}
	bad := filepath.Join(t.TempDir(), "x.dat")
	if err := os.WriteFile(bad, []byte("neither"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenGeoDB(bad); err == nil {
		t.Error("OpenGeoDB of a file that is neither a MaxMind DB nor a .BIN: no error")
	}
}
