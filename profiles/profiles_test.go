package profiles

import (
	"strings"
	"testing"
)

func TestShippedProfilesParse(t *testing.T) {
	names := Names()
	for _, want := range []string{"busy-host", "default", "forensic"} {
		if !strings.Contains(strings.Join(names, ","), want) {
			t.Errorf("profile %s missing from %v", want, names)
		}
	}
	for _, n := range names {
		p, err := Get(n)
		if err != nil {
			t.Errorf("Get(%s): %v", n, err)
			continue
		}
		if p.Name != n {
			t.Errorf("profile file %s.json names itself %q", n, p.Name)
		}
	}
	if _, err := Get("nope"); err == nil {
		t.Error("Get(nope) succeeded")
	}
}

func TestParseRefusesBadValues(t *testing.T) {
	for name, js := range map[string]string{
		"unknown field": `{"name":"x","bogus":1}`,
		"tiny segment":  `{"name":"x","spool":{"segment_bytes":1,"segment_age":"1s","quota_bytes":4},"proc":{"argv_max":4096,"priority":"fifo","enrich_rate":1}}`,
		"bad priority":  `{"name":"x","spool":{"segment_bytes":1048576,"segment_age":"1s","quota_bytes":8388608},"proc":{"argv_max":4096,"priority":"max","enrich_rate":1}}`,
		"bad op":        `{"name":"x","spool":{"segment_bytes":1048576,"segment_age":"1s","quota_bytes":8388608},"proc":{"argv_max":4096,"priority":"fifo","enrich_rate":1},"file":{"ops":["read"]}}`,
	} {
		if _, err := Parse([]byte(js)); err == nil {
			t.Errorf("%s: Parse accepted %s", name, js)
		}
	}
}
