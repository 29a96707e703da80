package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pofr/pofr/internal/cli"
	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/spool"
)

// runCmd parses args with c's flags and runs it, as the command tree would.
func runCmd(t *testing.T, c *cli.Command, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if c.Flags != nil {
		c.Flags(fs)
	}
	if err := fs.Parse(args); err != nil {
		t.Fatalf("%s: flags %q: %v", c.Name, args, err)
	}
	var out, errOut bytes.Buffer
	env := &cli.Env{Stdout: &out, Stderr: &errOut, Log: slog.New(slog.DiscardHandler), Prog: prog}
	err = c.Run(context.Background(), env, fs.Args())
	return out.String(), errOut.String(), err
}

func exitCode(err error) int {
	var ee *cli.ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	if err != nil {
		return 1
	}
	return 0
}

var hostileArgv = []byte("sh\x00-c\x00echo \"hi\"\t\x1b[31m\u202e\x00")

// testSpool writes two segments with a fresh key and returns the spool
// directory and a file holding the public key line.
func testSpool(t *testing.T) (dir, pubFile string) {
	t.Helper()
	root := t.TempDir()
	key, err := spool.GenerateKey(filepath.Join(root, "signing_key"))
	if err != nil {
		t.Fatal(err)
	}
	line, err := spool.PublicKeyLine(key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	pubFile = filepath.Join(root, "signing_key.pub")
	if err := os.WriteFile(pubFile, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	dir = filepath.Join(root, "spool")
	now := time.Date(2025, 11, 25, 19, 0, 0, 0, time.UTC)
	w, err := spool.Open(dir, spool.Options{HostID: "h-0001", BootID: "boot", Key: key, Now: func() time.Time { return now }, MaxSegmentAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	w.AppendProc(&event.Proc{TS: now.UnixNano(), Event: event.ProcExec, PID: 7, Argv: hostileArgv, Exe: []byte("/bin/\xff\xfe"),
		UID: event.NoID, EUID: 0, GID: 0, EGID: 0, AUID: event.NoID, SessionID: event.NoID})
	if err := w.Seal(); err != nil {
		t.Fatal(err)
	}
	w.AppendFile(&event.File{TS: now.UnixNano() + 1, LastTS: now.UnixNano() + 2, Count: 2, PID: 7, Op: event.FileWrite, Path: []byte("/tmp/a b")})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, pubFile
}

func TestSpoolLs(t *testing.T) {
	dir, _ := testSpool(t)
	out, _, err := runCmd(t, spoolLsCommand(), "--dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("got %d lines, want header, 2 segments, total:\n%s", len(lines), out)
	}
	if got, want := lines[3], "2 segments, "; !strings.HasPrefix(got, want) {
		t.Errorf("last line = %q, want prefix %q", got, want)
	}
	for i, want := range []string{"SEQ", "1 ", "2 "} {
		if !strings.HasPrefix(lines[i], want) {
			t.Errorf("line %d = %q, want prefix %q", i, lines[i], want)
		}
	}
	if f := strings.Fields(lines[1]); f[len(f)-1] != "start" {
		t.Errorf("segment 1 chain = %q, want start", f[len(f)-1])
	}
	if f := strings.Fields(lines[2]); f[len(f)-1] != "ok" || f[2] != "1" || f[4] != "2025-11-25T19:00:00.000Z" {
		t.Errorf("segment 2 line = %q, want 1 row from 2025-11-25T19:00:00.000Z, chain ok", lines[2])
	}
}

func TestSpoolVerify(t *testing.T) {
	dir, pub := testSpool(t)
	out, _, err := runCmd(t, spoolVerifyCommand(), "--dir", dir, "--pubkey", pub)
	if err != nil {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	if got := strings.Count(out, "ok    "); got != 2 {
		t.Errorf("got %d ok lines, want 2:\n%s", got, out)
	}
	if !strings.Contains(out, "signature ok, chain ok") {
		t.Errorf("second segment not reported as signed and chained:\n%s", out)
	}

	// Tamper with the first segment: exit 3 and a FAIL line naming it.
	infos, _ := spool.List(dir)
	b, _ := os.ReadFile(infos[0].Path)
	b[len(b)/2] ^= 1
	os.WriteFile(infos[0].Path, b, 0o600)
	out, _, err = runCmd(t, spoolVerifyCommand(), "--pubkey", pub, infos[0].Path, infos[1].Path)
	if got, want := exitCode(err), exitVerifyFailed; got != want {
		t.Errorf("exit code = %d, want %d (err %v)", got, want, err)
	}
	if !strings.HasPrefix(out, "FAIL  "+infos[0].Name+": spool: corrupt segment") {
		t.Errorf("output does not start with the FAIL line of %s:\n%s", infos[0].Name, out)
	}

	// A renamed file fails although its bytes are intact.
	renamed := filepath.Join(t.TempDir(), "h-0001_00000000000000000009_0000000000000000.pofr")
	b2, _ := os.ReadFile(infos[1].Path)
	os.WriteFile(renamed, b2, 0o600)
	out, _, err = runCmd(t, spoolVerifyCommand(), "--pubkey", pub, renamed)
	if exitCode(err) != exitVerifyFailed || !strings.Contains(out, "does not match its content") {
		t.Errorf("renamed segment: exit %d, output %q", exitCode(err), out)
	}
}

func TestSpoolCat(t *testing.T) {
	dir, pub := testSpool(t)
	infos, _ := spool.List(dir)
	out, _, err := runCmd(t, spoolCatCommand(), "--pubkey", pub, "--table", "proc", infos[0].Path, infos[1].Path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 {
		t.Fatalf("got %d proc lines, want 1:\n%s", len(lines), out)
	}
	var row map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &row); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, lines[0])
	}
	if got, want := row["argv"], string(hostileArgv); got != want {
		t.Errorf("argv = %q, want %q", got, want)
	}
	exe, _ := row["exe"].(map[string]any)
	if got, _ := base64.StdEncoding.DecodeString(exe["b64"].(string)); string(got) != "/bin/\xff\xfe" {
		t.Errorf("exe = %v, want base64 of /bin/\\xff\\xfe", row["exe"])
	}
	if row["uid"] != nil || row["euid"] != float64(0) || row["table"] != "proc" {
		t.Errorf("uid %v euid %v table %v, want null, 0, proc", row["uid"], row["euid"], row["table"])
	}
	if strings.ContainsAny(out, "\x1b\x00\t") || strings.Contains(out, "\u202e") {
		t.Errorf("raw control or format characters in the output: %q", out)
	}

	out, _, err = runCmd(t, spoolCatCommand(), infos[1].Path)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"table":"file","ts":1764097200000000001,"last_ts":1764097200000000002,"count":2,"pid":7,"proc_start":null,"uid":0,"op":"write","path":"/tmp/a b","new_path":null,"inode":null,"dev":null,"flags":0}` + "\n"
	if !strings.HasPrefix(out, want) {
		t.Errorf("file row:\n%s\nwant:\n%s", out, want)
	}

	if _, _, err := runCmd(t, spoolCatCommand(), "--table", "nope", infos[0].Path); exitCode(err) != 2 {
		t.Errorf("--table nope: exit %d, want 2", exitCode(err))
	}
}

func TestAppendBytes(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", `""`},
		{"/usr/bin/ls", `"/usr/bin/ls"`},
		{"a\x00b\x00", `"a\u0000b\u0000"`},
		{"q\"b\\", `"q\"b\\"`},
		{"t\tn\n", `"t\tn\n"`},
		{"\x1b[31m\x7f", `"\u001b[31m\u007f"`},
		{"\u0085\u009b", `"\u0085\u009b"`},
		{"\u202eevil\u200b", `"\u202eevil\u200b"`},
		{"\u2028\u2029", `"\u2028\u2029"`},
		{"é日本\U0001F600", `"é日本` + "\U0001F600" + `"`},
		{"\U000E0001", `"\udb40\udc01"`},
		{"\xff", `{"b64":"/w=="}`},
		{"ok\xc0\x80", `{"b64":"b2vAgA=="}`},
	}
	for _, c := range cases {
		got := string(appendBytes(nil, []byte(c.in)))
		if got != c.want {
			t.Errorf("appendBytes(%q) = %s, want %s", c.in, got, c.want)
			continue
		}
		var back any
		if err := json.Unmarshal([]byte(got), &back); err != nil {
			t.Errorf("appendBytes(%q) = %s: not JSON: %v", c.in, got, err)
			continue
		}
		if s, ok := back.(string); ok && s != c.in {
			t.Errorf("appendBytes(%q) parses back as %q", c.in, s)
		}
	}
}
