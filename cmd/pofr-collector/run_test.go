package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/pofr/pofr/profiles"
)

func TestApplyOverridesFileOps(t *testing.T) {
	p, err := profiles.Get("default")
	if err != nil {
		t.Fatal(err)
	}
	applyOverrides(p, &runFlags{fileOps: "exec, write,,delete"})
	if want := []string{"exec", "write", "delete"}; !slices.Equal(p.File.Ops, want) {
		t.Errorf("--file-ops: ops %v, want %v", p.File.Ops, want)
	}
	if err := p.Validate(); err != nil {
		t.Errorf("valid ops refused: %v", err)
	}
	applyOverrides(p, &runFlags{fileOps: "exec,read"})
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), `"read"`) {
		t.Errorf("--file-ops exec,read: Validate = %v, want an error naming read", err)
	}
}

func TestSuggestHostID(t *testing.T) {
	a := suggestHostID("Web_01.example.org", "3d1219c7c4c5404aaa1f6d2a48adfda4")
	if !strings.HasPrefix(a, "web-01-") || len(a) != len("web-01-")+6 {
		t.Errorf("suggestHostID = %q, want web-01-<6 hex>", a)
	}
	if b := suggestHostID("Web_01.example.org", "3d1219c7c4c5404aaa1f6d2a48adfda4"); b != a {
		t.Errorf("not stable: %q then %q", a, b)
	}
	if c := suggestHostID("web-01", "another-machine"); c == a {
		t.Errorf("two machines got %q", c)
	}
	if d := suggestHostID("---", "m"); !strings.HasPrefix(d, "h-") {
		t.Errorf("unusable hostname: %q, want h-<hex>", d)
	}
}
