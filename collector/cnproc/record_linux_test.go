package cnproc

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pofr/pofr/internal/testutil"
)

var recordProc = flag.Bool("proc.record", false, "capture cn_proc datagrams from the kernel into testdata/")

// procFrame is one datagram read from a cn_proc socket.
type procFrame struct {
	raw  []byte
	msgs []procMsg
}

// procCapture reads raw cn_proc datagrams on its own socket until stopped.
type procCapture struct {
	fd     int
	done   chan struct{}
	frames chan procFrame
}

func startProcCapture(t *testing.T) *procCapture {
	t.Helper()
	fd, _, err := procDial(8<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	c := &procCapture{fd: fd, done: make(chan struct{}), frames: make(chan procFrame, 1<<16)}
	go func() {
		defer close(c.frames)
		buf := make([]byte, 64<<10)
		for {
			select {
			case <-c.done:
				return
			default:
			}
			n, err := unix.Read(fd, buf)
			if err != nil {
				continue // timeout, EINTR, ENOBUFS
			}
			raw := append([]byte(nil), buf[:n]...)
			msgs, err := decodeProcEvents(raw, nil)
			if err != nil {
				t.Errorf("decode captured frame %x: %v", raw, err)
			}
			c.frames <- procFrame{raw: raw, msgs: msgs}
		}
	}()
	return c
}

// stop ends the capture and returns every frame read.
func (c *procCapture) stop() []procFrame {
	close(c.done)
	var out []procFrame
	for f := range c.frames {
		out = append(out, f)
	}
	unix.Close(c.fd)
	return out
}

var procKindNames = map[uint32]string{
	procEventNone: "none", procEventFork: "fork", procEventExec: "exec", procEventUID: "uid",
	procEventGID: "gid", procEventSID: "sid", procEventPtrace: "ptrace", procEventComm: "comm",
	procEventCoredump: "coredump", procEventExit: "exit",
}

// TestPrivProcRecordFrames makes the kernel send every kind of cn_proc event
// and, with -proc.record, writes a few datagrams of each kind, raw, to
// testdata/ (the decoder tests and the fuzzer's seeds). Without the
// flag it checks that every kind arrives.
func TestPrivProcRecordFrames(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	c := startProcCapture(t)
	time.Sleep(50 * time.Millisecond)
	run := func(name string, args ...string) int32 {
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("%s: %v", name, err)
		}
		return int32(cmd.Process.Pid)
	}
	roots := []int32{
		run("/bin/sh", "-c", "/bin/true; exit 3"),
		run("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/bin/true"),
		run("setsid", "/bin/true"),
		run("/bin/sh", "-c", "printf pofr-comm > /proc/self/comm"),
		run("strace", "-f", "-o", "/dev/null", "/bin/true"),
		run("/bin/sh", "-c", "ulimit -c unlimited; kill -SEGV $$"),
	}
	time.Sleep(200 * time.Millisecond)
	frames := c.stop()

	// Our processes: the roots, their descendants, and this test process
	// (whose threads give thread forks).
	ours := map[int32]bool{int32(os.Getpid()): true}
	for _, p := range roots {
		ours[p] = true
	}
	count := map[string]int{}
	for _, f := range frames {
		for _, m := range f.msgs {
			if m.What == procEventFork && ours[m.ParentTGID] && m.PID == m.TGID {
				ours[m.TGID] = true
			}
			name := procKindNames[m.What]
			if m.What == procEventFork && m.PID != m.TGID {
				name = "thread"
			}
			if m.What != procEventNone && !ours[m.TGID] {
				continue
			}
			count[name]++
			if count[name] <= 2 {
				if *recordProc {
					p := filepath.Join("testdata", fmt.Sprintf("%s-%d.bin", name, count[name]))
					if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(p, f.raw, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
	for _, k := range []string{"none", "fork", "exec", "exit", "uid", "gid", "sid", "comm", "ptrace", "coredump"} {
		if count[k] == 0 {
			t.Errorf("no %s event from the kernel for our processes (got %v)", k, count)
		}
	}
	t.Logf("events of our processes by kind: %v", count)
}
