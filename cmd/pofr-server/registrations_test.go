package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/pofr/pofr/receiver"
	"github.com/pofr/pofr/wire"
)

// TestRegistrationsListEscapes: a hostname with a right-to-left override or
// C1 controls is printed escaped, as query output is.
func TestRegistrationsListEscapes(t *testing.T) {
	rs := []*receiver.Registration{{
		RequestID: strings.Repeat("a", 32), Status: wire.StatusPending, CreatedAt: time.Unix(0, 0).UTC(),
		Facts:  wire.Facts{Hostname: "web\u202egpj.01\u009b31m\u0085x", MachineID: strings.Repeat("b", 32)},
		Reason: "tab\there\x1b[2J",
	}}
	var out bytes.Buffer
	if err := writeRegistrations(&out, rs, true); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, raw := range []string{"\u202e", "\u009b", "\u0085", "\x1b", "\there"} {
		if strings.Contains(got, raw) {
			t.Errorf("output contains %q raw:\n%s", raw, got)
		}
	}
	for _, esc := range []string{`web\u202egpj.01\u009b31m\u0085x`, `tab\there\x1b[2J`} {
		if !strings.Contains(got, esc) {
			t.Errorf("output lacks %s:\n%s", esc, got)
		}
	}
}
