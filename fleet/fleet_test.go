package fleet

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const twoShards = `{"shards":[
 {"name":"s1","admin_dsn_file":"s1-admin.dsn","reader_dsn_file":"s1-reader.dsn","loader_dsn_files":["s1-loader.dsn"],"pinned":["web-01"]},
 {"name":"s2","admin_dsn_file":"/abs/s2-admin.dsn","loader_dsn_files":["a.dsn","b.dsn","c.dsn"]}],
 "head":{"admin_dsn_file":"head-admin.dsn","reader_dsn_file":"head-reader.dsn"}}`

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{}`, "no shards"},
		{`{"shards":[],"x":1}`, "unknown field"},
		{`{"shards":[{"name":"s1","admin_dsn_file":"a","loader_dsn_files":["l"],"typo":1}]}`, "unknown field"},
		{`{"shards":[{"name":"S1","admin_dsn_file":"a","loader_dsn_files":["l"]}]}`, `name "S1"`},
		{`{"shards":[{"name":"s1; drop","admin_dsn_file":"a","loader_dsn_files":["l"]}]}`, "name"},
		{`{"shards":[{"name":"s1","admin_dsn_file":"a","loader_dsn_files":["l"]},{"name":"s1","admin_dsn_file":"a","loader_dsn_files":["l"]}]}`, "listed twice"},
		{`{"shards":[{"name":"s1","loader_dsn_files":["l"]}]}`, "admin_dsn_file is required"},
		{`{"shards":[{"name":"s1","admin_dsn_file":"a"}]}`, "loader_dsn_files"},
		{`{"shards":[{"name":"s1","admin_dsn_file":"a","loader_dsn_files":[""]}]}`, "empty loader"},
		{`{"shards":[{"name":"s1","admin_dsn_file":"a","loader_dsn_files":["l"],"pinned":["../x"]}]}`, "not a host id"},
		{`{"shards":[{"name":"s1","admin_dsn_file":"a","loader_dsn_files":["l"],"pinned":["h"]},{"name":"s2","admin_dsn_file":"a","loader_dsn_files":["l"],"pinned":["h"]}]}`, "pinned to both"},
		{`{"shards":[{"name":"s1","admin_dsn_file":"a","loader_dsn_files":["l"]}],"head":{}}`, "head: admin_dsn_file"},
		{`{"shards":[{"name":"s1","admin_dsn_file":"a","loader_dsn_files":["l"]}]} {}`, "after the JSON"},
		{`[1]`, "cannot unmarshal"},
	} {
		if _, err := Parse([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%s) = %v, want error containing %q", tc.in, err, tc.want)
		}
	}
}

func TestLoadResolvesAndRoundTrips(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "shards.json")
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "no shard map") {
		t.Fatalf("missing map: %v", err)
	}
	if err := os.WriteFile(p, []byte(twoShards), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Shards[0].AdminDSNFile; got != filepath.Join(dir, "s1-admin.dsn") {
		t.Errorf("relative DSN file resolved to %q", got)
	}
	if got := m.Shards[1].AdminDSNFile; got != "/abs/s2-admin.dsn" {
		t.Errorf("absolute DSN file became %q", got)
	}
	if len(m.Shards[1].LoaderDSNFiles) != 3 || m.Head == nil || m.Head.ReaderDSNFile != filepath.Join(dir, "head-reader.dsn") {
		t.Errorf("map %+v", m)
	}
	if err := m.Save(p); err != nil {
		t.Fatal(err)
	}
	m2, err := Load(p)
	if err != nil || m2.Shards[0].AdminDSNFile != m.Shards[0].AdminDSNFile {
		t.Fatalf("round trip: %v %+v", err, m2)
	}
}

func TestAssignAndPin(t *testing.T) {
	m, err := Parse([]byte(twoShards))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		host string
		load map[string]int
		want string
	}{
		{"web-01", map[string]int{"s1": 100}, "s1"}, // pinned wins over load
		{"web-02", nil, "s1"},                       // tie: by name
		{"web-02", map[string]int{"s1": 3, "s2": 2}, "s2"},
		{"web-02", map[string]int{"s1": 2, "s2": 2}, "s1"},
	}
	for _, c := range cases {
		if got, err := m.Assign(c.host, c.load); err != nil || got != c.want {
			t.Errorf("Assign(%s, %v) = %q, %v; want %q", c.host, c.load, got, err, c.want)
		}
	}
	if err := m.Pin("web-01", "s2"); err != nil {
		t.Fatal(err)
	}
	if got := m.PinnedShard("web-01"); got != "s2" || len(m.Shards[0].Pinned) != 0 {
		t.Errorf("after re-pin: %q, %v", got, m.Shards[0].Pinned)
	}
	if err := m.Pin("web-01", "nope"); err == nil {
		t.Error("pin to an unknown shard accepted")
	}
	m.Shards[0].Closed = true
	if got, _ := m.Assign("web-03", map[string]int{"s2": 50}); got != "s2" {
		t.Errorf("closed shard chosen: %q", got)
	}
	m.Shards[1].Closed = true
	if _, err := m.Assign("web-03", nil); err == nil {
		t.Error("assigned with every shard closed")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(twoShards))
	f.Add([]byte(`{"shards":[{"name":"a","admin_dsn_file":"x","loader_dsn_files":["y"]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		// Whatever parses validates, and assigns every valid host somewhere
		// (or says every shard is closed).
		if err := m.Validate(); err != nil {
			t.Fatalf("parsed map fails Validate: %v", err)
		}
		s, err := m.Assign("host-x", nil)
		if err == nil && m.Shard(s) == nil {
			t.Fatalf("assigned to unknown shard %q", s)
		}
	})
}
