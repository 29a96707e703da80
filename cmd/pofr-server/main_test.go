package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pofr/pofr/internal/cli/clitest"
	"github.com/pofr/pofr/internal/registry"
	"github.com/pofr/pofr/internal/servertest"
	"github.com/pofr/pofr/internal/testutil"
	"github.com/pofr/pofr/query"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// runApp runs a fresh pofr-server command tree in the test's process.
func runApp(t testing.TB, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return clitest.Run(newApp, args...)
}

// TestHelp: --help lists every command of the tree, and each command's
// --help shows its synopsis, its summary and its exit codes.
func TestHelp(t *testing.T) {
	seen := clitest.Help(t, newApp)
	if n := len(newApp().Commands); n < 20 {
		t.Fatalf("the tree has %d commands, want every pofr-server command", n)
	}
	for _, name := range []string{"serve", "load", "verify", "retention", "query hosts", "query conns", "schema apply", "registrations add", "token create", "ui"} {
		if !seen[name] {
			t.Errorf("the tree lacks %q", name)
		}
	}
	// A group lists its members.
	if code, out, _ := runApp(t, "query"); code != 0 || !strings.Contains(out, "query timeline") {
		t.Errorf("query: exit %d, output:\n%s", code, out)
	}
}

// TestUsageErrors: bad flags, arguments and combinations exit 2 with a
// message that names the problem, before touching any state or database.
func TestUsageErrors(t *testing.T) {
	dsn := filepath.Join(t.TempDir(), "dsn")
	// Never reached: every case fails before it connects.
	if err := os.WriteFile(dsn, []byte("nobody@unix(/nonexistent/mysqld.sock)/pofr\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	clitest.UsageErrors(t, newApp, state, [][2]string{
		{"nosuch", "unknown command"},
		{"query nosuch", "unknown command"},
		{"--log-level loud load", "--log-level"},
		{"load extra --dsn-file " + dsn, "unexpected arguments"},
		{"load --encoding rot13 --dsn-file " + dsn, "--encoding"},
		{"load --max-memory lots --dsn-file " + dsn, "--max-memory"},
		{"load --workers many", "invalid value"},
		{"query hosts --csv --json --dsn-file " + dsn, "exclusive"},
		{"query tree --dsn-file " + dsn, "--host is required"},
		{"query timeline --host h --dsn-file " + dsn, "give --since or --from"},
		{"query timeline --host h --since forever --dsn-file " + dsn, "forever"},
		{"query proc --host h --dsn-file " + dsn, "PID"},
		{"query proc --host h --dsn-file " + dsn + " 12x", "12x"},
		// Flags may follow the arguments, as the usage lines write them.
		{"query proc --host h 12x --dsn-file " + dsn, "12x"},
		{"query touched /usr/ /etc/ --exe httpd --dsn-file " + dsn, "want one PATH"},
		{"query ran --dsn-file " + dsn, "give --user, --exe, --argv-like, --sha256 or --container"},
		{"query touched --dsn-file " + dsn, "want one PATH"},
		{"query conns --port http --dsn-file " + dsn, "--port"},
		{"query conns --listening --all --dsn-file " + dsn, "exclusive"},
		{"query conns --country VN --dsn-file " + dsn, "--geoip"},
		{"deregister --state-dir " + state, "want one host id"},
		{"deregister --purge-rows --state-dir " + state + " h", "--purge-rows needs --dsn-file"},
		{"deregister --batch 0 --state-dir " + state + " h", "--batch"},
		{"token create --ttl -1h --state-dir " + state, "--ttl must be positive"},
		{"registrations add --state-dir " + state, "--host-id, --ssh-key and --signing-key are required"},
		{"registrations approve --state-dir " + state, "want one request id"},
	})
}

// TestPrintSQL: --print-sql prints the query's SQL file and needs no
// database.
func TestPrintSQL(t *testing.T) {
	for _, name := range []string{"hosts", "tree", "timeline", "conns", "peers", "gaps"} {
		want, err := query.SQL(name)
		if err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runApp(t, "query", name, "--print-sql")
		if code != 0 || out != want {
			t.Errorf("query %s --print-sql: exit %d, stderr %q, %d bytes of output, want the %d of its SQL file", name, code, errOut, len(out), len(want))
		}
	}
	for _, table := range query.ExportTables {
		want, err := query.SQL("export_" + table)
		if err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runApp(t, "export", "--table", table, "--print-sql")
		if code != 0 || out != want || !strings.Contains(out, "@segment") {
			t.Errorf("export --table %s --print-sql: exit %d, stderr %q, output %q, want %q", table, code, errOut, out, want)
		}
	}
}

// keyLine returns a fresh ssh-ed25519 authorized_keys line.
func keyLine(t *testing.T, comment string) string { l, _ := servertest.KeyLine(t, comment); return l }

// TestRegistryCommands: a host added by hand is listed, refused a second
// time, revoked, and listed as revoked; all against a real state directory.
func TestRegistryCommands(t *testing.T) {
	state := t.TempDir()
	add := []string{"registrations", "add", "--state-dir", state, "--host-id", "web-01", "--hostname", "web01.example.org",
		"--ssh-key", keyLine(t, "upload"), "--signing-key", keyLine(t, "signing")}
	if code, out, errOut := runApp(t, add...); code != 0 || !strings.Contains(out, "added host web-01") {
		t.Fatalf("registrations add: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, _, errOut := runApp(t, add...); code != 1 || !strings.Contains(errOut, "web-01") {
		t.Errorf("registrations add of a registered id: exit %d, stderr %q; want 1", code, errOut)
	}
	hosts := func() string {
		t.Helper()
		code, out, errOut := runApp(t, "registrations", "hosts", "--state-dir", state)
		if code != 0 {
			t.Fatalf("registrations hosts: exit %d, stderr %q", code, errOut)
		}
		return out
	}
	if out := hosts(); !strings.Contains(out, "web-01") || !strings.Contains(out, string(registry.StatusActive)) || !strings.Contains(out, "web01.example.org") {
		t.Errorf("registrations hosts after add:\n%s", out)
	}
	if code, out, errOut := runApp(t, "deregister", "--state-dir", state, "web-01"); code != 0 || !strings.Contains(out, "revoked web-01") {
		t.Fatalf("deregister: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if out := hosts(); !strings.Contains(out, string(registry.StatusRevoked)) {
		t.Errorf("registrations hosts after deregister:\n%s", out)
	}
	if code, _, _ := runApp(t, "deregister", "--state-dir", state, "nosuch"); code != 1 {
		t.Errorf("deregister of an unknown host: exit %d, want 1", code)
	}
	code, out, _ := runApp(t, "token", "create", "--state-dir", state)
	if code != 0 || len(strings.TrimSpace(out)) < 20 || strings.Count(out, "\n") != 1 {
		t.Errorf("token create: exit %d, output %q; want one token line", code, out)
	}
}

// newDSNFile starts (or reuses) the private MariaDB, creates a database and
// returns a file with its DSN, for --dsn-file.
func newDSNFile(t *testing.T) string {
	t.Helper()
	m := testutil.StartMariaDB(t)
	dsn, _ := m.NewDatabase(t)
	return writeLine(t, t.TempDir(), "dsn", dsn)
}

// writeLine writes line and a newline into a new file name in dir, mode 0600
// (a DSN or password file), and returns its path.
func writeLine(t testing.TB, dir, name, line string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDatabaseCommands runs schema apply, load, query and verify against a
// private MariaDB: the schema is applied (twice: idempotent), a pass over an
// empty inbox loads nothing, the registered host is then known to the
// queries, and an unknown host is an error (exit 1), not a usage error.
func TestDatabaseCommands(t *testing.T) {
	dsnFile := newDSNFile(t)
	dir := filepath.Dir(dsnFile)
	state := t.TempDir()
	must := func(args ...string) string {
		t.Helper()
		code, out, errOut := runApp(t, args...)
		if code != 0 {
			t.Fatalf("%s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}
	must("schema", "apply", "--dsn-file", dsnFile)
	must("schema", "apply", "--dsn-file", dsnFile)
	must("registrations", "add", "--state-dir", state, "--host-id", "db-01", "--hostname", "db01.example.org",
		"--ssh-key", keyLine(t, "upload"), "--signing-key", keyLine(t, "signing"))
	if out := must("load", "--dsn-file", dsnFile, "--state-dir", state, "--no-progress"); !strings.HasPrefix(out, "segments 0: loaded 0") {
		t.Errorf("load of an empty inbox: %q", out)
	}
	out := must("query", "hosts", "--json", "--dsn-file", dsnFile)
	var row map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &row); err != nil || row["host_id"] != "db-01" {
		t.Errorf("query hosts --json: %q (%v), want one row of host db-01", out, err)
	}
	must("verify", "--dsn-file", dsnFile, "--state-dir", state)

	// schema users creates missing password files and the accounts' DSN
	// files beside them; the default DSN file comes from POFR_DSN_FILE.
	etc := filepath.Join(dir, "etc")
	if err := os.Mkdir(etc, 0o700); err != nil {
		t.Fatal(err)
	}
	users := []string{"schema", "users", "--dsn-file", dsnFile,
		"--loader-password-file", filepath.Join(etc, "loader.pw"), "--reader-password-file", filepath.Join(etc, "reader.pw")}
	must(users...)
	files := map[string]string{}
	for _, f := range []string{"loader.pw", "reader.pw", "loader.dsn", "reader.dsn"} {
		fi, err := os.Stat(filepath.Join(etc, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("after schema users: %s: %v %v, want mode 0600", f, fi, err)
		}
		b, _ := os.ReadFile(filepath.Join(etc, f))
		files[f] = string(b)
	}
	if pw := strings.TrimSpace(files["loader.pw"]); len(pw) != 32 || !strings.Contains(files["loader.dsn"], "pofr_loader:"+pw+"@") {
		t.Errorf("loader.pw %q, loader.dsn %q: want a 32-character password inside the DSN", files["loader.pw"], files["loader.dsn"])
	}
	must(users...) // again: the passwords and DSN files are kept
	for f, was := range files {
		if b, _ := os.ReadFile(filepath.Join(etc, f)); string(b) != was {
			t.Errorf("second schema users changed %s", f)
		}
	}
	must("load", "--dsn-file", filepath.Join(etc, "loader.dsn"), "--state-dir", state, "--no-progress")
	t.Setenv("POFR_DSN_FILE", filepath.Join(etc, "reader.dsn"))
	if out := must("query", "hosts", "--csv"); !strings.Contains(out, "db-01") {
		t.Errorf("query hosts as the reader, DSN from POFR_DSN_FILE: %q", out)
	}
	t.Setenv("POFR_DSN_FILE", filepath.Join(dir, "missing"))
	if code, _, errOut := runApp(t, "query", "hosts"); code != 1 || !strings.Contains(errOut, filepath.Join(dir, "missing")) {
		t.Errorf("query with POFR_DSN_FILE naming a missing file: exit %d, stderr %q; want 1 naming it", code, errOut)
	}
	if code, _, errOut := runApp(t, "query", "tree", "--host", "nosuch", "--dsn-file", dsnFile); code != 1 || !strings.Contains(errOut, "nosuch") {
		t.Errorf("query tree of an unknown host: exit %d, stderr %q; want 1 naming the host", code, errOut)
	}
	if code, _, errOut := runApp(t, "query", "hosts", "--dsn-file", filepath.Join(dir, "missing")); code != 1 || !strings.Contains(errOut, "DSN") {
		t.Errorf("query with a missing DSN file: exit %d, stderr %q; want 1", code, errOut)
	}
}

// TestEveryCommandInTheTree: pofr-server lists its commands in newApp; a
// command added from init would compile and never run.
func TestEveryCommandInTheTree(t *testing.T) { clitest.NoInit(t) }

// TestLoadMetricsNeedWatch: one load pass refuses --metrics-listen, which
// only a long-running load can serve.
func TestLoadMetricsNeedWatch(t *testing.T) {
	code, _, stderr := runApp(t, "load", "--dsn-file", filepath.Join(t.TempDir(), "none"), "--state-dir", t.TempDir(), "--metrics-listen", "127.0.0.1:0")
	if code != 2 || !strings.Contains(stderr, "--metrics-listen needs --watch") {
		t.Errorf("load --metrics-listen without --watch: exit %d, stderr %q; want 2 and the reason", code, stderr)
	}
}

// TestExportFollowUsage: --follow needs a cursor file, and the follow flags
// need --follow; both are usage errors before any database is opened.
func TestExportFollowUsage(t *testing.T) {
	for _, args := range [][]string{
		{"export", "--follow", "--dsn-file", "/nonexistent"},
		{"export", "--output", "x.jsonl", "--dsn-file", "/nonexistent"},
		{"export", "--cursor-file", "c", "--dsn-file", "/nonexistent"},
		{"export", "--follow", "--cursor-file", "c", "--rotate-bytes", "-1", "--dsn-file", "/nonexistent"},
		{"export", "--follow", "--cursor-file", "c", "--interval", "0s", "--dsn-file", "/nonexistent"},
		{"export", "--es-url", "http://localhost:9200", "--dsn-file", "/nonexistent"},
		{"export", "--follow", "--cursor-file", "c", "--es-url", "localhost:9200", "--dsn-file", "/nonexistent"},
		{"export", "--follow", "--cursor-file", "c", "--es-url", "http://h:9200", "--syslog", "udp:h:514", "--dsn-file", "/nonexistent"},
		{"export", "--follow", "--cursor-file", "c", "--syslog", "h:514", "--dsn-file", "/nonexistent"},
		{"export", "--follow", "--cursor-file", "c", "--syslog", "tcp:h:514", "--syslog-facility", "nope", "--dsn-file", "/nonexistent"},
		{"export", "--follow", "--cursor-file", "c", "--syslog", "tcp:h:514", "--batch-docs", "0", "--dsn-file", "/nonexistent"},
		{"export", "--follow", "--cursor-file", "c", "--es-auth-file", "a", "--dsn-file", "/nonexistent"},
		{"export", "--follow", "--cursor-file", "c", "--syslog", "tcp:h:514", "--es-ca-file", "ca.pem", "--dsn-file", "/nonexistent"},
		{"export", "--follow", "--cursor-file", "c", "--es-url", "http://h:9200", "--es-ca-file", "ca.pem", "--dsn-file", "/nonexistent"},
	} {
		if code, _, stderr := runApp(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, stderr)
		}
	}
}

// TestExportESCredentials: credentials in --es-url are a usage error that
// points to --es-auth-file and does not echo them; an auth file others may
// read, an empty or malformed one, and a CA file without a certificate are
// errors (exit 1) before the database is opened, quoting no secret.
func TestExportESCredentials(t *testing.T) {
	dir := t.TempDir()
	follow := []string{"export", "--follow", "--cursor-file", filepath.Join(dir, "c"), "--dsn-file", filepath.Join(dir, "no.dsn")}
	code, _, stderr := runApp(t, append(follow, "--es-url", "https://pofr:SECRET@es.example:9200")...)
	if code != 2 || !strings.Contains(stderr, "--es-auth-file") || strings.Contains(stderr, "SECRET") {
		t.Errorf("--es-url with a password: exit %d, stderr %q; want 2, pointing to --es-auth-file, not echoing it", code, stderr)
	}
	file := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caPEM := "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIBATAKBggqhkjOPQQDAjAXMRUwEwYDVQQDEwxwb2ZyIHRl\n-----END CERTIFICATE-----\n"
	for _, c := range []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"readable by others", []string{"--es-auth-file", file("open", "pofr:SECRET\n", 0o644)}, "chmod 600"},
		{"readable by the group", []string{"--es-auth-file", file("group", "ApiKey SECRET\n", 0o640)}, "chmod 600"},
		{"missing", []string{"--es-auth-file", filepath.Join(dir, "missing")}, "--es-auth-file"},
		{"empty", []string{"--es-auth-file", file("empty", "\n", 0o600)}, "empty"},
		{"malformed", []string{"--es-auth-file", file("bad", "Token SECRET\n", 0o600)}, "want ApiKey"},
		{"not a CA", []string{"--es-ca-file", file("ca", "SECRET\n", 0o644)}, "no PEM certificate"},
		{"a broken CA", []string{"--es-ca-file", file("broken", caPEM, 0o644)}, "no PEM certificate"},
	} {
		code, _, stderr := runApp(t, append(follow, append([]string{"--es-url", "https://es.example:9200"}, c.args...)...)...)
		if code != 1 || !strings.Contains(stderr, c.want) || strings.Contains(stderr, "SECRET") {
			t.Errorf("%s: exit %d, stderr %q; want 1 and %q, no secret", c.name, code, stderr, c.want)
		}
	}
	// A good auth file and CA (a self-signed certificate, only parsed) get
	// as far as the database.
	caFile := filepath.Join("testdata", "ca.pem")
	code, _, stderr = runApp(t, append(follow, "--es-url", "https://es.example:9200",
		"--es-auth-file", file("good", "ApiKey Z29vZDprZXk=\n", 0o600), "--es-ca-file", caFile)...)
	if code != 1 || !strings.Contains(stderr, "DSN") {
		t.Errorf("good credentials: exit %d, stderr %q; want 1 for the missing DSN file", code, stderr)
	}
}
