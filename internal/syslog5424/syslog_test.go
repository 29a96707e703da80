package syslog5424

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestFormat: header fields are printable ASCII without spaces, SD values
// escape ", \ and ], and the MSG is one line after a BOM.
func TestFormat(t *testing.T) {
	m := Format(Message{Facility: 19, Severity: 4, Time: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC),
		Hostname: "h ost", App: "app", MsgID: "", SDID: "x@1", SD: [][2]string{{"k", `a"b\c]d`}}, Msg: "one\ntwo"})
	want := "<156>1 2026-01-02T03:04:05.000006Z h_ost app " + strconv.Itoa(os.Getpid()) + ` - [x@1 k="a\"b\\c\]d"] ` + "\xef\xbb\xbfone two"
	if string(m) != want {
		t.Errorf("got  %q\nwant %q", m, want)
	}
}

// TestWriterRedial: a stream server that closes the connection is noticed
// before the next write, which goes over a new connection.
func TestWriterRedial(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	w := &Writer{Network: "unix", Address: path, Timeout: 5 * time.Second}
	defer w.Close()
	got := make(chan string, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b := make([]byte, 100)
			n, _ := c.Read(b)
			got <- string(b[:n])
			c.Close() // the server restarts
		}
	}()
	for i, msg := range []string{"first", "second"} {
		if err := w.Write(t.Context(), []byte(msg)); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-got:
			if m != msg+"\n" {
				t.Errorf("message %d: %q", i, m)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d not received", i)
		}
		time.Sleep(50 * time.Millisecond) // the close reaches the writer
	}
}
