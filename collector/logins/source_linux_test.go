package logins

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

func appendRecords(t *testing.T, path string, rs ...Record) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b []byte
	for i := range rs {
		b = rs[i].Append(b)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func waitRows(t *testing.T, sink *event.MemSink, n int) []event.Login {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(sink.Logins()) < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	got := sink.Logins()
	if len(got) < n {
		t.Fatalf("%d login rows after 10 s, want %d: %+v", len(got), n, got)
	}
	return got
}

// TestFollow: records already in the file are skipped, appended ones are
// read (a half-written one once complete), a rotated file is read to its
// end and then the new one from its start, and a truncation is a gap row.
func TestFollow(t *testing.T) {
	dir := t.TempDir()
	wtmp, btmp := filepath.Join(dir, "wtmp"), filepath.Join(dir, "btmp")
	old := sampleRecord()
	old.User = []byte("history")
	appendRecords(t, wtmp, old)
	sink := &event.MemSink{}
	s, err := New(Options{Logins: sink, Gaps: sink, Wtmp: wtmp, Btmp: btmp, Poll: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	stop := testutil.Go(t, "Source.Run", s.Run)
	defer stop()
	time.Sleep(100 * time.Millisecond) // the source has opened the files

	in := sampleRecord()
	b := in.Append(nil)
	f, err := os.OpenFile(wtmp, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(b[:100]) // half a record: nothing yet
	time.Sleep(100 * time.Millisecond)
	f.Write(b[100:])
	f.Close()
	got := waitRows(t, sink, 1)
	if got[0].Kind != event.LoginLogin || string(got[0].User) != "alice" || got[0].TS != 1718847000_123456000 ||
		!bytes.Equal(got[0].RemoteAddr, []byte{192, 0, 2, 7}) || got[0].File != "wtmp" || string(got[0].TTY) != "pts/3" {
		t.Fatalf("row %+v", got[0])
	}

	bad := Record{Type: utLoginProcess, PID: 9, Line: []byte("ssh:notty"), User: []byte("r\x00ot"), Host: []byte("198.51.100.9"),
		Sec: 1718847001, Addr: [16]byte{198, 51, 100, 9}}
	appendRecords(t, btmp, bad)
	got = waitRows(t, sink, 2)
	if got[1].Kind != event.LoginFailed || string(got[1].User) != "r" || got[1].File != "btmp" {
		t.Fatalf("btmp row %+v", got[1])
	}

	// Rotation: one more record into the old file, then a new file.
	out := sampleRecord()
	out.Type, out.User = utDeadProcess, nil
	appendRecords(t, wtmp, out)
	if err := os.Rename(wtmp, wtmp+".1"); err != nil {
		t.Fatal(err)
	}
	next := sampleRecord()
	next.User = []byte("bob")
	appendRecords(t, wtmp, next)
	got = waitRows(t, sink, 4)
	if got[2].Kind != event.LoginLogout || string(got[3].User) != "bob" {
		t.Fatalf("after rotation: %+v", got[2:])
	}

	// Truncation below what was read: a gap row, then the file from 0.
	if err := os.Truncate(wtmp, 0); err != nil {
		t.Fatal(err)
	}
	last := sampleRecord()
	last.User = []byte("carol")
	appendRecords(t, wtmp, last)
	got = waitRows(t, sink, 5)
	if string(got[4].User) != "carol" {
		t.Fatalf("after truncation: %+v", got[4])
	}
	stop()
	st := s.Stats()
	if st.Rotations != 1 || st.Records != 5 || st.Truncated != 1 {
		t.Errorf("stats %+v, want 1 rotation, 1 truncation, 5 records", st)
	}
	if gaps := sink.Gaps(); len(gaps) != 1 || gaps[0].Source != event.SourceLogin {
		t.Errorf("gaps %+v, want one login gap for the truncation", gaps)
	}
	for _, r := range got {
		if string(r.User) == "history" {
			t.Errorf("a record older than the start was sent: %+v", r)
		}
	}
}

// TestPrivFailedSSHLogin: a login attempt for an unknown user against a
// private sshd is a failed login row from btmp with the client's address.
func TestPrivFailedSSHLogin(t *testing.T) {
	testutil.RequireRoot(t)
	signer := testutil.NewSigner(t)
	// sshd appends to btmp but never creates it (a fresh system has one
	// from its packages).
	if _, err := os.Stat("/var/log/btmp"); os.IsNotExist(err) {
		if err := os.WriteFile("/var/log/btmp", nil, 0o660); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove("/var/log/btmp") })
	}
	srv := testutil.StartSSHD(t, testutil.SSHDConfig{AuthorizedKeys: []ssh.PublicKey{signer.PublicKey()}})
	sink := &event.MemSink{}
	s, err := New(Options{Logins: sink, Gaps: sink, Wtmp: "-"})
	if err != nil {
		t.Fatal(err)
	}
	stop := testutil.Go(t, "Source.Run", s.Run)
	time.Sleep(100 * time.Millisecond)

	user := fmt.Sprintf("pofr-nouser-%d", time.Now().UnixNano()%1e6)
	cfg := &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.Password("wrong")},
		HostKeyCallback: ssh.FixedHostKey(srv.HostKey), Timeout: 5 * time.Second}
	if c, err := ssh.Dial("tcp", srv.Addr, cfg); err == nil {
		c.Close()
		t.Fatal("login as an unknown user succeeded")
	}
	var row *event.Login
	deadline := time.Now().Add(10 * time.Second)
	for row == nil && time.Now().Before(deadline) {
		for _, r := range sink.Logins() {
			if string(r.User) == user {
				row = &r
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if row == nil {
		t.Fatalf("no btmp row for %s within 10 s; stats %+v; sshd log:\n%s", user, s.Stats(), srv.Log())
	}
	if row.Kind != event.LoginFailed || row.File != "btmp" || !bytes.Equal(row.RemoteAddr, []byte{127, 0, 0, 1}) ||
		string(row.RemoteHost) != "127.0.0.1" || time.Since(time.Unix(0, row.TS)) > time.Minute {
		t.Errorf("failed login row %+v, want kind failed from btmp, address 127.0.0.1, recent", row)
	}
}
