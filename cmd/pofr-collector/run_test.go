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
