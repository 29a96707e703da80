package loader

import (
	"bytes"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/servertest"
	"github.com/pofr/pofr/internal/testutil"
)

// TestTSVLongValueBoundedBuffer: a long value that escapes to twice its
// size (an argv of NUL bytes) is streamed in pieces: the reader's buffer
// stays near tsvChunk, and the stream still reads back exactly.
func TestTSVLongValueBoundedBuffer(t *testing.T) {
	argv := bytes.Repeat([]byte{0, '\t', 'a', '\\'}, (3<<20)/4)
	procs := []event.Proc{
		{TS: 1, Event: event.ProcExec, PID: 1, TID: 1, UID: 1, EUID: 1, GID: 1, EGID: 1, AUID: 1, SessionID: 1, Argv: argv, Comm: []byte("x")},
		{TS: 2, Event: event.ProcExit, PID: 2, TID: 2, UID: 1, EUID: 1, GID: 1, EGID: 1, AUID: 1, SessionID: 1, Argv: []byte("short")},
	}
	rec := build(event.ProcTable, procs)
	defer rec.Release()
	ti, _ := infoOf(event.TableProc)
	for _, enc := range []Encoding{Escaped, Hex} {
		r, err := newTSVReader(ti, rec, enc)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		p := make([]byte, 16<<10)
		maxCap := 0
		for {
			n, err := r.Read(p)
			out.Write(p[:n])
			maxCap = max(maxCap, cap(r.buf))
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if maxCap > 2*tsvChunk {
			t.Errorf("%s: buffer grew to %d bytes for a %d-byte value, want at most %d", enc, maxCap, len(argv), 2*tsvChunk)
		}
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if len(lines) != 2 {
			t.Fatalf("%s: %d lines, want 2", enc, len(lines))
		}
		argvField := 0
		for i, f := range rec.Schema().Fields() {
			if f.Name == "argv" {
				argvField = i + 2 // row_no, and ts split in two before it
			}
		}
		for i, want := range [][]byte{argv, []byte("short")} {
			f := strings.Split(lines[i], "\t")[argvField]
			var got []byte
			if enc == Hex {
				got = make([]byte, len(f)/2)
				fmt.Sscanf(f, "%x", &got)
			} else {
				got, _ = unescapeField([]byte(f))
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s: argv of row %d does not read back (%d bytes, want %d)", enc, i, len(got), len(want))
			}
		}
	}
}

// TestHostileValueMemory: a validly signed segment of a few kilobytes whose
// one exe value is 200 MiB (it compresses to almost nothing) is refused as
// too_long by a loader with default settings, without expanding it: the
// loader runs as a child process, and its peak RSS must stay within
// DefaultMaxMemory, two such segments at once included. A normal segment
// beside them loads.
func TestHostileValueMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two 200 MiB values")
	}
	db, dsn := newDB(t)
	f := servertest.NewFixture(t, "h1", "h2", "h3")
	for _, h := range []string{"h1", "h2"} {
		exe := bytes.Repeat([]byte("/usr/lib/x86_64-linux-gnu/"), (200<<20)/26)
		f.Seal(h, func(s event.Sink) {
			s.AppendProc(&event.Proc{TS: servertest.HostileBase(), Event: event.ProcExec, PID: 1, TID: 1, UID: 1, EUID: 1, GID: 1, EGID: 1, AUID: 1, SessionID: 1, Exe: exe})
		})
	}
	procs, files, socks := servertest.BusyRows(servertest.HostileBase(), 30)
	f.Seal("h3", func(s event.Sink) { event.AppendAll(s, procs, files, socks, nil, nil) })
	for _, h := range []string{"h1", "h2"} {
		fi, err := os.Stat(filepath.Join(f.State.String(), "inbox", h, f.Files("inbox", h)[0]))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("hostile segment of %s: %d bytes", h, fi.Size())
	}

	exePath, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), exePath, "-test.run=^$")
	cmd.Env = append(os.Environ(), "POFR_LOADER_CHILD=1", "POFR_LOADER_DSN="+dsn, "POFR_LOADER_STATE="+f.State.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("loader: %v\n%s", err, out)
	}
	var kib int64
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kib)
		}
	}
	if kib == 0 {
		t.Fatalf("the loader did not report its peak RSS:\n%s", out)
	}
	rss := kib << 10
	t.Logf("loader: %s; peak RSS %.1f MiB", strings.TrimSpace(string(out)), float64(rss)/(1<<20))
	if rss > DefaultMaxMemory {
		t.Errorf("peak RSS of the loader %d bytes, want at most %d", rss, DefaultMaxMemory)
	}
	var got []string
	testutil.EachRow(t, db, func(row testutil.Row) {
		var h, c, r string
		row.Scan(&h, &c, &r)
		got = append(got, h+" "+c)
		if !strings.Contains(r, "exe") {
			t.Errorf("%s: reason %q does not name the column", h, r)
		}
	}, "SELECT host_id, class, reason FROM quarantine ORDER BY host_id")
	if strings.Join(got, ",") != "h1 too_long,h2 too_long" {
		t.Errorf("quarantine: %v, want h1 and h2 too_long", got)
	}
	if n := len(f.Files("archive", "h3")); n != 1 {
		t.Errorf("h3: %d archived, want its segment loaded", n)
	}
}

// TestColumnLimitsMatchSchema: the loader's column limits are the byte
// lengths of the SQL columns, every byte or string column of every event
// table has one, and none is larger than its column.
func TestColumnLimitsMatchSchema(t *testing.T) {
	db, _ := newDB(t)
	for _, ti := range tableInfos {
		schema := event.SchemaOf(ti.table)
		for _, f := range schema.Fields() {
			if f.Type.ID() == arrow.TIMESTAMP {
				continue
			}
			var octets sql.NullInt64
			var typ string
			if err := db.QueryRow(`SELECT CHARACTER_OCTET_LENGTH, DATA_TYPE FROM information_schema.COLUMNS
				WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ?`, ti.sqlName, f.Name).Scan(&octets, &typ); err != nil {
				t.Errorf("%s.%s: %v", ti.sqlName, f.Name, err)
				continue
			}
			got := columnLimits[ti.sqlName][f.Name]
			if !octets.Valid {
				if got != 0 {
					t.Errorf("%s.%s (%s) has a limit of %d, but is not a byte column", ti.sqlName, f.Name, typ, got)
				}
				continue
			}
			if got != octets.Int64 {
				t.Errorf("%s.%s (%s): limit %d, the column holds %d bytes", ti.sqlName, f.Name, typ, got, octets.Int64)
			}
		}
	}
}
