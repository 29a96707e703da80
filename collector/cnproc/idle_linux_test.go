package cnproc

import (
	"os/exec"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/testutil"
)

// TestPrivTracepointIdleWakes: with an idle period of an hour, the reader is
// still woken by an exec without a fork (the exec doorbell), by an exit (the
// cn_proc socket), and at the time a driven queue asked for. On a busy host
// other forks wake the reader as well; on a quiet one only these do.
func TestPrivTracepointIdleWakes(t *testing.T) {
	requireTracepoints(t)
	sink := &event.MemSink{}
	src := startProcSource(t, Options{Sink: sink, Tracepoint: true, TraceIdle: time.Hour})
	if src.Mode() != ModeTracepoint {
		t.Fatalf("mode %q", src.Mode())
	}
	// A shell that waits for its stdin to close, then execs sleep without
	// forking; its exit comes when the test kills it.
	cmd := exec.Command("/bin/sh", "-c", "read x; exec /bin/sleep 60")
	w, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	pid := int32(cmd.Process.Pid)
	has := func(what func(event.Proc) bool) func([]event.Proc) bool {
		return func(rs []event.Proc) bool { return slices.ContainsFunc(rs, what) }
	}
	waitRows(t, sink, 10*time.Second, "the shell's exec row", has(func(r event.Proc) bool {
		return r.PID == pid && r.Event == event.ProcExec
	}))
	time.Sleep(200 * time.Millisecond) // the reader goes back to its long sleep
	w.Close()
	waitRows(t, sink, 10*time.Second, "the exec row of sleep (no fork)", has(func(r event.Proc) bool {
		return r.PID == pid && r.Event == event.ProcExec && string(r.Comm) == "sleep"
	}))
	time.Sleep(200 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	waitRows(t, sink, 10*time.Second, "the exit row", has(func(r event.Proc) bool {
		return r.PID == pid && r.Event == event.ProcExit
	}))

	// A driven queue that asks for a drain 300 ms after its data came.
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[1])
	defer unix.Close(p[0])
	var dueDrained atomic.Bool
	var due time.Time
	go src.Drive(t.Context(), p[0], func() (bool, time.Time) {
		var b [16]byte
		if n, _ := unix.Read(p[0], b[:]); n > 0 {
			due = time.Now().Add(300 * time.Millisecond)
		}
		if !due.IsZero() && !time.Now().Before(due) {
			dueDrained.Store(true)
			due = time.Time{}
		}
		return true, due
	})
	time.Sleep(200 * time.Millisecond)
	unix.Write(p[1], []byte{1})
	testutil.WaitFor(t, 10*time.Second, "the drain the queue asked for", dueDrained.Load)
}
