package spool

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pofr/pofr/internal/event"
)

var update = flag.Bool("update", false, "rewrite the generated blocks of docs/segment-format.md and spool/testdata/example.pofr")

const (
	specPath    = "../docs/segment-format.md"
	examplePath = "testdata/example.pofr"
)

// exampleKey is the spec example's key: seed bytes 00 01 … 1f.
func exampleKey() ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i)
	}
	return ed25519.NewKeyFromSeed(seed)
}

// exampleSegment seals the spec's worked example with the Writer.
func exampleSegment(t *testing.T) (name string, b []byte) {
	t.Helper()
	dir := t.TempDir()
	cet := time.FixedZone("CET", 3600)
	sealAt := time.Date(2025, 11, 25, 20, 2, 53, 123456789, cet)
	w, err := Open(dir, Options{
		HostID: "h-0001", BootID: "0f5b7c2e-3a4d-4e6f-8a9b-1c2d3e4f5a6b", Key: exampleKey(),
		MaxSegmentAge: time.Hour, Now: func() time.Time { return sealAt }, Hostname: "web1", Version: "1.0.0",
		Stats: func() Stats {
			return Stats{Modes: map[string]string{"proc": "netlink", "file": "fanotify", "sock": "sock_diag"},
				Counters: map[string]Counter{"proc": {Seen: 3, Lost: 0}, "file": {Seen: 1, Lost: 0}}}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2025, 11, 25, 19, 2, 52, 500000000, time.UTC).UnixNano()
	w.AppendProc(&event.Proc{TS: ts, Event: event.ProcExec, PID: 4242, TID: 4242, PPID: 4100,
		ProcStart: 8_812_340_000_000, ParentStart: event.Some[int64](8_700_000_000_000),
		UID: 1000, EUID: 1000, GID: 1000, EGID: 1000, AUID: 1000, SessionID: 3,
		TTY: []byte("pts/0"), Comm: []byte("ls"), Exe: []byte("/usr/bin/ls"), Argv: []byte("ls\x00-l\x00/tmp\x00"),
		Cwd: []byte("/home/alice"), Cgroup: []byte("/user.slice/user-1000.slice/session-3.scope"),
		NSPid: event.Some[uint32](4026531836), NSMnt: event.Some[uint32](4026531841), NSNet: event.Some[uint32](4026531840),
		ExeKey: event.Some(event.ExeKey(2049, 1835263, 138208, 1712000000123456789, 1712000000123456789))})
	w.AppendFile(&event.File{TS: ts + 150_000, LastTS: ts + 150_000, Count: 1, PID: 4242,
		ProcStart: event.Some[int64](8_812_340_000_000), UID: 1000, Op: event.FileExec, Path: []byte("/usr/bin/ls"),
		Inode: event.Some[uint64](1835263), Dev: event.Some[uint64](2049)})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	infos, err := List(dir)
	if err != nil || len(infos) != 1 {
		t.Fatalf("List = %v, %v", infos, err)
	}
	return infos[0].Name, readAll(t, infos[0].Path)
}

// renderExample is the text of the spec's example block.
func renderExample(name string, b []byte) string {
	ms, _ := tarScan(b, (&VerifyOptions{}).limits())
	pub := exampleKey().Public().(ed25519.PublicKey)
	var s strings.Builder
	fmt.Fprintf(&s, "```text\n")
	fmt.Fprintf(&s, "public key:   %s\n", hex.EncodeToString(pub))
	fmt.Fprintf(&s, "manifest.json (%d bytes, ending in a newline):\n%s", len(ms[0].data), ms[0].data)
	fmt.Fprintf(&s, "digest:       %s\n", Digest(ms[0].data))
	sig := hex.EncodeToString(ms[1].data)
	fmt.Fprintf(&s, "manifest.sig: %s\n              %s\n", sig[:64], sig[64:])
	fmt.Fprintf(&s, "file name:    %s\n", name)
	fmt.Fprintf(&s, "file size:    %d bytes:", len(b))
	for _, m := range ms {
		fmt.Fprintf(&s, " %s %d", m.name, len(m.data))
	}
	fmt.Fprintf(&s, ", end marker %d\n```\n", 2*blockSize)
	return s.String()
}

// renderColumns is the text of the spec's column lists.
func renderColumns() string {
	var s strings.Builder
	tables := []struct {
		name string
		docs []event.ColumnDoc
	}{
		{event.TableProc, event.ProcTable.Docs()}, {event.TableFile, event.FileTable.Docs()},
		{event.TableSock, event.SockTable.Docs()}, {event.TableGap, event.GapTable.Docs()},
		{event.TableAcct, event.AcctTable.Docs()},
		{event.TableExe, event.ExeTable.Docs()},
		{event.TableDNS, event.DNSTable.Docs()},
		{event.TableLogin, event.LoginTable.Docs()},
		{event.TableCtr, event.CtrTable.Docs()},
	}
	for _, tb := range tables {
		fmt.Fprintf(&s, "\n#### `%s`\n\n| column | Arrow type | nullable | meaning |\n|---|---|---|---|\n", MemberName(tb.name))
		for _, d := range tb.docs {
			null := "no"
			if d.Nullable {
				null = "yes"
			}
			fmt.Fprintf(&s, "| `%s` | `%s` | %s | %s |\n", d.Name, d.Type, null, strings.ReplaceAll(d.Doc, "|", `\|`))
		}
	}
	s.WriteString("\n")
	return s.String()
}

var blockRE = func(name string) *regexp.Regexp {
	return regexp.MustCompile(`(?s)(<!-- BEGIN ` + name + ` [^\n]*-->\n)(.*?)(<!-- END ` + name + ` -->)`)
}

// specBlock returns the current text of a generated block of the spec, or,
// with -update, replaces it by want.
func specBlock(t *testing.T, name, want string) string {
	t.Helper()
	doc, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	re := blockRE(name)
	m := re.FindSubmatch(doc)
	if m == nil {
		t.Fatalf("%s: no generated block %q", specPath, name)
	}
	if *update {
		doc = re.ReplaceAllLiteral(doc, []byte(string(m[1])+want+string(m[3])))
		if err := os.WriteFile(specPath, doc, 0o644); err != nil {
			t.Fatal(err)
		}
		return want
	}
	return string(m[2])
}

// TestSpecExample checks that the Writer produces the spec's worked example
// byte for byte, and that testdata/example.pofr is that file.
func TestSpecExample(t *testing.T) {
	name, b := exampleSegment(t)
	want := renderExample(name, b)
	if *update {
		if err := os.MkdirAll(filepath.Dir(examplePath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(examplePath, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := specBlock(t, "example", want); got != want {
		t.Errorf("the Writer no longer produces the example of %s (run with -update if the change is intended):\ngot:\n%s\nwant:\n%s", specPath, want, got)
	}
	if stored := readAll(t, examplePath); !bytes.Equal(stored, b) {
		t.Errorf("%s differs from the example the Writer produces (run with -update if intended)", examplePath)
	}
}

// TestSpecExampleVerifies reads the stored example as a stranger would:
// with the spec's public key, its digest and file name as the spec states.
func TestSpecExampleVerifies(t *testing.T) {
	doc, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	field := func(label string) string {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(label) + `\s+(\S+)`).FindSubmatch(doc)
		if m == nil {
			t.Fatalf("%s: no %q line in the example", specPath, label)
		}
		return string(m[1])
	}
	pub, err := hex.DecodeString(field("public key:"))
	if err != nil {
		t.Fatal(err)
	}
	b := readAll(t, examplePath)
	empty := ""
	s, err := VerifyBytes(b, VerifyOptions{PublicKey: pub, HostID: "h-0001", PrevDigest: &empty})
	if err != nil {
		t.Fatalf("%s does not verify with the spec's key: %v", examplePath, err)
	}
	defer s.Release()
	if got, want := s.Digest, field("digest:"); got != want {
		t.Errorf("digest = %s, spec says %s", got, want)
	}
	if got, want := s.Name(), field("file name:"); got != want {
		t.Errorf("name = %s, spec says %s", got, want)
	}
	if got, want := hex.EncodeToString(ed25519.Sign(exampleKey(), s.ManifestBytes())), strings.Join(strings.Fields(
		regexp.MustCompile(`(?s)manifest\.sig: (\S+)\s+(\S+)`).FindString(string(doc)))[1:], ""); got != want {
		t.Errorf("signature = %s, spec says %s", got, want)
	}
	if got, want := s.Manifest.TZOffset, 3600; got != want {
		t.Errorf("tz_offset_seconds = %d, want %d", got, want)
	}
}

// TestSpecOlderMember reads the worked example as the Writer produced it
// before the proc table got exe_key (testdata/example-before-exe-key.pofr):
// it still verifies, and its rows read with the current schema, exe_key
// null.
func TestSpecOlderMember(t *testing.T) {
	pub := exampleKey().Public().(ed25519.PublicKey)
	empty := ""
	s, err := VerifyBytes(readAll(t, "testdata/example-before-exe-key.pofr"), VerifyOptions{PublicKey: pub, HostID: "h-0001", PrevDigest: &empty})
	if err != nil {
		t.Fatalf("an older segment no longer verifies: %v", err)
	}
	defer s.Release()
	rec, err := s.Record(event.TableProc)
	if err != nil {
		t.Fatal(err)
	}
	if !rec.Schema().Equal(event.ProcTable.Schema) {
		t.Errorf("older proc member read with schema %v, want the table's", rec.Schema())
	}
	procs, err := s.Procs()
	if err != nil || len(procs) != 1 {
		t.Fatalf("Procs = %v, %v", procs, err)
	}
	if p := procs[0]; p.ExeKey.Valid || string(p.Exe) != "/usr/bin/ls" || p.PID != 4242 {
		t.Errorf("older exec row read as %+v, want exe /usr/bin/ls, pid 4242, no exe_key", p)
	}
}

// TestSpecColumns checks the spec's column lists against internal/event:
// names, order, types and nullability, which define the format. The
// "meaning" text is informative and may lag behind internal/event until the
// next -update.
func TestSpecColumns(t *testing.T) {
	want := renderColumns()
	got := specBlock(t, "columns", want)
	structure := func(s string) []string {
		var out []string
		for _, line := range strings.Split(s, "\n") {
			if strings.HasPrefix(line, "#### ") {
				out = append(out, line)
			} else if f := strings.Split(line, " | "); strings.HasPrefix(line, "| `") && len(f) >= 3 {
				out = append(out, strings.Join(f[:3], " | "))
			}
		}
		return out
	}
	if diff := cmp.Diff(structure(want), structure(got)); diff != "" {
		t.Errorf("the column lists of %s differ from internal/event (run with -update) (-event +spec):\n%s", specPath, diff)
	}
}
