package alert

import (
	"bufio"
	"database/sql"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pofr/pofr/internal/servertest"
	"github.com/pofr/pofr/internal/testutil"
	"github.com/pofr/pofr/loader"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// receivers are the local endpoints of every sink kind; each records the
// alerts it received.
type receivers struct {
	mu       sync.Mutex
	web      []Alert
	webCalls int
	udp, tcp []string // raw syslog messages
	unixgram []string
	execFile string
	httpSrv  *httptest.Server
	udpAddr  string
	tcpAddr  string
	unixPath string
}

func startReceivers(t *testing.T) *receivers {
	t.Helper()
	r := &receivers{execFile: filepath.Join(t.TempDir(), "exec.jsonl")}
	// The webhook fails its first call, so the first alert is retried.
	r.httpSrv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.webCalls++
		if r.webCalls == 1 {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		var a Alert
		if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" || json.NewDecoder(req.Body).Decode(&a) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		r.web = append(r.web, a)
	}))
	t.Cleanup(r.httpSrv.Close)

	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.udpAddr = pc.LocalAddr().String()
	r.collect(t, pc, &r.udp)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	r.tcpAddr = ln.Addr().String()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					// Octet counting: "LEN SP MSG".
					l, err := br.ReadString(' ')
					if err != nil {
						return
					}
					n, err := strconv.Atoi(strings.TrimSuffix(l, " "))
					if err != nil || n <= 0 || n > 64<<10 {
						return
					}
					msg := make([]byte, n)
					if _, err := io.ReadFull(br, msg); err != nil {
						return
					}
					r.mu.Lock()
					r.tcp = append(r.tcp, string(msg))
					r.mu.Unlock()
				}
			}()
		}
	}()

	r.unixPath = filepath.Join(t.TempDir(), "log.sock")
	uc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: r.unixPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	r.collect(t, uc, &r.unixgram)
	return r
}

// collect appends every datagram c receives to *into until the test ends.
func (r *receivers) collect(t *testing.T, c net.PacketConn, into *[]string) {
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			*into = append(*into, string(buf[:n]))
			r.mu.Unlock()
		}
	}()
}

func (r *receivers) config(t *testing.T) string {
	return `"sinks": [
		{"type": "webhook", "url": "` + r.httpSrv.URL + `/hook", "backoff": "10ms", "retries": 3},
		{"type": "syslog", "network": "udp", "address": "` + r.udpAddr + `", "facility": "local3"},
		{"type": "syslog", "network": "tcp", "address": "` + r.tcpAddr + `"},
		{"type": "syslog", "network": "unix", "address": "` + r.unixPath + `"},
		{"type": "exec", "command": ["/bin/sh", "-c", "cat >>` + r.execFile + `"]}
	]`
}

// execAlerts reads the alerts the exec sink appended.
func (r *receivers) execAlerts(t *testing.T) []Alert {
	t.Helper()
	b, err := os.ReadFile(r.execFile)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []Alert
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l == "" {
			continue
		}
		var a Alert
		if err := json.Unmarshal([]byte(l), &a); err != nil {
			t.Fatalf("exec stdin %q: %v", l, err)
		}
		out = append(out, a)
	}
	return out
}

func mustExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func runner(t *testing.T, db *sql.DB, cfgJSON string, now time.Time) *Runner {
	t.Helper()
	cfg, err := Parse([]byte(cfgJSON))
	if err != nil {
		t.Fatal(err)
	}
	var sinks []Sender
	for _, s := range cfg.Sinks {
		snd, err := NewSender(s)
		if err != nil {
			t.Fatal(err)
		}
		sinks = append(sinks, snd)
	}
	return &Runner{DB: db, Rules: cfg.Rules, Sinks: sinks, Now: func() time.Time { return now }}
}

const rulesJSON = `"rules": [
	{"name": "silent", "kind": "host_silent", "after": "1h"},
	{"name": "proc-gaps", "kind": "gap", "reasons": ["proc"], "severity": "notice"},
	{"name": "chain", "kind": "chain_break", "severity": "crit"},
	{"name": "quarantine", "kind": "quarantine"},
	{"name": "revoked", "kind": "revoked_host"},
	{"name": "evil-host", "kind": "sql", "query": "SELECT host_id, hostname AS alert_key FROM hosts WHERE hostname LIKE '%evil%'"}
]`

// TestAlertsFireOnce: every rule kind matches, each match reaches every
// sink once (the webhook after a retry), a second run fires nothing, two
// runners racing fire a new match once, and an alert no sink took is fired
// by the next run.
func TestAlertsFireOnce(t *testing.T) {
	db, _ := servertest.SchemaDB(t, loader.OpenDB)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	mustExec(t, db, `INSERT INTO hosts (host_id, hostname, status, last_seen) VALUES
		('h1', 'web1', 'active', ?), ('h2', 'db1', 'active', ?), ('h3', 'old', 'revoked', ?), ('h4', 'evil-box', 'active', ?)`,
		now.Add(-2*time.Hour), now.Add(-time.Minute), now.Add(-48*time.Hour), now.Add(-10*time.Minute))
	d := func(i byte) []byte { b := make([]byte, 32); b[0] = i; return b }
	mustExec(t, db, `INSERT INTO segments (segment_id, host_id, boot_id, seq, digest, chain_ok, file_name, file_bytes) VALUES
		(1, 'h2', 'b', 1, ?, 1, 'f1', 1), (2, 'h2', 'b', 3, ?, 0, 'f3', 1)`, d(1), d(2))
	mustExec(t, db, `INSERT INTO quarantine (host_id, file, class, reason) VALUES ('h2', 'x.pofr', 'bad_signature', 'signature does not verify')`)
	mustExec(t, db, `INSERT INTO gaps (segment_id, row_no, host_id, boot_id, from_ts, to_ts, source, lost, reason) VALUES
		(1, 0, 'h2', 'b', ?, ?, 'proc', 12, 'ring overrun'), (1, 1, 'h2', 'b', ?, ?, 'spool', 3, 'evicted')`,
		now.Add(-time.Hour), now.Add(-59*time.Minute), now.Add(-time.Hour), now.Add(-59*time.Minute))

	rc := startReceivers(t)
	cfg := "{" + rulesJSON + ", " + rc.config(t) + "}"
	ctx := testutil.Deadline(t, time.Minute)
	r := runner(t, db, cfg, now)
	sum, err := r.Run(ctx)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	wantKeys := map[string]string{ // rule → key
		"silent":     "h1 " + now.Add(-2*time.Hour).Format(time.RFC3339Nano),
		"proc-gaps":  "gap 1/0",
		"chain":      "segment 2",
		"quarantine": "quarantine 1",
		"revoked":    "host h3",
		"evil-host":  "evil-box",
	}
	if sum.Matches != len(wantKeys) || sum.Fired != len(wantKeys) || sum.Failed != 0 {
		t.Errorf("first run: %+v, want %d matches fired", sum, len(wantKeys))
	}
	check := func(what string, got []Alert) {
		t.Helper()
		keys := map[string]string{}
		for _, a := range got {
			if _, dup := keys[a.Rule]; dup {
				t.Errorf("%s: rule %s fired twice", what, a.Rule)
			}
			keys[a.Rule] = a.Key
		}
		for rule, key := range wantKeys {
			if keys[rule] != key {
				t.Errorf("%s: rule %s key %q, want %q", what, rule, keys[rule], key)
			}
		}
		if len(got) != len(wantKeys) {
			t.Errorf("%s: %d alerts, want %d", what, len(got), len(wantKeys))
		}
	}
	rc.mu.Lock()
	check("webhook", rc.web)
	if rc.webCalls != len(wantKeys)+1 {
		t.Errorf("webhook calls %d, want %d (one retry)", rc.webCalls, len(wantKeys)+1)
	}
	rc.mu.Unlock()
	check("exec", rc.execAlerts(t))
	// Syslog: every message is RFC 5424 with the rule as MSGID and the
	// key in structured data; facility local3 (19) over UDP, daemon (3)
	// otherwise.
	msgRE := regexp.MustCompile(`^<(\d+)>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z \S+ pofr-server \d+ (\S+) \[pofr@32473 rule="([^"]*)" kind="[^"]*" key="((?:[^"\\]|\\.)*)"(?: host="[^"]*")?\] \x{FEFF}.+$`)
	testutil.WaitFor(t, 10*time.Second, "syslog messages", func() bool {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		return len(rc.udp) == len(wantKeys) && len(rc.tcp) == len(wantKeys) && len(rc.unixgram) == len(wantKeys)
	})
	sev := map[string]int{"silent": 4, "proc-gaps": 5, "chain": 2, "quarantine": 4, "revoked": 4, "evil-host": 4}
	rc.mu.Lock()
	for name, msgs := range map[string][]string{"udp": rc.udp, "tcp": rc.tcp, "unix": rc.unixgram} {
		fac := 3
		if name == "udp" {
			fac = 19
		}
		var got []Alert
		for _, m := range msgs {
			sm := msgRE.FindStringSubmatch(strings.TrimSuffix(m, "\n"))
			if sm == nil {
				t.Errorf("syslog %s: not RFC 5424 as expected: %q", name, m)
				continue
			}
			if sm[2] != sm[3] {
				t.Errorf("syslog %s: MSGID %q, rule %q", name, sm[2], sm[3])
			}
			if pri, _ := strconv.Atoi(sm[1]); pri != fac*8+sev[sm[3]] {
				t.Errorf("syslog %s: rule %s PRI %d, want %d", name, sm[3], pri, fac*8+sev[sm[3]])
			}
			got = append(got, Alert{Rule: sm[3], Key: strings.ReplaceAll(sm[4], `\"`, `"`)})
		}
		check("syslog "+name, got)
	}
	rc.mu.Unlock()

	// Second run: nothing new.
	sum, err = r.Run(ctx)
	if err != nil || sum.Fired != 0 || sum.Matches != len(wantKeys) {
		t.Errorf("second run: %+v, %v; want the same matches, none fired", sum, err)
	}
	if n := len(rc.execAlerts(t)); n != len(wantKeys) {
		t.Errorf("exec after the second run: %d alerts, want %d", n, len(wantKeys))
	}

	// Two servers racing over a new match: it fires once.
	mustExec(t, db, `INSERT INTO quarantine (host_id, file, class, reason) VALUES ('h2', 'y.pofr', 'fork', 'another digest at seq 3')`)
	r2 := runner(t, db, cfg, now)
	var wg sync.WaitGroup
	sums := make([]Summary, 2)
	for i, rr := range []*Runner{r, r2} {
		wg.Add(1)
		go func() { defer wg.Done(); sums[i], _ = rr.Run(ctx) }()
	}
	wg.Wait()
	if sums[0].Fired+sums[1].Fired != 1 {
		t.Errorf("racing runners fired %d and %d, want 1 in all", sums[0].Fired, sums[1].Fired)
	}
	if n := len(rc.execAlerts(t)); n != len(wantKeys)+1 {
		t.Errorf("exec after the race: %d alerts, want %d", n, len(wantKeys)+1)
	}

	// No sink takes the alert: the claim is released and the next run
	// (with working sinks) fires it.
	mustExec(t, db, `UPDATE hosts SET status = 'revoked' WHERE host_id = 'h2'`)
	bad := runner(t, db, "{"+rulesJSON+`, "sinks": [{"type": "exec", "command": ["/bin/false"]}]}`, now)
	sum, err = bad.Run(ctx)
	if err == nil || sum.Failed != 1 || sum.Fired != 0 {
		t.Errorf("run with a failing sink: %+v, %v; want 1 failed and an error", sum, err)
	}
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM alerts_fired WHERE rule = 'revoked' AND match_text = 'host h2'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("claim of the undelivered alert: %d rows, %v; want 0", n, err)
	}
	sum, err = r.Run(ctx)
	if err != nil || sum.Fired != 1 {
		t.Errorf("run after the failure: %+v, %v; want 1 fired", sum, err)
	}
	last := rc.execAlerts(t)
	if a := last[len(last)-1]; a.Rule != "revoked" || a.Key != "host h2" || a.Host != "h2" || a.Severity != "warning" || !a.Time.Equal(now) {
		t.Errorf("last alert %+v", a)
	}
}

// TestParseRejects: rules files with mistakes are refused.
func TestParseRejects(t *testing.T) {
	sinks := `"sinks": [{"type": "exec", "command": ["/bin/true"]}]`
	for _, bad := range []string{
		`{"rules": [], ` + sinks + `}`,
		`{"rules": [{"name": "a", "kind": "host_silent"}], ` + sinks + `}`,
		`{"rules": [{"name": "a b", "kind": "gap"}], ` + sinks + `}`,
		`{"rules": [{"name": "a", "kind": "gap"}, {"name": "a", "kind": "gap"}], ` + sinks + `}`,
		`{"rules": [{"name": "a", "kind": "sql", "query": "DELETE FROM hosts"}], ` + sinks + `}`,
		`{"rules": [{"name": "a", "kind": "nope"}], ` + sinks + `}`,
		`{"rules": [{"name": "a", "kind": "gap", "severity": "loud"}], ` + sinks + `}`,
		`{"rules": [{"name": "a", "kind": "gap"}], "sinks": []}`,
		`{"rules": [{"name": "a", "kind": "gap"}], "sinks": [{"type": "exec", "command": ["true"]}]}`,
		`{"rules": [{"name": "a", "kind": "gap"}], "sinks": [{"type": "syslog", "network": "udp"}]}`,
		`{"rules": [{"name": "a", "kind": "gap"}], "sinks": [{"type": "webhook", "url": "ftp://x"}]}`,
		`{"rules": [{"name": "a", "kind": "gap", "extra": 1}], ` + sinks + `}`,
	} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse accepted %s", bad)
		}
	}
}

// TestExampleRules: the shipped example rules file parses, and each of its
// rules runs against the schema (the saved query is valid SQL over the
// views).
func TestExampleRules(t *testing.T) {
	cfg, err := Load(filepath.Join("..", "contrib", "pofr-server-alerts.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range cfg.Sinks {
		if _, err := NewSender(s); err != nil {
			t.Error(err)
		}
	}
	db, _ := servertest.SchemaDB(t, loader.OpenDB)
	r := &Runner{DB: db, Rules: cfg.Rules}
	sum, err := r.Run(testutil.Deadline(t, 30*time.Second))
	if err != nil || sum.Matches != 0 {
		t.Errorf("example rules on an empty database: %+v, %v", sum, err)
	}
}
