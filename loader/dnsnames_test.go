package loader

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/servertest"
	"github.com/pofr/pofr/internal/testutil"
	"github.com/pofr/pofr/schema"
)

func TestAnswerAddrs(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{",", ""},
		{",0A000002,", "0a000002"},
		{",0A000002,00000000000000000000FFFF0A000002,", "0a000002 00000000000000000000ffff0a000002"},
		{",0A000002,0A000002,0A000003,", "0a000002 0a000003"},  // a repeat once
		{",0a000002,0A00000G,0A0000,0A00000203,,0A000004", ""}, // lower case, not hex, lengths, unterminated
		{"0A000002,", ""}, // no leading comma
		{",0A000002,x,20010DB8000000000000000000000001,", "0a000002 20010db8000000000000000000000001"},
	} {
		var got []string
		for _, a := range answerAddrs(nil, []byte(c.in)) {
			got = append(got, hex.EncodeToString(a))
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("answerAddrs(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// FuzzAnswerAddrs checks answerAddrs against the rule SQL applies
// (LOCATE(CONCAT(',', HEX(addr), ','), answer_addrs) > 0): every address it
// returns is found that way, and every 4- or 16-byte address found that way
// is returned, once.
func FuzzAnswerAddrs(f *testing.F) {
	for _, s := range []string{",0A000002,", ",0A000002,0A000002,", ",,0A000002", ",0a000002,FFFFFFFF,", "," + strings.Repeat("0123456789ABCDEF", 2) + ","} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, s []byte) {
		got := answerAddrs(nil, s)
		for i, a := range got {
			if len(a) != 4 && len(a) != 16 {
				t.Fatalf("%q: address of %d bytes", s, len(a))
			}
			if !bytes.Contains(s, []byte(","+strings.ToUpper(hex.EncodeToString(a))+",")) {
				t.Fatalf("%q: %x is not there", s, a)
			}
			for _, b := range got[:i] {
				if bytes.Equal(a, b) {
					t.Fatalf("%q: %x twice", s, a)
				}
			}
		}
		// Every comma-delimited token of 8 or 32 upper-case hex digits.
		for _, tok := range bytes.Split(s, []byte(",")) {
			if (len(tok) != 8 && len(tok) != 32) || !upperHex(tok) || !bytes.Contains(s, []byte(","+string(tok)+",")) {
				continue
			}
			a, _ := hex.DecodeString(string(tok))
			if !slices.ContainsFunc(got, func(b []byte) bool { return bytes.Equal(a, b) }) {
				t.Fatalf("%q: %s not returned", s, tok)
			}
		}
	})
}

// TestDNSNamesAtLoad: the loader fills dns_names with one row per answer
// address of each response, qname byte-exact whatever it holds, in both
// stream encodings; the migration's SQL, run again over dns_events, makes
// the same rows; query conns' rule finds the same names.
func TestDNSNamesAtLoad(t *testing.T) {
	for _, enc := range []Encoding{Escaped, Hex} {
		t.Run(enc.String(), func(t *testing.T) { testDNSNamesAtLoad(t, enc) })
	}
}

func testDNSNamesAtLoad(t *testing.T, enc Encoding) {
	db, _ := newDB(t)
	f := servertest.NewFixture(t, "h1")
	base := servertest.HostileBase()
	var all []byte
	for c := range 256 {
		all = append(all, byte(c))
	}
	names := [][]byte{[]byte("a\tb.example."), []byte("line1\nline2\r\n."), []byte(`back\slash\.`), []byte("nul\x00in.\x00"),
		[]byte(`\N`), []byte("'; DROP TABLE dns_names; --."), []byte("\xff\xfe\x1b[2J."), all, {}, nil}
	type want struct {
		addr, qname string
		null        bool
		pid         string
	}
	var wants []want
	f.Seal("h1", func(s event.Sink) {
		ds := s.(event.DNSSink)
		for i, n := range names {
			v4 := []byte{198, 51, 100, byte(i)}
			mapped := append(bytes.Repeat([]byte{0}, 10), 0xff, 0xff, 198, 51, 100, byte(i))
			v6 := []byte{0x20, 1, 0xd, 0xb8, 15: byte(i)}
			addrs := "," + strings.ToUpper(hex.EncodeToString(v4)) + "," + strings.ToUpper(hex.EncodeToString(mapped)) + "," +
				strings.ToUpper(hex.EncodeToString(v6)) + "," + strings.ToUpper(hex.EncodeToString(v4)) + ",bogus,0a0000ff,0A0000FG,"
			r := event.DNS{TS: base + int64(i)*1000, Event: event.DNSResponse, Proto: "udp", ClientAddr: []byte{10, 0, 0, 1},
				ClientPort: 5300, ServerAddr: []byte{10, 0, 0, 53}, ServerPort: 53, ID: uint16(i), QName: n,
				RCode: event.Some[uint8](0), Answers: []byte("x"), AnswerAddrs: []byte(addrs)}
			pid := `\N`
			if i%2 == 0 {
				r.PID, r.ProcStart = event.Some(int32(100+i)), event.Some(int64(1000*i))
				pid = fmt.Sprint(100 + i)
			}
			ds.AppendDNS(&r)
			// A query with the same text in answer_addrs adds nothing.
			q := r
			q.Event, q.RCode = event.DNSQuery, event.Opt[uint8]{}
			ds.AppendDNS(&q)
			for _, a := range [][]byte{v4, mapped, v6} {
				wants = append(wants, want{string(a), string(n), n == nil, pid})
			}
		}
		// The longest answer_addrs: 2,047 empty tokens before the address.
		ds.AppendDNS(&event.DNS{TS: base + 1e6, Event: event.DNSResponse, Proto: "tcp", ClientAddr: []byte{10, 0, 0, 1},
			ServerAddr: []byte{10, 0, 0, 53}, ServerPort: 53, QName: []byte("deep."), RCode: event.Some[uint8](0),
			AnswerAddrs: []byte(strings.Repeat(",", 4096-9) + "0A000009,")})
	})
	l, err := New(Options{DB: db, StateDir: f.State, Workers: 1, Encoding: enc})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := t.Context()
	if s, err := l.Run(ctx); err != nil || s.Loaded != 1 || s.Quarantined != 0 {
		t.Fatalf("run: %v, %s", err, s)
	}
	read := func() []want {
		var got []want
		testutil.EachRow(t, db, func(row testutil.Row) {
			var w want
			var q []byte
			row.Scan(&w.addr, &q, &w.pid)
			w.qname, w.null = string(q), q == nil
			got = append(got, w)
		}, `SELECT n.addr, n.qname, COALESCE(n.pid, '\\N') FROM dns_names n
			JOIN dns_events d ON d.segment_id = n.segment_id AND d.row_no = n.row_no AND d.ts = n.ts
			WHERE n.host_id = 'h1' AND d.host_id = n.host_id AND d.boot_id = n.boot_id AND d.pid <=> n.pid
			  AND d.proc_start <=> n.proc_start AND d.qname <=> n.qname AND d.event = 'response'
			ORDER BY n.ts, n.addr`)
		return got
	}
	// Rows come in ts order, then by address bytes.
	for i := 0; i < len(wants); i += 3 {
		slices.SortFunc(wants[i:i+3], func(a, b want) int { return strings.Compare(a.addr, b.addr) })
	}
	wants = append(wants, want{"\x0a\x00\x00\x09", "deep.", false, `\N`})
	got := read()
	if diff := cmp.Diff(wants, got, cmp.AllowUnexported(want{})); diff != "" {
		t.Fatalf("dns_names after the load (-want +got):\n%s", diff)
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM dns_names").Scan(&n); err != nil || n != len(wants) {
		t.Fatalf("dns_names holds %d rows (%v), want %d", n, err, len(wants))
	}
	// The migration's backfill makes the same rows from dns_events.
	if _, err := db.ExecContext(ctx, "DELETE FROM dns_names"); err != nil {
		t.Fatal(err)
	}
	for _, m := range schema.Migrations() {
		if !strings.HasSuffix(m.Name, "_dns_names.sql") {
			continue
		}
		for _, st := range schema.Statements(m.SQL) {
			if _, err := db.ExecContext(ctx, st); err != nil {
				t.Fatalf("%s: %v", st, err)
			}
		}
	}
	if diff := cmp.Diff(wants, read(), cmp.AllowUnexported(want{})); diff != "" {
		t.Errorf("dns_names from the migration (-want +got):\n%s", diff)
	}
	// Every dns_names row is one LOCATE over dns_events finds.
	var differ int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM dns_names n LEFT JOIN dns_events d
		ON d.segment_id = n.segment_id AND d.row_no = n.row_no AND d.ts = n.ts
		  AND LOCATE(CONCAT(',', HEX(n.addr), ','), d.answer_addrs) > 0
		WHERE d.row_no IS NULL`).Scan(&differ); err != nil || differ != 0 {
		t.Errorf("dns_names rows LOCATE does not find in dns_events: %d (%v)", differ, err)
	}
}
