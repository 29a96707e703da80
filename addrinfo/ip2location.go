package addrinfo

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ip2location/ip2location-go/v9"
)

// Geo is an open geolocation database: a MaxMind .mmdb ([MMDB]) or an
// IP2Location .BIN ([BIN]) file.
type Geo interface {
	// Lookup fills the geolocation fields of in for its address and
	// reports whether the database holds it.
	Lookup(in *Info) bool
	// Edition names the database: its type and build date.
	Edition() string
	Close() error
}

// mmdbMarker starts the metadata section of every MaxMind DB file, within
// its last 128 KiB.
var mmdbMarker = []byte("\xab\xcd\xefMaxMind.com")

// OpenGeo opens a geolocation database, choosing the reader by the file's
// content: a file holding the MaxMind metadata marker near its end is a
// MaxMind DB; otherwise a file named *.bin (any case) is read as an
// IP2Location BIN, and anything else is refused.
func OpenGeo(path string) (Geo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open geolocation database: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open geolocation database: %w", err)
	}
	off := max(st.Size()-128<<10, 0)
	tail := make([]byte, st.Size()-off)
	_, err = f.ReadAt(tail, off)
	f.Close()
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("read geolocation database %s: %w", path, err)
	}
	if bytes.Contains(tail, mmdbMarker) {
		return OpenMMDB(path)
	}
	if strings.EqualFold(filepath.Ext(path), ".bin") {
		return OpenBIN(path)
	}
	return nil, fmt.Errorf("geolocation database %s: neither a MaxMind DB (no metadata marker) nor an IP2Location file named *.BIN", path)
}

// BIN is an open IP2Location .BIN file (any DB edition: the country, city
// and AS fields are read where the edition has them).
type BIN struct {
	db      *ip2location.DB
	edition string
}

// OpenBIN opens an IP2Location .BIN file. The reader trusts the header's
// column count and panics on a file with fewer columns than its edition
// has, so a file is probed with IPv4 and IPv6 lookups (the first rows among them) before use and
// refused if either panics (Lookup recovers as well).
func OpenBIN(path string) (*BIN, error) {
	db, err := ip2location.OpenDB(path)
	if err != nil {
		return nil, fmt.Errorf("open IP2Location database %s: %w", path, err)
	}
	d := &BIN{db: db, edition: "IP2Location DB" + db.PackageVersion() + " " + binDate(db.DatabaseVersion())}
	for _, a := range []string{"0.0.0.1", "192.0.2.1", "255.255.255.254", "::1", "2001:db8::1"} {
		if err := d.probe(a); err != nil {
			db.Close()
			return nil, fmt.Errorf("open IP2Location database %s: %w", path, err)
		}
	}
	return d, nil
}

// binDate turns the reader's "2026.11.1" into 2026-11-01, the form the
// MaxMind editions have.
func binDate(v string) string {
	var y, m, d int
	if n, _ := fmt.Sscanf(v, "%d.%d.%d", &y, &m, &d); n != 3 {
		return v
	}
	return fmt.Sprintf("%04d-%02d-%02d", y, m, d)
}

func (d *BIN) probe(addr string) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("corrupt file: lookup of %s failed: %v", addr, p)
		}
	}()
	_, err = d.db.Get_all(addr)
	return err
}

// Edition names the database: "IP2Location DB<type> <build date>".
func (d *BIN) Edition() string { return d.edition }

// Close releases the file.
func (d *BIN) Close() error { d.db.Close(); return nil }

// binMessages are the sentences the library (v9) puts in the fields it
// could not read: absent from the edition or address not found, invalid
// address, IPv6 in an IPv4 file, unusable file.
var binMessages = map[string]bool{
	"This parameter is unavailable for selected data file. Please upgrade the data file.": true,
	"Invalid IP address.":               true,
	"IPv6 address missing in IPv4 BIN.": true,
	"Invalid database file.":            true,
}

// binValue turns a field of an IP2Location record into its value: "" for
// a library message and for "-", which the databases write for unknown.
func binValue(s string) string {
	if s == "-" || binMessages[s] {
		return ""
	}
	return s
}

// Lookup fills the geolocation fields of in for its address.
func (d *BIN) Lookup(in *Info) (found bool) {
	defer func() {
		if recover() != nil {
			found = false
		}
	}()
	rec, err := d.db.Get_all(in.Addr.Unmap().String())
	if err != nil {
		return false
	}
	country, city, org := binValue(rec.Country_short), binValue(rec.City), binValue(rec.As)
	var asn uint32
	if n, err := strconv.ParseUint(binValue(rec.Asn), 10, 32); err == nil {
		asn = uint32(n)
	}
	if country == "" && city == "" && asn == 0 && org == "" {
		return false
	}
	in.Country, in.City, in.ASN, in.ASOrg = country, city, asn, org
	in.Edition = d.edition
	return true
}
