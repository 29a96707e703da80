package query

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// render prints t in format f (UTC unless local).
func render(t *testing.T, tb *Table, f Format, local bool) string {
	t.Helper()
	var b bytes.Buffer
	if err := (Output{Format: f, Local: local}).Write(&b, tb); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// jsonLines decodes JSON lines output.
func jsonLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	dec := json.NewDecoder(strings.NewReader(s))
	for dec.More() {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("decode JSON lines: %v\n%s", err, s)
		}
		out = append(out, m)
	}
	return out
}

// column returns the values of one JSON field over all lines.
func column(rows []map[string]any, k string) []any {
	var out []any
	for _, r := range rows {
		out = append(out, r[k])
	}
	return out
}

func csvRecords(t *testing.T, s string) [][]string {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(s)).ReadAll()
	if err != nil {
		t.Fatalf("parse CSV: %v\n%s", err, s)
	}
	return recs
}

// assertSafe checks that text output cannot act on a terminal: no control
// character but newline ending each line, valid UTF-8, lines = rows + 1.
func assertSafe(t *testing.T, out string, lines int) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Errorf("output is not valid UTF-8:\n%q", out)
	}
	for _, r := range out {
		if (r < 0x20 && r != '\n') || r == 0x7f || (r >= 0x80 && r <= 0x9f) {
			t.Errorf("output holds control character %U:\n%q", r, out)
			break
		}
	}
	if got := strings.Count(out, "\n"); got != lines {
		t.Errorf("got %d lines, want %d:\n%s", got, lines, out)
	}
}

func TestQueries(t *testing.T) {
	d := newDemo(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	q := d.q

	t.Run("hosts", func(t *testing.T) {
		tb, err := q.Hosts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rows := jsonLines(t, render(t, tb, FormatJSON, false))
		var got []string
		for _, r := range rows {
			got = append(got, strings.Join([]string{r["host_id"].(string), r["hostname"].(string), r["chain"].(string),
				r["last_seen"].(string)}, " ")+" "+jsonNum(r["segments"])+" "+jsonNum(r["gaps"])+" "+jsonNum(r["missing_segments"]))
		}
		want := []string{
			"host-a alpha ok 2024-06-20T01:30:30Z 2 1 0",
			"host-b beta ok 2024-06-20T01:30:40Z 1 0 0",
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("hosts (-want +got):\n%s", diff)
		}
		table := render(t, tb, FormatTable, false)
		if !strings.HasPrefix(table, "HOST_ID  HOSTNAME  STATUS  IPS ") {
			t.Errorf("table header: %q", strings.SplitN(table, "\n", 2)[0])
		}
		recs := csvRecords(t, render(t, tb, FormatCSV, false))
		if len(recs) != 3 || recs[0][0] != "host_id" || recs[2][1] != "beta" || recs[2][3] != "10.0.0.2" {
			t.Errorf("csv: %q", recs)
		}
	})

	t.Run("tree", func(t *testing.T) {
		tb, err := q.Tree(ctx, "alpha", t0.Add(5500*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		table := render(t, tb, FormatTable, false)
		want := "" +
			"PID  PPID  PROC_START  STARTED                      USER      LOGIN     EXE                       TREE\n" +
			"1    0     1000        2024-06-20 01:30:00.000000Z  root      root      /usr/lib/systemd/systemd  /sbin/init\n" +
			"100  1     5000        2024-06-20 01:30:00.000000Z  alice     alice     /usr/bin/bash               -bash\n" +
			"300  100   300000      2024-06-20 01:30:05.000000Z  alice     alice     /tmp/evil\\x1b[2J              evil $'\\x1b[2Jclear' $'line1\\nline2' $'tab\\there' $'\\xff\\xfe'\n" +
			"500  1     6000        2024-06-20 01:30:00.000000Z  www-data  www-data  /usr/sbin/httpd             /usr/sbin/httpd -DFOREGROUND\n"
		if diff := cmp.Diff(want, table); diff != "" {
			t.Errorf("tree table (-want +got):\n%s", diff)
		}
		assertSafe(t, table, 5)
		rows := jsonLines(t, render(t, tb, FormatJSON, false))
		if diff := cmp.Diff([]any{0.0, 1.0, 2.0, 1.0}, column(rows, "depth")); diff != "" {
			t.Errorf("depth (-want +got):\n%s", diff)
		}
		wantArgv := []any{"evil", "\x1b[2Jclear", "line1\nline2", "tab\there", map[string]any{"b64": "//4="}}
		if diff := cmp.Diff(wantArgv, rows[2]["argv"]); diff != "" {
			t.Errorf("hostile argv in JSON (-want +got):\n%s", diff)
		}
		if got := rows[2]["exe"]; got != hostileExe {
			t.Errorf("hostile exe in JSON: got %q, want %q", got, hostileExe)
		}
		// After curl (200) exited at +4 s and before nmap (400): 200 is gone.
		tb, err = q.Tree(ctx, "host-a", t0.Add(4*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]any{1.0, 100.0, 500.0}, column(jsonLines(t, render(t, tb, FormatJSON, false)), "pid")); diff != "" {
			t.Errorf("tree at exit time (-want +got):\n%s", diff)
		}
		// Local time: alpha is UTC+2.
		local := render(t, tb, FormatCSV, true)
		if !strings.Contains(local, "2024-06-20 03:30:00.000000+02:00") {
			t.Errorf("--local CSV lacks alpha's +02:00 time:\n%s", local)
		}
	})

	t.Run("timeline", func(t *testing.T) {
		// [+1 s, +4 s): the fork of curl at exactly +1 s is in, its exit at
		// exactly +4 s is out.
		tb, err := q.Timeline(ctx, "host-a", Range{From: t0.Add(time.Second), To: t0.Add(4 * time.Second)}, 0)
		if err != nil {
			t.Fatal(err)
		}
		rows := jsonLines(t, render(t, tb, FormatJSON, false))
		var got []string
		for _, r := range rows {
			got = append(got, r["time"].(string)+" "+r["kind"].(string)+" "+r["event"].(string)+" "+jsonNum(r["pid"]))
		}
		want := []string{
			"2024-06-20T01:30:01Z proc fork 200",
			"2024-06-20T01:30:01Z login login 200",
			"2024-06-20T01:30:01.001Z proc exec 200",
			"2024-06-20T01:30:01.5Z file open 200",
			"2024-06-20T01:30:01.6Z file open 200",
			"2024-06-20T01:30:02Z sock open 200",
			"2024-06-20T01:30:02.5Z file write 200",
			"2024-06-20T01:30:03Z sock close 200",
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("timeline [from, to) (-want +got):\n%s", diff)
		}
		// A page (LIMIT inside timeline.sql, before the lookups) is the same
		// rows, user and exe as that slice of the whole answer.
		pq := *q
		pq.Page = Page{Limit: 3, Offset: 4}
		pt, err := pq.Timeline(ctx, "host-a", Range{From: t0.Add(time.Second), To: t0.Add(4 * time.Second)}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(rows[4:7], jsonLines(t, render(t, pt, FormatJSON, false))); diff != "" {
			t.Errorf("timeline page 3 rows at offset 4 (-want +got):\n%s", diff)
		}
		table := render(t, tb, FormatTable, false)
		assertSafe(t, table, len(want)+1)
		for _, s := range []string{
			"2024-06-20 01:30:02.000000Z  sock   open   200  1000  alice  /usr/bin/curl  tcp out 10.0.0.1:40000 -> 10.0.0.2:8080 ESTABLISHED name beta.example.",
			"curl http://10.0.0.2:8080/",
			"login  login  200        alice                 pts/0 from 192.0.2.7",
		} {
			if !strings.Contains(table, s) {
				t.Errorf("timeline table lacks %q:\n%s", s, table)
			}
		}
		// The hostile program's rows print safely in every format.
		tb, err = q.Timeline(ctx, "host-a", Range{From: t0.Add(5 * time.Second), To: t0.Add(8 * time.Second)}, 300)
		if err != nil {
			t.Fatal(err)
		}
		table = render(t, tb, FormatTable, false)
		assertSafe(t, table, 5)
		if !strings.Contains(table, `/tmp/x\x1b]0;pwned\x07\n\xff`) {
			t.Errorf("hostile path not escaped as expected:\n%s", table)
		}
		c := render(t, tb, FormatCSV, false)
		assertSafe(t, c, 5)
		recs := csvRecords(t, c)
		if got, want := recs[2][len(recs[2])-1], `evil $'\x1b[2Jclear' $'line1\nline2' $'tab\there' $'\xff\xfe'`; got != want {
			t.Errorf("hostile argv in CSV: got %q, want %q", got, want)
		}
		rows = jsonLines(t, render(t, tb, FormatJSON, false))
		if got, want := rows[2]["detail"], any(map[string]any{"b64": "L3RtcC94G10wO3B3bmVkBwr/"}); !cmp.Equal(got, want) {
			t.Errorf("hostile path in JSON: got %v, want %v", got, want)
		}
		if _, err := q.Timeline(ctx, "nosuchhost", Range{}, 0); !errors.Is(err, ErrUnknownHost) {
			t.Errorf("unknown host: got %v, want ErrUnknownHost", err)
		}
	})

	t.Run("proc", func(t *testing.T) {
		tb, err := q.Proc(ctx, "host-a", 200, nil)
		if err != nil {
			t.Fatal(err)
		}
		rows := jsonLines(t, render(t, tb, FormatJSON, false))
		var got []string
		for _, r := range rows {
			got = append(got, r["relation"].(string)+" "+r["event"].(string)+" "+jsonNum(r["pid"]))
		}
		want := []string{"ancestor 2 start 1", "parent start 100", "self fork 200", "self exec 200", "file open 200",
			"file open 200", "sock open 200", "file write 200", "sock close 200", "self exit 200"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("proc 200 (-want +got):\n%s", diff)
		}
		// user: the uid's name as of each row's time.
		var users []string
		for _, r := range rows {
			u, _ := r["user"].(string)
			users = append(users, r["relation"].(string)+" "+u)
		}
		wantUsers := []string{"ancestor 2 root", "parent alice", "self alice", "self alice", "file alice", "file alice", "sock alice",
			"file alice", "sock alice", "self alice"}
		if diff := cmp.Diff(wantUsers, users); diff != "" {
			t.Errorf("proc 200 users (-want +got):\n%s", diff)
		}
		start := int64(5000)
		tb, err = q.Proc(ctx, "alpha", 100, &start)
		if err != nil {
			t.Fatal(err)
		}
		var children []string
		for _, r := range jsonLines(t, render(t, tb, FormatJSON, false)) {
			if r["relation"] == "child" {
				children = append(children, jsonNum(r["pid"])+" "+r["detail"].(string))
			}
		}
		wantChildren := []string{"200 exited at 2024-06-20 01:30:04.000000 code 0", "300 exited at 2024-06-20 01:30:07.000000 signal 9",
			"400 exited at 2024-06-20 01:30:09.000000 code 0"}
		if diff := cmp.Diff(wantChildren, children); diff != "" {
			t.Errorf("children of 100 (-want +got):\n%s", diff)
		}
		bad := int64(1)
		if _, err := q.Proc(ctx, "alpha", 100, &bad); !errors.Is(err, ErrNoProcess) {
			t.Errorf("wrong start: got %v, want ErrNoProcess", err)
		}
	})

	t.Run("logins", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			args LoginsArgs
			want []string
		}{
			{"all", LoginsArgs{}, []string{"failed root 198.51.100.9  0", `failed adm\x1b[2Jin 2001:db8::1  0`, "login alice 192.0.2.7 7 3"}},
			{"failed", LoginsArgs{Failed: true}, []string{"failed root 198.51.100.9  0", `failed adm\x1b[2Jin 2001:db8::1  0`}},
			{"user", LoginsArgs{User: "alice"}, []string{"login alice 192.0.2.7 7 3"}},
			{"cidr", LoginsArgs{FromIP: "198.51.100.0/24"}, []string{"failed root 198.51.100.9  0"}},
			{"cidr6", LoginsArgs{FromIP: "2001:db8::/32", Failed: true}, []string{`failed adm\x1b[2Jin 2001:db8::1  0`}},
			{"other host", LoginsArgs{Host: "beta"}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tb, err := q.Logins(ctx, tc.args)
				if err != nil {
					t.Fatal(err)
				}
				recs := csvRecords(t, render(t, tb, FormatCSV, false))
				col := map[string]int{}
				for i, c := range recs[0] {
					col[c] = i
				}
				var got []string
				for _, r := range recs[1:] {
					got = append(got, strings.Join([]string{r[col["kind"]], r[col["user"]], r[col["remote_ip"]], r[col["session_id"]], r[col["execs"]]}, " "))
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("logins %+v (-want +got):\n%s (columns %v)", tc.args, diff, recs[0])
				}
			})
		}
	})

	t.Run("binaries", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			args BinariesArgs
			want []string
		}{
			{"all", BinariesArgs{}, []string{"host-a " + hex.EncodeToString(shaCurl[:]) + " /usr/bin/curl",
				"host-a " + hex.EncodeToString(shaEvil[:]) + ` /tmp/evil\x1b[2J`}},
			{"sha256", BinariesArgs{SHA256: hex.EncodeToString(shaEvil[:])}, []string{"host-a " + hex.EncodeToString(shaEvil[:]) + ` /tmp/evil\x1b[2J`}},
			{"other host", BinariesArgs{Host: "beta"}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tb, err := q.Binaries(ctx, tc.args)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, r := range csvRecords(t, render(t, tb, FormatCSV, false))[1:] {
					got = append(got, r[0]+" "+r[4]+" "+r[7])
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("binaries %+v (-want +got):\n%s", tc.args, diff)
				}
			})
		}
		if _, err := q.Binaries(ctx, BinariesArgs{SHA256: "abc"}); !errors.Is(err, ErrSHA256) {
			t.Errorf("binaries --sha256 abc: %v, want ErrSHA256", err)
		}
	})

	t.Run("ran", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			args RanArgs
			want []string
		}{
			{"user name", RanArgs{User: "toma"}, []string{"host-a 400 nmap -P0 192.168.18.34"}},
			{"argv like", RanArgs{User: "toma", ArgvLike: "nmap -P0 192.168.18.34%"}, []string{"host-a 400 nmap -P0 192.168.18.34"}},
			{"argv miss", RanArgs{User: "toma", ArgvLike: "nmap -sS%"}, nil},
			{"uid", RanArgs{User: "1001"}, []string{"host-a 400 nmap -P0 192.168.18.34"}},
			// uid 1000 is alice on alpha and bob on beta: names are per host.
			{"bob", RanArgs{User: "bob"}, []string{"host-b 700 python3 -m http.server 8080"}},
			{"exe base name", RanArgs{Exe: "curl"}, []string{"host-a 200 curl http://10.0.0.2:8080/"}},
			{"exe path", RanArgs{Exe: "/usr/bin/python3"}, []string{"host-b 700 python3 -m http.server 8080"}},
			{"range excludes", RanArgs{Exe: "curl", Range: Range{From: t0.Add(1001 * time.Millisecond).Add(time.Microsecond)}}, nil},
			{"range includes", RanArgs{Exe: "curl", Range: Range{From: t0.Add(1001 * time.Millisecond), To: t0.Add(1002 * time.Millisecond)}}, []string{"host-a 200 curl http://10.0.0.2:8080/"}},
			{"host", RanArgs{Exe: "systemd", Host: "beta"}, []string{"host-b 1 /sbin/init"}},
			{"sha256", RanArgs{SHA256: hex.EncodeToString(shaCurl[:])}, []string{"host-a 200 curl http://10.0.0.2:8080/"}},
			{"sha256 hostile", RanArgs{SHA256: hex.EncodeToString(shaEvil[:])}, []string{`host-a 300 evil $'\x1b[2Jclear' $'line1\nline2' $'tab\there' $'\xff\xfe'`}},
			{"sha256 none", RanArgs{SHA256: strings.Repeat("00", 32)}, nil},
			{"container name", RanArgs{Container: "web"}, []string{"host-b 700 python3 -m http.server 8080"}},
			{"container pod", RanArgs{Container: "web-5f7c", Host: "beta"}, []string{"host-b 700 python3 -m http.server 8080"}},
			{"container none", RanArgs{Container: "we"}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tb, err := q.Ran(ctx, tc.args)
				if err != nil {
					t.Fatal(err)
				}
				recs := csvRecords(t, render(t, tb, FormatCSV, false))
				var got []string
				for _, r := range recs[1:] {
					got = append(got, r[0]+" "+r[3]+" "+r[len(r)-1])
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("ran %+v (-want +got):\n%s", tc.args, diff)
				}
			})
		}
	})

	t.Run("touched", func(t *testing.T) {
		for _, tc := range []struct {
			args TouchedArgs
			want []string
		}{
			{TouchedArgs{Path: "/usr/", Exe: "httpd"}, []string{"open /usr/share/doc/index.html www-data /usr/sbin/httpd"}},
			{TouchedArgs{Path: "/usr/"}, []string{"open /usr/lib/x86_64-linux-gnu/libcurl.so.4 alice /usr/bin/curl",
				"open /usr/share/doc/index.html www-data /usr/sbin/httpd"}},
			{TouchedArgs{Path: "/etc/hosts"}, []string{"open /etc/hosts alice /usr/bin/curl"}},
			{TouchedArgs{Path: "/home/alice/out.html", Op: "write"}, []string{"write /home/alice/out.html alice /usr/bin/curl"}},
			{TouchedArgs{Path: "/home/alice/out.html", Op: "delete"}, nil},
			{TouchedArgs{Path: hostilePath}, []string{`create /tmp/x\x1b]0;pwned\x07\n\xff alice /tmp/evil\x1b[2J`}},
		} {
			tb, err := q.Touched(ctx, tc.args)
			if err != nil {
				t.Fatal(err)
			}
			out := render(t, tb, FormatCSV, false)
			assertSafe(t, out, len(tc.want)+1)
			var got []string
			for _, r := range csvRecords(t, out)[1:] {
				got = append(got, strings.Join([]string{r[4], r[5], r[10], r[11]}, " "))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("touched %+v (-want +got):\n%s", tc.args, diff)
			}
		}
	})

	t.Run("conns", func(t *testing.T) {
		key := func(r map[string]any) string {
			return r["host"].(string) + " " + r["direction"].(string) + " " + r["local_addr"].(string) + ":" + jsonNum(r["local_port"]) +
				" " + r["remote_addr"].(string) + ":" + jsonNum(r["remote_port"]) + " " + str(r["exe"]) + " " + str(r["user"])
		}
		for _, tc := range []struct {
			name string
			args ConnsArgs
			want []string
		}{
			{"all connected", ConnsArgs{}, []string{
				"host-a out 10.0.0.1:40000 10.0.0.2:8080 /usr/bin/curl alice",
				"host-b in 10.0.0.2:8080 10.0.0.1:40000 /usr/bin/python3 bob",
				"host-b in 10.0.0.2:22 203.0.113.5:51000  ",
			}},
			{"listening", ConnsArgs{Listening: "only"}, []string{
				"host-b listen 0.0.0.0:8080 0.0.0.0:0 /usr/bin/python3 bob",
				"host-b listen 0.0.0.0:22 0.0.0.0:0 /usr/sbin/sshd root",
			}},
			{"remote cidr", ConnsArgs{Remote: "203.0.113.0/24"}, []string{"host-b in 10.0.0.2:22 203.0.113.5:51000  "}},
			{"remote addr", ConnsArgs{Remote: "10.0.0.2"}, []string{"host-a out 10.0.0.1:40000 10.0.0.2:8080 /usr/bin/curl alice"}},
			{"remote mapped", ConnsArgs{Remote: "::ffff:10.0.0.0/120"}, []string{
				"host-a out 10.0.0.1:40000 10.0.0.2:8080 /usr/bin/curl alice",
				"host-b in 10.0.0.2:8080 10.0.0.1:40000 /usr/bin/python3 bob",
			}},
			{"ports", ConnsArgs{Ports: []int{137, 22}}, []string{"host-b in 10.0.0.2:22 203.0.113.5:51000  "}},
			{"user exe", ConnsArgs{User: "alice", Exe: "curl"}, []string{"host-a out 10.0.0.1:40000 10.0.0.2:8080 /usr/bin/curl alice"}},
			{"container", ConnsArgs{Container: "web-5f7c", Listening: "all"}, []string{
				"host-b listen 0.0.0.0:8080 0.0.0.0:0 /usr/bin/python3 bob",
				"host-b in 10.0.0.2:8080 10.0.0.1:40000 /usr/bin/python3 bob",
			}},
			// beta is UTC: the outsider came at 01:30:40 host time.
			{"hours in", ConnsArgs{Ports: []int{22}, Hours: "1-4"}, []string{"host-b in 10.0.0.2:22 203.0.113.5:51000  "}},
			{"hours out", ConnsArgs{Ports: []int{22}, Hours: "2-4"}, nil},
			{"hours wrap", ConnsArgs{Ports: []int{22}, Hours: "22-2"}, []string{"host-b in 10.0.0.2:22 203.0.113.5:51000  "}},
			// alpha is UTC+2: curl's connection was at 03:30 host time.
			{"hours local", ConnsArgs{Exe: "curl", Hours: "3-4"}, []string{"host-a out 10.0.0.1:40000 10.0.0.2:8080 /usr/bin/curl alice"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tb, err := q.Conns(ctx, tc.args)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, r := range jsonLines(t, render(t, tb, FormatJSON, false)) {
					got = append(got, key(r))
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("conns %+v (-want +got):\n%s", tc.args, diff)
				}
			})
		}
		// The name curl resolved beta's address from: its own answer, not
		// the later one of an unknown process.
		tb, err := q.Conns(ctx, ConnsArgs{})
		if err != nil {
			t.Fatal(err)
		}
		names := map[string]any{}
		for _, r := range jsonLines(t, render(t, tb, FormatJSON, false)) {
			names[key(r)] = r["dns_name"]
		}
		if diff := cmp.Diff(map[string]any{
			"host-a out 10.0.0.1:40000 10.0.0.2:8080 /usr/bin/curl alice": "beta.example.",
			"host-b in 10.0.0.2:8080 10.0.0.1:40000 /usr/bin/python3 bob": nil,
			"host-b in 10.0.0.2:22 203.0.113.5:51000  ":                   nil,
		}, names); diff != "" {
			t.Errorf("conns dns_name (-want +got):\n%s", diff)
		}
		if _, err := q.Conns(ctx, ConnsArgs{Country: "VN"}); err == nil || !strings.Contains(err.Error(), "--geoip") {
			t.Errorf("--country without --geoip: got %v, want an error naming --geoip", err)
		}
	})

	t.Run("peers", func(t *testing.T) {
		tb, err := q.Peers(ctx, PeersArgs{})
		if err != nil {
			t.Fatal(err)
		}
		table := render(t, tb, FormatTable, false)
		want := "" +
			"TIME                         PROTO  CLIENT_HOST  CLIENT_PID  CLIENT_USER  CLIENT_EXE     CLIENT_ADDR  CLIENT_PORT  SERVER_HOST  SERVER_ADDR  SERVER_PORT  SERVER_PID  SERVER_USER  SERVER_EXE\n" +
			"2024-06-20 01:30:02.000000Z  tcp    host-a       200         alice        /usr/bin/curl  10.0.0.1     40000        host-b       10.0.0.2     8080         700         bob          /usr/bin/python3\n"
		if diff := cmp.Diff(want, table); diff != "" {
			t.Errorf("peers (-want +got):\n%s", diff)
		}
		tb, err = q.Peers(ctx, PeersArgs{Range: Range{From: t0.Add(10 * time.Second)}})
		if err != nil {
			t.Fatal(err)
		}
		if len(tb.Rows) != 0 {
			t.Errorf("peers after the connection: got %d rows, want 0", len(tb.Rows))
		}
	})

	t.Run("gaps", func(t *testing.T) {
		tb, err := q.Gaps(ctx, "alpha", Range{})
		if err != nil {
			t.Fatal(err)
		}
		recs := csvRecords(t, render(t, tb, FormatCSV, true))
		want := [][]string{
			{"from_time", "to_time", "source", "lost", "reason"},
			{"2024-06-20 03:30:20.000000+02:00", "2024-06-20 03:30:25.000000+02:00", "proc", "3", "netlink receive buffer overflow (ENOBUFS)"},
		}
		if diff := cmp.Diff(want, recs); diff != "" {
			t.Errorf("gaps (-want +got):\n%s", diff)
		}
		// The interval [20 s, 25 s] overlaps [24 s, 30 s) but not [25.1 s, …).
		for _, tc := range []struct {
			r    Range
			want int
		}{{Range{From: t0.Add(24 * time.Second), To: t0.Add(30 * time.Second)}, 1}, {Range{From: t0.Add(25100 * time.Millisecond)}, 0}, {Range{To: t0.Add(20 * time.Second)}, 0}} {
			tb, err := q.Gaps(ctx, "host-a", tc.r)
			if err != nil {
				t.Fatal(err)
			}
			if len(tb.Rows) != tc.want {
				t.Errorf("gaps in %v: got %d rows, want %d", tc.r, len(tb.Rows), tc.want)
			}
		}
	})

	t.Run("export dns", func(t *testing.T) {
		var b bytes.Buffer
		n, err := q.Export(ctx, &b, ExportArgs{Table: "dns", Host: "alpha"})
		if err != nil {
			t.Fatal(err)
		}
		lines := jsonLines(t, b.String())
		if n != 3 || len(lines) != 3 {
			t.Fatalf("export dns: %d documents, %d lines; want 3", n, len(lines))
		}
		for k, want := range map[string]any{"table": "dns", "event": "response", "qname": "beta.example.", "client_addr": "10.0.0.1",
			"pid": 200.0, "answer_addrs": ",0A000002,", "rcode": 0.0} {
			if !cmp.Equal(lines[1][k], want) {
				t.Errorf("export dns doc %s: got %#v, want %#v", k, lines[1][k], want)
			}
		}
	})

	t.Run("export", func(t *testing.T) {
		var b bytes.Buffer
		n, err := q.Export(ctx, &b, ExportArgs{Table: "proc", Host: "alpha", Bulk: true})
		if err != nil {
			t.Fatal(err)
		}
		lines := jsonLines(t, b.String())
		if int64(len(lines)) != 2*n || n != 13 {
			t.Fatalf("export: %d documents, %d lines; want 13 documents with an action line each", n, len(lines))
		}
		action, doc := lines[0], lines[1]
		if diff := cmp.Diff(map[string]any{"index": map[string]any{"_index": "pofr-proc", "_id": "host-a:1:proc:0"}}, action); diff != "" {
			t.Errorf("bulk action (-want +got):\n%s", diff)
		}
		for k, want := range map[string]any{"@timestamp": "2024-06-20T01:30:00Z", "table": "proc", "host_id": "host-a",
			"event": "snapshot", "pid": 1.0, "argv": []any{"/sbin/init"}, "segment_seq": 1.0, "tz_offset": 7200.0} {
			if !cmp.Equal(doc[k], want) {
				t.Errorf("export doc %s: got %#v, want %#v", k, doc[k], want)
			}
		}
		if _, ok := doc["segment_id"]; ok {
			t.Errorf("export doc has segment_id: %v", doc)
		}
		var hostile map[string]any
		for _, l := range lines {
			if l["exe"] == hostileExe && l["event"] == "exec" {
				hostile = l
			}
		}
		if hostile == nil || !cmp.Equal(hostile["argv"], []any{"evil", "\x1b[2Jclear", "line1\nline2", "tab\there", map[string]any{"b64": "//4="}}) {
			t.Errorf("hostile exec not exported exactly: %v", hostile)
		}
		b.Reset()
		// Where 10.0.0.2 is, as a loader with --geoip would have stored it.
		if _, err := d.db.ExecContext(ctx, `INSERT INTO addr_info (addr, country, city, asn, ptr, edition, resolved_at)
			VALUES (X'0A000002', 'RU', 'Moscow', 64500, 'beta.example', 'Test-City 2024-06-01', NOW(6))`); err != nil {
			t.Fatal(err)
		}
		n, err = q.Export(ctx, &b, ExportArgs{Table: "sock", Range: Range{From: t0.Add(3 * time.Second), To: t0.Add(40 * time.Second)}})
		if err != nil {
			t.Fatal(err)
		}
		docs := jsonLines(t, b.String())
		if n != 2 || len(docs) != 2 || docs[0]["remote_addr"] == nil {
			t.Errorf("export sock [3 s, 40 s): got %d docs %v, want the two closes at 3 s", n, docs)
		}
		var geo []string
		for _, d := range docs {
			geo = append(geo, fmt.Sprint(d["remote_addr"], " ", d["remote_country"], " ", d["remote_city"], " ", d["remote_asn"], " ", d["remote_ptr"]))
		}
		slices.Sort(geo) // the two closes share their ts; the hosts load in either order
		if diff := cmp.Diff([]string{"10.0.0.1 <nil> <nil> <nil> <nil>", "10.0.0.2 RU Moscow 64500 beta.example"}, geo); diff != "" {
			t.Errorf("export sock addr_info (-want +got):\n%s", diff)
		}
		b.Reset()
		n, err = q.Export(ctx, &b, ExportArgs{Table: "exe", Host: "alpha", Bulk: true})
		if err != nil {
			t.Fatal(err)
		}
		docs = jsonLines(t, b.String())
		if n != 2 || len(docs) != 4 || docs[1]["sha256"] != hex.EncodeToString(shaCurl[:]) || docs[1]["path"] != "/usr/bin/curl" ||
			docs[3]["path"] != hostileExe || docs[1]["@timestamp"] != "2024-06-20T01:30:01.002Z" {
			t.Errorf("export exe: got %d docs %v, want curl's and the hostile program's rows", n, docs)
		}
		b.Reset()
		n, err = q.Export(ctx, &b, ExportArgs{Table: "login", Host: "alpha"})
		if err != nil {
			t.Fatal(err)
		}
		docs = jsonLines(t, b.String())
		if n != 3 || len(docs) != 3 || docs[0]["user"] != "root" || docs[2]["kind"] != "login" || docs[0]["@timestamp"] != "2024-06-20T01:30:00.5Z" {
			t.Errorf("export login: got %d docs %v", n, docs)
		}
	})
}

func jsonNum(v any) string {
	if f, ok := v.(float64); ok {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return "?"
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
