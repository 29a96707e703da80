package query

import (
	"context"
	"encoding/csv"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSafe(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/usr/bin/ls", "/usr/bin/ls"},
		{"", ""},
		{"a\\b", `a\\b`},
		{"\x1b[2J", `\x1b[2J`},
		{"a\nb\tc\rd\x00e\x07", `a\nb\tc\rd\x00e\x07`},
		{"\x7f", `\x7f`},
		{"\xff\xfe", `\xff\xfe`},
		{"caf\xc3\xa9", "café"},
		{"\u009b31m", `\u009b31m`},                 // 8-bit CSI as a character
		{"\xc2\x9b", `\u009b`},                     // the same, as UTF-8 bytes
		{"evil\u202egnp.exe", `evil\u202egnp.exe`}, // bidi override
		{"zero\u200bwidth", `zero\u200bwidth`},
		{"\U000f0000", `\U000f0000`}, // private use
		{"日本語", "日本語"},
	} {
		if got := Safe([]byte(tc.in)); got != tc.want {
			t.Errorf("Safe(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestFormatArgv(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"ls\x00-l\x00/tmp\x00", "ls -l /tmp"},
		{"sh\x00-c\x00echo it's\x00", `sh -c 'echo it'\''s'`},
		{"a\x00\x00b\x00", "a '' b"},
		{"x\x00\x1b]0;t\x07\x00", `x $'\x1b]0;t\x07'`},
		{"x\x00it's\n\x00", `x $'it\'s\n'`},
		{"cut\x00at the cap", "cut 'at the cap'"},
		{"", ""},
		{"caf\xc3\xa9\x00", "'café'"},
	} {
		if got := FormatArgv([]byte(tc.in)); got != tc.want {
			t.Errorf("FormatArgv(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseTime(t *testing.T) {
	want := time.Date(2024, 6, 20, 1, 30, 0, 0, time.UTC)
	for _, s := range []string{"2024-06-20T01:30:00Z", "2024-06-20T03:30:00+02:00", "2024-06-20 01:30", "2024-06-20 01:30:00", "2024-06-20T01:30"} {
		got, err := ParseTime(s)
		if err != nil || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	if got, err := ParseTime("2024-06-20 01:30:00.25"); err != nil || !got.Equal(want.Add(250*time.Millisecond)) {
		t.Errorf("fraction: got %v, %v", got, err)
	}
	for _, s := range []string{"", "yesterday", "2024-13-01 00:00", "01:30"} {
		if _, err := ParseTime(s); !errors.Is(err, ErrBadTime) {
			t.Errorf("ParseTime(%q): got %v, want ErrBadTime", s, err)
		}
	}
}

func TestParseSinceAndRange(t *testing.T) {
	for s, want := range map[string]time.Duration{"2h": 2 * time.Hour, "90m": 90 * time.Minute, "3d": 72 * time.Hour,
		"1w": 168 * time.Hour, "1d12h": 36 * time.Hour} {
		if got, err := ParseSince(s); err != nil || got != want {
			t.Errorf("ParseSince(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "0s", "-1h", "xd", "2"} {
		if _, err := ParseSince(s); !errors.Is(err, ErrBadTime) {
			t.Errorf("ParseSince(%q): got %v, want ErrBadTime", s, err)
		}
	}
	now := time.Date(2024, 6, 20, 12, 0, 0, 0, time.UTC)
	r, err := ParseRange("2h", "", "", now)
	if err != nil || !r.From.Equal(now.Add(-2*time.Hour)) || !r.To.IsZero() {
		t.Errorf("--since 2h: got %+v, %v", r, err)
	}
	if _, err := ParseRange("2h", "2024-06-20 00:00", "", now); !errors.Is(err, ErrBadTime) {
		t.Errorf("--since with --from: got %v, want ErrBadTime", err)
	}
	if _, err := ParseRange("", "2024-06-20 02:00", "2024-06-20 01:00", now); !errors.Is(err, ErrBadTime) {
		t.Errorf("--from after --to: got %v, want ErrBadTime", err)
	}
	for s, want := range map[string][2]int{"1-4": {1, 4}, "22-4": {22, 4}, "0-24": {0, 24}} {
		f, to, err := ParseHours(s)
		if err != nil || f != want[0] || to != want[1] {
			t.Errorf("ParseHours(%q) = %d, %d, %v", s, f, to, err)
		}
	}
	for _, s := range []string{"4", "4-4", "25-1", "a-b"} {
		if _, _, err := ParseHours(s); err == nil {
			t.Errorf("ParseHours(%q): no error", s)
		}
	}
}

func TestParsePID(t *testing.T) {
	pid, start, err := ParsePID("4242@123456789")
	if err != nil || pid != 4242 || start == nil || *start != 123456789 {
		t.Errorf("ParsePID: got %d %v %v", pid, start, err)
	}
	if pid, start, err := ParsePID("7"); err != nil || pid != 7 || start != nil {
		t.Errorf("ParsePID(7): got %d %v %v", pid, start, err)
	}
	for _, s := range []string{"", "x", "0", "1@", "1@-2"} {
		if _, _, err := ParsePID(s); err == nil {
			t.Errorf("ParsePID(%q): no error", s)
		}
	}
}

func TestRemoteParams(t *testing.T) {
	get := func(s string) map[string]any {
		ps, err := remoteParams(s)
		if err != nil {
			t.Fatalf("remoteParams(%q): %v", s, err)
		}
		m := map[string]any{}
		for _, p := range ps {
			m[p.Name] = p.Value
		}
		return m
	}
	m := get("203.0.113.0/24")
	want := map[string]any{"remote": "203.0.113.0/24", "lo4": []byte{203, 0, 113, 0}, "hi4": []byte{203, 0, 113, 255},
		"lo6": netip.MustParseAddr("::ffff:203.0.113.0").AsSlice(), "hi6": netip.MustParseAddr("::ffff:203.0.113.255").AsSlice()}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("IPv4 CIDR (-want +got):\n%s", diff)
	}
	m = get("2001:db8::/32")
	if diff := cmp.Diff(netip.MustParseAddr("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff").AsSlice(), m["hi6"]); diff != "" || m["lo4"] != nil {
		t.Errorf("IPv6 CIDR: %v (-want +got):\n%s", m, diff)
	}
	m = get("10.0.0.7")
	if diff := cmp.Diff([]byte{10, 0, 0, 7}, m["hi4"]); diff != "" {
		t.Errorf("single address (-want +got):\n%s", diff)
	}
	if m := get(""); m["remote"] != nil {
		t.Errorf("empty: %v", m)
	}
	if _, err := remoteParams("10.0.0.300"); err == nil {
		t.Error("bad address: no error")
	}
}

func TestOutputFormats(t *testing.T) {
	ts := time.Date(2024, 6, 20, 1, 30, 0, 123456789, time.UTC)
	tb := &Table{
		Columns: []Column{{Name: "time", Kind: Time}, {Name: "n", Kind: Int}, {Name: "path", Kind: Text},
			{Name: "argv", Kind: Argv}, {Name: "remote_addr", Kind: Addr}, {Name: "hidden", Kind: Text, Show: ShowNone}},
		Rows: [][]any{
			{Cell{T: ts, Offset: 7200}, int64(1), []byte("/a\x1b[31m\xff"), []byte("x\x00a b\x00"), []byte{10, 0, 0, 1}, "h"},
			{nil, nil, nil, nil, nil, nil},
		},
	}
	var b strings.Builder
	if err := (Output{}).Write(&b, tb); err != nil {
		t.Fatal(err)
	}
	wantTable := "" +
		"TIME                         N  PATH            ARGV     REMOTE_ADDR\n" +
		"2024-06-20 01:30:00.123456Z  1  /a\\x1b[31m\\xff  x 'a b'  10.0.0.1\n" +
		"\n"
	if diff := cmp.Diff(wantTable, b.String()); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
	b.Reset()
	if err := (Output{Format: FormatCSV, Local: true}).Write(&b, tb); err != nil {
		t.Fatal(err)
	}
	wantCSV := "time,n,path,argv,remote_addr\n" +
		"2024-06-20 03:30:00.123456+02:00,1,/a\\x1b[31m\\xff,x 'a b',10.0.0.1\n" +
		",,,,\n"
	if diff := cmp.Diff(wantCSV, b.String()); diff != "" {
		t.Errorf("CSV (-want +got):\n%s", diff)
	}
	b.Reset()
	if err := (Output{Format: FormatJSON}).Write(&b, tb); err != nil {
		t.Fatal(err)
	}
	wantJSON := `{"time":"2024-06-20T01:30:00.123456789Z","n":1,"path":{"b64":"L2EbWzMxbf8="},"argv":["x","a b"],"remote_addr":"10.0.0.1"}` + "\n" +
		`{"time":null,"n":null,"path":null,"argv":null,"remote_addr":null}` + "\n"
	if diff := cmp.Diff(wantJSON, b.String()); diff != "" {
		t.Errorf("JSON (-want +got):\n%s", diff)
	}
}

func TestEnricherReverseDNS(t *testing.T) {
	calls := map[string]int{}
	e := &Enricher{Resolve: true, Timeout: time.Second, LookupAddr: func(ctx context.Context, addr string) ([]string, error) {
		calls[addr]++
		if _, ok := ctx.Deadline(); !ok {
			t.Error("reverse lookup without a deadline")
		}
		if addr == "192.0.2.1" {
			return []string{"host.example."}, nil
		}
		return nil, errors.New("no name")
	}}
	tb := &Table{Columns: []Column{{Name: "remote_addr", Kind: Addr}},
		Rows: [][]any{{[]byte{192, 0, 2, 1}}, {[]byte{192, 0, 2, 2}}, {[]byte{192, 0, 2, 1}}, {nil}}}
	e.Apply(t.Context(), tb, "remote_addr")
	var got []any
	for _, r := range tb.Rows {
		got = append(got, r[1])
	}
	if diff := cmp.Diff([]any{"host.example", nil, "host.example", nil}, got); diff != "" {
		t.Errorf("rdns (-want +got):\n%s", diff)
	}
	e.Apply(t.Context(), &Table{Columns: tb.Columns[:1], Rows: [][]any{{[]byte{192, 0, 2, 1}}}}, "remote_addr")
	if calls["192.0.2.1"] != 1 || calls["192.0.2.2"] != 1 {
		t.Errorf("lookups not cached: %v", calls)
	}
}

// TestCSVInjection: text cells a spreadsheet would run as formulas are
// neutralised in CSV (OWASP): a leading quote; numbers stay numbers, and
// the JSON output stays exact.
func TestCSVInjection(t *testing.T) {
	tb := &Table{Columns: []Column{{Name: "comm", Kind: Text}, {Name: "argv", Kind: Argv}, {Name: "n", Kind: Int}}}
	vals := []string{"=cmd|' /C calc'!A0", "+1+2", "-2+3", "@SUM(A1)", "=1", "plain", "a=b"}
	for _, v := range vals {
		tb.Rows = append(tb.Rows, []any{[]byte(v), []byte(v + "\x00--x\x00"), int64(-5)})
	}
	var b strings.Builder
	if err := (Output{Format: FormatCSV}).Write(&b, tb); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(b.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	wantComm := []string{"'=cmd|' /C calc'!A0", "'+1+2", "'-2+3", "'@SUM(A1)", "'=1", "plain", "a=b"}
	for i, r := range recs[1:] {
		if r[0] != wantComm[i] {
			t.Errorf("comm cell %q, want %q", r[0], wantComm[i])
		}
		for _, c := range r[:2] {
			if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
				t.Errorf("cell %q starts a formula", c)
			}
		}
		if r[2] != "-5" {
			t.Errorf("number cell %q, want -5", r[2])
		}
	}
	b.Reset()
	if err := (Output{Format: FormatJSON}).Write(&b, tb); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), `{"comm":"=cmd|' /C calc'!A0"`) {
		t.Errorf("JSON altered the value: %s", b.String())
	}
}
