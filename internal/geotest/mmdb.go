package geotest

import (
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// WriteMMDB writes a MaxMind DB of type Test-City-ASN at path holding nets:
// each with its country code, English city name, AS number and AS
// organisation; every other address is unknown.
func WriteMMDB(path string, nets []Net) error {
	w, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "Test-City-ASN", RecordSize: 24, IPVersion: 6, IncludeReservedNetworks: true})
	if err != nil {
		return err
	}
	for _, n := range nets {
		asn, err := strconv.ParseUint(n.ASN, 10, 32)
		if err != nil {
			return fmt.Errorf("net %s: ASN %q: %w", n.Prefix, n.ASN, err)
		}
		a := n.Prefix.Masked().Addr()
		ipnet := &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(n.Prefix.Bits(), a.BitLen())}
		if err := w.Insert(ipnet, mmdbtype.Map{
			"country":                        mmdbtype.Map{"iso_code": mmdbtype.String(n.Country)},
			"city":                           mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String(n.City)}},
			"autonomous_system_number":       mmdbtype.Uint32(asn),
			"autonomous_system_organization": mmdbtype.String(n.AS),
		}); err != nil {
			return fmt.Errorf("net %s: %w", n.Prefix, err)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := w.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
