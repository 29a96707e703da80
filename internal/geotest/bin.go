// Package geotest writes small IP2Location .BIN geolocation databases for
// tests (no downloads): the layout the ip2location-go v9 reader expects,
// restated in WriteBIN.
package geotest

import (
	"encoding/binary"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"slices"
)

// Net is one network of a database and what is known about it.
type Net struct {
	Prefix      netip.Prefix
	Country     string // ISO 3166 code
	CountryName string
	City        string
	ASN         string
	AS          string
}

// Edition DB26 has every field; its columns (1-based, column 1 is IP-from)
// of the fields written here.
const (
	dbType     = 26
	columns    = 28
	colCountry = 2
	colCity    = 4
	colASN     = 24
	colAS      = 25
)

// WriteBIN writes an IP2Location DB26 file dated 2026-11-01 at path holding
// nets (IPv4 and IPv6, sorted within a family, not overlapping); every other
// address is in a row of unknowns ("-").
//
// Layout (all integers little-endian; "address" means a 1-based file
// offset, "pointer" a 0-based one):
//
//	header, 64 bytes: [0] database type, [1] column count, [2] year - 2000,
//	  [3] month, [4] day, [5:9] IPv4 row count, [9:13] IPv4 rows' address,
//	  [13:17] IPv6 row count, [17:21] IPv6 rows' address, [21:25] IPv4
//	  index address, [25:29] IPv6 index address (0: no index, the reader
//	  searches all rows), [29] product code 1, [30] product type,
//	  [31:35] file size
//	IPv4 rows: IP-from (4 bytes), then a pointer per further column; a row
//	  covers [its IP-from, the next row's IP-from), so a last row starting at
//	  the top address ends the section
//	IPv6 rows: the same with a 16-byte IP-from (the address as a
//	  little-endian 128-bit number)
//	strings: a length byte, then the bytes; a country column points at the
//	  code's string, which the country name's string follows
func WriteBIN(path string, nets []Net) error {
	var v4, v6 []Net
	for _, n := range nets {
		if n.Prefix.Addr().Is4() {
			v4 = append(v4, n)
		} else {
			v6 = append(v6, n)
		}
	}
	r4, err := ranges(v4, 32)
	if err != nil {
		return err
	}
	r6, err := ranges(v6, 128)
	if err != nil {
		return err
	}
	const header = 64
	size4, size6 := columns*4, 16+(columns-1)*4
	v4At := header
	v6At := v4At + len(r4)*size4
	strAt := v6At + len(r6)*size6

	var strs []byte
	str := func(s string) uint32 {
		p := uint32(strAt + len(strs))
		strs = append(strs, byte(len(s)))
		strs = append(strs, s...)
		return p
	}
	unknown := str("-")
	unknownCountry := str("-")
	str("-")
	pointers := func(n *Net) []uint32 {
		p := make([]uint32, columns-1)
		for i := range p {
			p[i] = unknown
		}
		if n == nil {
			p[colCountry-2] = unknownCountry
			return p
		}
		p[colCountry-2] = str(n.Country)
		str(n.CountryName)
		p[colCity-2] = str(n.City)
		p[colASN-2] = str(n.ASN)
		p[colAS-2] = str(n.AS)
		return p
	}
	var rows []byte
	for _, r := range r4 {
		rows = binary.LittleEndian.AppendUint32(rows, uint32(r.from.Uint64()))
		for _, p := range pointers(r.net) {
			rows = binary.LittleEndian.AppendUint32(rows, p)
		}
	}
	for _, r := range r6 {
		b := r.from.FillBytes(make([]byte, 16))
		slices.Reverse(b)
		rows = append(rows, b...)
		for _, p := range pointers(r.net) {
			rows = binary.LittleEndian.AppendUint32(rows, p)
		}
	}
	file := make([]byte, header, header+len(rows)+len(strs))
	file = append(file, rows...)
	file = append(file, strs...)
	h := file[:header]
	h[0], h[1], h[2], h[3], h[4] = dbType, columns, 26, 11, 1
	// The last row of a section only ends the one before it.
	binary.LittleEndian.PutUint32(h[5:], uint32(len(r4)-1))
	binary.LittleEndian.PutUint32(h[9:], uint32(v4At+1))
	binary.LittleEndian.PutUint32(h[13:], uint32(len(r6)-1))
	binary.LittleEndian.PutUint32(h[17:], uint32(v6At+1))
	h[29], h[30] = 1, 1
	binary.LittleEndian.PutUint32(h[31:], uint32(len(file)))
	return os.WriteFile(path, file, 0o644)
}

type row struct {
	from *big.Int
	net  *Net // nil: unknown
}

// ranges covers the whole address space of bits-bit addresses with rows:
// nets, the gaps between them, and a last row at the top address.
func ranges(nets []Net, bits int) ([]row, error) {
	top := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), uint(bits)), big.NewInt(1))
	var rows []row
	next := big.NewInt(0)
	for i := range nets {
		n := &nets[i]
		p := n.Prefix.Masked()
		from := new(big.Int).SetBytes(p.Addr().AsSlice())
		if from.Cmp(next) < 0 {
			return nil, fmt.Errorf("%s: nets not sorted or overlapping", p)
		}
		if from.Cmp(next) > 0 {
			rows = append(rows, row{from: next})
		}
		rows = append(rows, row{from: from, net: n})
		next = new(big.Int).Add(from, new(big.Int).Lsh(big.NewInt(1), uint(bits-p.Bits())))
	}
	if next.Cmp(top) < 0 {
		rows = append(rows, row{from: next})
	}
	return append(rows, row{from: top}), nil
}
