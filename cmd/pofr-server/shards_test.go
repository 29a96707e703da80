package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/internal/statedir"
)

// TestShardsCommands: add builds a map, pin records an admin's choice,
// a registered host gets its shard, rm refuses a shard that holds a host,
// and usage errors exit 2.
func TestShardsCommands(t *testing.T) {
	dir := t.TempDir()
	state := t.TempDir()
	m := filepath.Join(dir, "shards.json")
	run := func(want int, args ...string) string {
		t.Helper()
		code, out, errs := runApp(t, append(args, "--shards", m, "--state-dir", state)...)
		if code != want {
			t.Fatalf("%v: exit %d, want %d\n%s%s", args, code, want, out, errs)
		}
		return out + errs
	}
	run(0, "shards", "add", "--admin-dsn-file", "a1.dsn", "--loader-dsn-file", "l1.dsn", "s1")
	run(0, "shards", "add", "--admin-dsn-file", "a2.dsn", "--loader-dsn-file", "l2a.dsn", "--loader-dsn-file", "l2b.dsn", "s2")
	run(1, "shards", "add", "--admin-dsn-file", "a", "--loader-dsn-file", "l", "s1")
	if out := run(2, "shards", "add", "--admin-dsn-file", "a", "--loader-dsn-file", "l", "Bad-Name"); !strings.Contains(out, "shard name") {
		t.Errorf("bad name: %s", out)
	}
	run(2, "shards", "add", "s3")
	run(2, "shards", "pin", "web-01")
	if err := registry.Save(statedir.Dir(state), &registry.Host{HostID: "web-01", SigningKey: make([]byte, 32), Status: registry.StatusActive, RegisteredAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	run(0, "shards", "pin", "web-01", "s2")
	if h, err := registry.Load(statedir.Dir(state), "web-01"); err != nil || h.Shard != "s2" {
		t.Fatalf("registered host after pin: %+v %v", h, err)
	}
	if out := run(1, "shards", "pin", "web-01", "s1"); !strings.Contains(out, "on shard s2 already") {
		t.Errorf("moving pin: %s", out)
	}
	out := run(0, "shards", "ls")
	if !strings.Contains(out, "s1") || !strings.Contains(out, filepath.Join(dir, "l2a.dsn")+","+filepath.Join(dir, "l2b.dsn")) {
		t.Errorf("ls:\n%s", out)
	}
	if out := run(1, "shards", "rm", "s2"); !strings.Contains(out, "holds host web-01") {
		t.Errorf("rm of a used shard: %s", out)
	}
	run(0, "shards", "rm", "s1")
	if out := run(2, "registrations", "approve", "--shard", "s1", "0123"); !strings.Contains(out, "not in a shard map") {
		t.Errorf("approve --shard of a removed shard: %s", out)
	}
}
