package bench

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const procNetFixture = `# tcp
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:9C40 0100007F:A410 01 00000000:00000000 00:00000000 00000000     0        0 55501 1 0000000000000000 20 4 30 10 -1
   1: 0100007F:A410 0100007F:9C40 06 00000000:00000000 03:00000B2F 00000000     0        0 0 3 0000000000000000
# udp6
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
 1: 00000000000000000000000001000000:D431 00000000000000000000000001000000:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 55502 2 0000000000000000 0
 2: garbage
`

func TestParseProcNet(t *testing.T) {
	got := ParseProcNet([]byte(procNetFixture))
	want := []NetSock{
		{Key: SockKey{"tcp", 4, 0x9c40, 0xa410}, State: 1, Inode: 55501},
		{Key: SockKey{"tcp", 4, 0xa410, 0x9c40}, State: 6},
		{Key: SockKey{"udp", 6, 0xd431, 0x1f90}, State: 1, UID: 1000, Inode: 55502},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseProcNet (-want +got):\n%s", diff)
	}
}

// TestPollFixture runs one poller pass over a fixture /proc and reads its
// snapshot back.
func TestPollFixture(t *testing.T) {
	root := t.TempDir()
	mk := func(pid, cmdline, status string, fds map[string]string) {
		d := filepath.Join(root, pid)
		os.MkdirAll(filepath.Join(d, "fd"), 0o755)
		os.WriteFile(filepath.Join(d, "cmdline"), []byte(cmdline), 0o644)
		os.WriteFile(filepath.Join(d, "status"), []byte(status), 0o644)
		for fd, target := range fds {
			os.Symlink(target, filepath.Join(d, "fd", fd))
		}
	}
	mk("700", "/x/life\x00pofrbench-t-3\x005000\x00", "Name:\tlife\nPPid:\t1\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n", nil)
	mk("701", "pofr-load\x00conns\x00", "Name:\tpofr-load\nPPid:\t1\nUid:\t0\t0\t0\t0\n", map[string]string{"3": "socket:[55501]", "4": "/dev/null"})
	mk("702", "", "Name:\tkthread\nPPid:\t2\n", nil) // a kernel thread: empty cmdline
	os.MkdirAll(filepath.Join(root, "net"), 0o755)
	os.WriteFile(filepath.Join(root, "net", "tcp"), []byte(procNetFixture[6:]), 0o644)

	out := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // one pass, then stop
	if err := Poll(ctx, PollConfig{Proc: ProcFS(root), Period: time.Hour, OutDir: out}); err != nil {
		t.Fatal(err)
	}
	seen, err := ReadPoll(out)
	if err != nil {
		t.Fatal(err)
	}
	if seen.Passes != 1 {
		t.Errorf("passes = %d, want 1", seen.Passes)
	}
	if want := map[string]bool{"pofrbench-t-3": true}; !cmp.Equal(seen.Words, want) {
		t.Errorf("words = %v, want %v", seen.Words, want)
	}
	// The file "tcp" holds the whole fixture after its first header, so the
	// udp6 header inside it switches tables as in a real pass.
	wantOpen := map[SockKey]int{{"tcp", 4, 0x9c40, 0xa410}: 701, {"udp", 6, 0xd431, 0x1f90}: 0}
	if diff := cmp.Diff(wantOpen, seen.Open); diff != "" {
		t.Errorf("open sockets (-want +got):\n%s", diff)
	}
	if seen.Bytes <= 0 || seen.RawBytes <= seen.Bytes/10 {
		t.Errorf("bytes = %d, raw = %d", seen.Bytes, seen.RawBytes)
	}
}
