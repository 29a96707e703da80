package procfs

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseMountinfo(t *testing.T) {
	in := []byte(`22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
30 25 0:27 / /dev/shm rw,relatime - tmpfs tmpfs rw
40 22 0:12 / /sys/kernel/tracing rw,nosuid - tracefs tracefs rw
50 27 254:0 /srv/data /mnt/with\040space\012nl rw shared:1 master:2 - ext4 /dev/vda rw
garbage line
51 27 8:1 / /boot rw - vfat /dev/sda1 rw
`)
	want := []Mount{
		{0, 21, "/", "/proc", "proc"},
		{254, 0, "/", "/", "ext4"},
		{0, 27, "/", "/dev/shm", "tmpfs"},
		{0, 12, "/", "/sys/kernel/tracing", "tracefs"},
		{254, 0, "/srv/data", "/mnt/with space\nnl", "ext4"},
		{8, 1, "/", "/boot", "vfat"},
	}
	if d := cmp.Diff(want, ParseMountinfo(in)); d != "" {
		t.Errorf("ParseMountinfo (-want +got):\n%s", d)
	}
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{`a\040b`: "a b", `\134x`: `\x`, `tail\04`: `tail\04`, `\999`: `\999`, `plain`: "plain"} {
		if got := UnescapeMount(in); got != want {
			t.Errorf("UnescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}
