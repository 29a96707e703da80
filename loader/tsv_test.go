package loader

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pofr/pofr/internal/event"
)

// unescapeField is LOAD DATA's reading of one field in the default format
// (ESCAPED BY '\\'): the reference the renderer is checked against.
func unescapeField(f []byte) (v []byte, null bool) {
	if string(f) == `\N` {
		return nil, true
	}
	out := []byte{}
	for i := 0; i < len(f); i++ {
		if f[i] != '\\' || i+1 == len(f) {
			out = append(out, f[i])
			continue
		}
		i++
		switch f[i] {
		case '0':
			out = append(out, 0)
		case 'b':
			out = append(out, '\b')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'Z':
			out = append(out, 26)
		default:
			out = append(out, f[i])
		}
	}
	return out, false
}

func TestAppendBytesRoundTrip(t *testing.T) {
	var all []byte
	for c := 0; c < 256; c++ {
		all = append(all, byte(c))
	}
	for _, v := range [][]byte{{}, []byte(`\N`), []byte(`\`), []byte("a\tb\nc\r\x00d\\"), []byte("'; DROP TABLE x; --"), all, []byte("NULL")} {
		field := appendBytes(nil, v, Escaped)
		if bytes.ContainsAny(field, "\t\n") {
			t.Errorf("field %q of %q holds a separator", field, v)
		}
		got, null := unescapeField(field)
		if null || !bytes.Equal(got, v) {
			t.Errorf("round trip of %q: got %q (null %v)", v, got, null)
		}
	}
}

func TestTSVReaderLines(t *testing.T) {
	procs := []event.Proc{
		{TS: 1764097373123456789, Event: event.ProcExec, PID: 1, TID: 1, ProcStart: 5, UID: event.NoID, EUID: 0, GID: 1, EGID: 2, AUID: event.NoID, SessionID: 3,
			Comm: []byte("a\tb"), Argv: []byte("x\x00y\n\x00"), Cwd: []byte{}},
		{TS: -1, Event: event.ProcFork, PID: 2, TID: 2, UID: 1, EUID: 1, GID: 1, EGID: 1, AUID: 1, SessionID: 1},
	}
	nfields, b, err := procTSV(t, procs)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2:\n%s", len(lines), b)
	}
	// row_no + columns, ts split in two.
	wantFields := 1 + nfields + 1
	for i, l := range lines {
		if n := len(strings.Split(l, "\t")); n != wantFields {
			t.Errorf("line %d has %d fields, want %d: %q", i, n, wantFields, l)
		}
	}
	f := strings.Split(lines[0], "\t")
	if diff := cmp.Diff([]string{"0", "2025-11-25 19:02:53.123456", "789", "exec"}, f[:4]); diff != "" {
		t.Errorf("first fields (-want +got):\n%s", diff)
	}
	f = strings.Split(lines[1], "\t")
	if got, want := f[1]+"|"+f[2], "1969-12-31 23:59:59.999999|999"; got != want {
		t.Errorf("ts of -1ns: got %s, want %s", got, want)
	}
}

// procTSV renders procs as LOAD DATA text (Escaped): the number of fields
// of the record's schema, and the text or the error of reading it.
func procTSV(t *testing.T, procs []event.Proc) (nfields int, b []byte, err error) {
	t.Helper()
	rec := build(event.ProcTable, procs)
	defer rec.Release()
	ti, _ := infoOf(event.TableProc)
	r, err := newTSVReader(ti, rec, Escaped)
	if err != nil {
		t.Fatal(err)
	}
	b, err = io.ReadAll(r)
	return len(rec.Schema().Fields()), b, err
}

func TestTSVRefusesNonASCIIVocabulary(t *testing.T) {
	if _, _, err := procTSV(t, []event.Proc{{Event: "ex\xffec", UID: 1, EUID: 1, GID: 1, EGID: 1, AUID: 1, SessionID: 1}}); err == nil || !strings.Contains(err.Error(), "printable ASCII") {
		t.Fatalf("got %v, want a printable ASCII error", err)
	}
}

// TestTSVVocabularyEscaped: a vocabulary value with a backslash (\N, the
// text LOAD DATA reads as NULL) is escaped like any other field.
func TestTSVVocabularyEscaped(t *testing.T) {
	_, b, err := procTSV(t, []event.Proc{{Event: `\N`, UID: 1, EUID: 1, GID: 1, EGID: 1, AUID: 1, SessionID: 1}})
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Split(string(b), "\t")[3]
	if v, null := unescapeField([]byte(f)); null || string(v) != `\N` {
		t.Errorf("event field %q reads back as %q (null %v), want the text \\N", f, v, null)
	}
}
