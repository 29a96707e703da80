package procfs

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseStat(t *testing.T) {
	// comm with spaces and parentheses; starttime is field 22.
	b := []byte("4242 (a) b (c) S 17 4242 4242 34816 4242 4194560 120 0 0 0 1 2 0 0 20 0 1 0 123456 1000 100 ...\n")
	s, err := ParseStat(b)
	if err != nil {
		t.Fatal(err)
	}
	if string(s.Comm) != "a) b (c" || s.PPID != 17 || s.StartTicks != 123456 || s.TTYNr != 34816 {
		t.Errorf("got comm %q ppid %d start %d tty %d", s.Comm, s.PPID, s.StartTicks, s.TTYNr)
	}
	if got := string(TTYName(s.TTYNr)); got != "pts/0" {
		t.Errorf("tty %q, want pts/0", got)
	}
	for _, bad := range []string{"", "1 (x", "1 (x) S 1 2", "1 (x) S notanumber 1 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1"} {
		if _, err := ParseStat([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseStat(%q) err = %v, want ErrMalformed", bad, err)
		}
	}
}

func TestParseStatusIDs(t *testing.T) {
	b := []byte("Name:\tx\nUmask:\t0022\nUid:\t1000\t0\t0\t0\nGid:\t100\t101\t101\t101\n")
	u, eu, g, eg, err := ParseStatusIDs(b)
	if err != nil || u != 1000 || eu != 0 || g != 100 || eg != 101 {
		t.Errorf("got %d %d %d %d %v, want 1000 0 100 101", u, eu, g, eg, err)
	}
	if _, _, _, _, err := ParseStatusIDs([]byte("Name:\tx\n")); !errors.Is(err, ErrMalformed) {
		t.Errorf("no Uid: err = %v", err)
	}
}

func TestContainerIDAndCgroup(t *testing.T) {
	id := strings.Repeat("0123456789abcdef", 4)
	tests := map[string]string{
		"/system.slice/docker-" + id + ".scope": id,
		"/docker/" + id:                         id,
		"/kubepods/burstable/pod1234/" + id:     id,
		"/kubepods.slice/kubepods-besteffort.slice/cri-containerd-" + id + ".scope": id,
		"/machine.slice/libpod-" + id + ".scope/container":                          id,
		"/system.slice/crio-" + id + ".scope":                                       id,
		"/lxc.payload.web1":                                                         "web1",
		"/lxc/web2":                                                                 "web2",
		"/user.slice/user-1000.slice/session-3.scope":                               "",
		"/": "",
	}
	for cg, want := range tests {
		if got := string(ContainerID([]byte(cg))); got != want {
			t.Errorf("ContainerID(%q) = %q, want %q", cg, got, want)
		}
	}
	if got := string(ParseCgroup([]byte("12:cpu:/a\n1:name=systemd:/sys\n0::/user.slice/x:y\n"))); got != "/user.slice/x:y" {
		t.Errorf("parseProcCgroup v2 = %q", got)
	}
	if got := string(ParseCgroup([]byte("12:cpu:/a\n1:name=systemd:/sys\n"))); got != "/sys" {
		t.Errorf("parseProcCgroup v1 = %q", got)
	}
	if v, ok := ParseNSLink([]byte("net:[4026531840]")); !ok || v != 4026531840 {
		t.Errorf("parseProcNSLink = %d %v", v, ok)
	}
	if _, ok := ParseNSLink([]byte("net:[x]")); ok {
		t.Error("parseProcNSLink accepted net:[x]")
	}
}

func TestParseStatusHead(t *testing.T) {
	// A real head, cut mid-line after Gid as a 512-byte read can leave it;
	// the comm "a\nb\\c" as the kernel escapes it.
	b := []byte("Name:\ta\\nb\\\\c\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t77\nNgid:\t0\nPid:\t77\nPPid:\t12\n" +
		"TracerPid:\t0\nUid:\t1000\t0\t0\t0\nGid:\t100\t50\t50\t50\nFDSize:\t6")
	h, err := ParseStatusHead(b)
	if err != nil {
		t.Fatal(err)
	}
	comm, ok := UnescapeComm(make([]byte, 0, 64), h.Name)
	got := []any{string(comm), ok, h.PPID, h.UID, h.EUID, h.GID, h.EGID}
	want := []any{"a\nb\\c", true, int32(12), uint32(1000), uint32(0), uint32(100), uint32(50)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("status head (-want +got):\n%s", diff)
	}
	if _, err := ParseStatusHead(b[:bytes.Index(b, []byte("Gid:"))+6]); err == nil {
		t.Error("a head cut inside the Gid line parsed")
	}
}

func TestParseStatStart(t *testing.T) {
	stat := []byte("4242 (a) b)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 12345 1000 10 18446744073709551615\n")
	s, err := ParseStat(stat)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := StartFromTicks(s.StartTicks), StartFromTicks(12345); got != want {
		t.Errorf("start = %d, want %d", got, want)
	}
	if _, err := ParseStat([]byte("1 (x) S 1 2")); !errors.Is(err, ErrMalformed) {
		t.Errorf("short stat: err = %v, want ErrMalformed", err)
	}
}

// FuzzParseProcFiles feeds the same bytes to every parser: none may panic,
// and what they return must point into the input or be a fresh copy.
func FuzzParseProcFiles(f *testing.F) {
	for _, name := range []string{"1/stat", "42/stat", "42/status", "42/cgroup", "4242/stat"} {
		b, err := os.ReadFile("testdata/proc/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("net:[4026531840]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if s, err := ParseStat(b); err == nil && !bytes.Contains(b, s.Comm) {
			t.Errorf("ParseStat comm %q not in input", s.Comm)
		}
		if h, err := ParseStatusHead(b); err == nil {
			if _, ok := UnescapeComm(make([]byte, 0, 64), h.Name); !ok && len(h.Name) < 64 {
				t.Errorf("UnescapeComm of %q did not fit 64 bytes", h.Name)
			}
		}
		ParseStatusIDs(b)
		ContainerID(ParseCgroup(b))
		ParseNSLink(b)
		ParseID(b)
		for _, m := range ParseMountinfo(b) {
			if m.FSType == "" {
				t.Errorf("ParseMountinfo gave a mount without a type: %+v", m)
			}
		}
	})
}

// The exec hot path parses these with reused buffers: no allocation.
func BenchmarkParseHotPath(b *testing.B) {
	stat, err := os.ReadFile("testdata/proc/42/stat")
	if err != nil {
		b.Fatal(err)
	}
	status, err := os.ReadFile("testdata/proc/42/status")
	if err != nil {
		b.Fatal(err)
	}
	cgroup, err := os.ReadFile("testdata/proc/42/cgroup")
	if err != nil {
		b.Fatal(err)
	}
	comm := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseStat(stat); err != nil {
			b.Fatal(err)
		}
		h, err := ParseStatusHead(status)
		if err != nil {
			b.Fatal(err)
		}
		UnescapeComm(comm[:0], h.Name)
		ParseCgroup(cgroup)
		ParseNSLink([]byte("net:[4026531840]"))
	}
}
