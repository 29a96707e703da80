package logins

import (
	"bytes"
	"encoding/binary"
)

// RecordSize is sizeof(struct utmp) on Linux with glibc (x86-64, arm64 and
// the other 64-bit ports with 32-bit ut_tv).
const RecordSize = 384

// ut_type values (utmp.h).
const (
	utEmpty        = 0
	utRunLevel     = 1
	utBootTime     = 2
	utNewTime      = 3
	utOldTime      = 4
	utInitProcess  = 5
	utLoginProcess = 6
	utUserProcess  = 7
	utDeadProcess  = 8
	utAccounting   = 9
)

// Record is one struct utmp, fields as the file holds them. Byte fields
// are cut at their first NUL (C strings; not necessarily terminated when
// full) and alias nothing.
type Record struct {
	Type    int16
	PID     int32
	Line    []byte // ut_line, the tty without /dev/
	ID      []byte // ut_id
	User    []byte // ut_user
	Host    []byte // ut_host: remote host name or address as text
	Exit    [2]int16
	Session int32
	Sec     int32 // ut_tv.tv_sec (unsigned in practice: a 32-bit time)
	Usec    int32
	Addr    [16]byte // ut_addr_v6, network order; IPv4 in the first 4 bytes
}

// Parse decodes one record of exactly RecordSize bytes.
func Parse(b []byte) (Record, bool) {
	if len(b) != RecordSize {
		return Record{}, false
	}
	le := binary.LittleEndian
	r := Record{
		Type:    int16(le.Uint16(b[0:])),
		PID:     int32(le.Uint32(b[4:])),
		Line:    cstr(b[8:40]),
		ID:      cstr(b[40:44]),
		User:    cstr(b[44:76]),
		Host:    cstr(b[76:332]),
		Exit:    [2]int16{int16(le.Uint16(b[332:])), int16(le.Uint16(b[334:]))},
		Session: int32(le.Uint32(b[336:])),
		Sec:     int32(le.Uint32(b[340:])),
		Usec:    int32(le.Uint32(b[344:])),
	}
	copy(r.Addr[:], b[348:364])
	return r, true
}

func cstr(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return bytes.Clone(b)
}

// TimeNS is the record's time in ns since the Unix epoch. tv_sec is read
// as unsigned: glibc writes a 32-bit time, valid until 2106.
func (r *Record) TimeNS() int64 {
	return int64(uint32(r.Sec))*1e9 + int64(min(max(r.Usec, 0), 999_999))*1e3
}

// AddrBytes returns the remote address: 16 bytes for IPv6, 4 for IPv4
// (only the first word set), nil when none.
func (r *Record) AddrBytes() []byte {
	if r.Addr == [16]byte{} {
		return nil
	}
	if bytes.Equal(r.Addr[4:], make([]byte, 12)) {
		return bytes.Clone(r.Addr[:4])
	}
	return bytes.Clone(r.Addr[:])
}

// Append encodes r as RecordSize bytes onto b (for tests and for writing
// a record where sshd writes none).
func (r *Record) Append(b []byte) []byte {
	out := make([]byte, RecordSize)
	le := binary.LittleEndian
	le.PutUint16(out[0:], uint16(r.Type))
	le.PutUint32(out[4:], uint32(r.PID))
	copy(out[8:40], r.Line)
	copy(out[40:44], r.ID)
	copy(out[44:76], r.User)
	copy(out[76:332], r.Host)
	le.PutUint16(out[332:], uint16(r.Exit[0]))
	le.PutUint16(out[334:], uint16(r.Exit[1]))
	le.PutUint32(out[336:], uint32(r.Session))
	le.PutUint32(out[340:], uint32(r.Sec))
	le.PutUint32(out[344:], uint32(r.Usec))
	copy(out[348:364], r.Addr[:])
	return append(b, out...)
}
