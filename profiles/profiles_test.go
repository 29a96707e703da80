package profiles

import (
	"os"
	"path/filepath"
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
		"queue size":    `{"name":"x","spool":{"segment_bytes":1048576,"segment_age":"1s","quota_bytes":8388608},"proc":{"argv_max":4096,"priority":"fifo","enrich_rate":1},"file":{"queue_size":-1}}`,
		"file window":   `{"name":"x","spool":{"segment_bytes":1048576,"segment_age":"1s","quota_bytes":8388608},"proc":{"argv_max":4096,"priority":"fifo","enrich_rate":1},"file":{"enabled":true,"window":"0s"}}`,
		"bad op":        `{"name":"x","spool":{"segment_bytes":1048576,"segment_age":"1s","quota_bytes":8388608},"proc":{"argv_max":4096,"priority":"fifo","enrich_rate":1},"file":{"ops":["read"]}}`,
	} {
		if _, err := Parse([]byte(js)); err == nil {
			t.Errorf("%s: Parse accepted %s", name, js)
		}
	}
}

// TestShippedFileScopes pins what the package documentation promises of
// each shipped profile's file section.
func TestShippedFileScopes(t *testing.T) {
	for name, want := range map[string]struct {
		ops  string
		open bool
	}{
		"default":   {"exec,write,create,delete,rename", false},
		"busy-host": {"exec,delete,rename", false},
		"forensic":  {"open,exec,write,create,delete,rename", true},
	} {
		p, err := Get(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(p.File.Ops, ","); got != want.ops || p.File.HasOp("open") != want.open || !p.File.Enabled {
			t.Errorf("%s: file ops %q enabled %v, want %q enabled", name, got, p.File.Enabled, want.ops)
		}
		if p.File.QueueSize < 16384 {
			t.Errorf("%s: file.queue_size %d, want at least the kernel default 16384", name, p.File.QueueSize)
		}
	}
}

func TestLoadNameOrFile(t *testing.T) {
	if p, err := Load("busy-host"); err != nil || p.Name != "busy-host" {
		t.Fatalf("Load(busy-host) = %v, %v", p, err)
	}
	b, err := files.ReadFile("default.json")
	if err != nil {
		t.Fatal(err)
	}
	own := strings.Replace(string(b), `"name": "default"`, `"name": "build-farm"`, 1)
	own = strings.Replace(own, `"create", `, "", 1)
	path := filepath.Join(t.TempDir(), "build-farm.json")
	if err := os.WriteFile(path, []byte(own), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	if p.Name != "build-farm" || p.File.HasOp("create") || !p.File.HasOp("write") {
		t.Errorf("Load(%s) = %s with ops %v", path, p.Name, p.File.Ops)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(own, `"write"`, `"read"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), `"read"`) {
		t.Errorf("Load of a profile with an unknown op: %v, want an error naming the file and the op", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("Load of a missing file succeeded")
	}
}

func TestShippedProcCapture(t *testing.T) {
	for name, guard := range map[string]bool{"default": false, "busy-host": false, "forensic": true} {
		p, err := Get(name)
		if err != nil {
			t.Fatal(err)
		}
		if !p.Proc.Tracepoint || p.Proc.ExecGuard != guard || p.Proc.RingBytes < 8<<20 || p.Proc.StackBytes < 16384 {
			t.Errorf("%s: proc %+v, want tracepoint capture with exec_guard %v", name, p.Proc, guard)
		}
	}
	p := Proc{RingBytes: 8 << 20}
	for ncpu, want := range map[int]int{1: 8 << 20, 32: 8 << 20, 64: 4 << 20, 1024: 256 << 10 * 2} {
		if got := p.RingPerCPU(ncpu); got != want {
			t.Errorf("RingPerCPU(%d) = %d, want %d", ncpu, got, want)
		}
	}
}
