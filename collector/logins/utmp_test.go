package logins

import (
	"bytes"
	"testing"
)

// A record as glibc's login(3)/sshd writes it: USER_PROCESS on pts/3 from
// 192.0.2.7 at 2024-06-20 01:30:00.123456 UTC.
func sampleRecord() Record {
	return Record{Type: utUserProcess, PID: 4242, Line: []byte("pts/3"), ID: []byte("ts/3"), User: []byte("alice"),
		Host: []byte("192.0.2.7"), Session: 0, Sec: 1718847000, Usec: 123456, Addr: [16]byte{192, 0, 2, 7}}
}

func TestParseLayout(t *testing.T) {
	r := sampleRecord()
	b := r.Append(nil)
	if len(b) != RecordSize {
		t.Fatalf("encoded %d bytes, want %d", len(b), RecordSize)
	}
	// Offsets of struct utmp (x86-64 glibc): ut_pid 4, ut_line 8, ut_id 40,
	// ut_user 44, ut_host 76, ut_session 336, ut_tv 340, ut_addr_v6 348.
	for _, c := range []struct {
		off  int
		want []byte
	}{{0, []byte{7, 0}}, {4, []byte{0x92, 0x10, 0, 0}}, {8, []byte("pts/3\x00")}, {40, []byte("ts/3")}, {44, []byte("alice\x00")},
		{76, []byte("192.0.2.7\x00")}, {340, []byte{0x18, 0x86, 0x73, 0x66}}, {344, []byte{0x40, 0xe2, 0x01, 0}}, {348, []byte{192, 0, 2, 7, 0}}} {
		if got := b[c.off : c.off+len(c.want)]; !bytes.Equal(got, c.want) {
			t.Errorf("offset %d: % x, want % x", c.off, got, c.want)
		}
	}
	got, ok := Parse(b)
	if !ok || got.Type != r.Type || got.PID != r.PID || string(got.Line) != "pts/3" || string(got.ID) != "ts/3" ||
		string(got.User) != "alice" || string(got.Host) != "192.0.2.7" || got.TimeNS() != 1718847000_123456000 ||
		!bytes.Equal(got.AddrBytes(), []byte{192, 0, 2, 7}) {
		t.Errorf("Parse = %+v, want %+v", got, r)
	}
	if _, ok := Parse(b[:RecordSize-1]); ok {
		t.Error("Parse accepted a short record")
	}
	// Full fields without NUL, bytes that are not UTF-8, an IPv6 address.
	r.User = bytes.Repeat([]byte{0xff}, 32)
	r.Line = bytes.Repeat([]byte("\t\n\\\x01"), 10)
	r.Addr = [16]byte{0x20, 1, 0xd, 0xb8, 15: 1}
	got, _ = Parse(r.Append(nil))
	if !bytes.Equal(got.User, r.User) || !bytes.Equal(got.Line, r.Line[:32]) || len(got.AddrBytes()) != 16 {
		t.Errorf("full fields: %+v", got)
	}
}

// FuzzParse: any 384 bytes parse, every field within its size, and
// re-encoding the parsed record gives back the input up to the bytes
// after each field's first NUL (which C readers ignore) and the padding.
func FuzzParse(f *testing.F) {
	r := sampleRecord()
	f.Add(r.Append(nil))
	f.Add(make([]byte, RecordSize))
	f.Add(bytes.Repeat([]byte{0xff}, RecordSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, ok := Parse(b)
		if ok != (len(b) == RecordSize) {
			t.Fatalf("ok %v for %d bytes", ok, len(b))
		}
		if !ok {
			return
		}
		if len(r.Line) > 32 || len(r.ID) > 4 || len(r.User) > 32 || len(r.Host) > 256 {
			t.Fatalf("field too long: %+v", r)
		}
		if ns := r.TimeNS(); ns < 0 {
			t.Fatalf("negative time %d", ns)
		}
		r2, _ := Parse(r.Append(nil))
		if r2.Type != r.Type || r2.PID != r.PID || !bytes.Equal(r2.Line, r.Line) || !bytes.Equal(r2.ID, r.ID) ||
			!bytes.Equal(r2.User, r.User) || !bytes.Equal(r2.Host, r.Host) || r2.Session != r.Session ||
			r2.Sec != r.Sec || r2.Usec != r.Usec || r2.Addr != r.Addr || r2.Exit != r.Exit {
			t.Fatalf("round trip: %+v != %+v", r2, r)
		}
	})
}
