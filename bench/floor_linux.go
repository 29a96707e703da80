package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// FloorResult is what the cn_proc floor reader saw.
type FloorResult struct {
	// Execs counts the exec events received.
	Execs int `json:"execs"`
	// ArgvPIDs are the pids of exec events whose cmdline could be read.
	ArgvPIDs []int32 `json:"argv_pids"`
	// ArgvMarked counts the cmdlines read that contain ProcFloorOptions.Marker.
	ArgvMarked int `json:"argv_marked"`
	// Priority is "fifo", or "normal" when SCHED_FIFO was not asked for or
	// was refused.
	Priority string `json:"priority"`
}

// ProcFloorOptions choose the variant of the floor reader.
type ProcFloorOptions struct {
	// FIFO runs the reader thread as SCHED_FIFO (priority 10), as the
	// collector's.
	FIFO bool
	// Argv reads /proc/PID/cmdline and readlinks /proc/PID/exe at an exec.
	Argv bool
	// Poll, when positive, drains the socket without blocking and sleeps
	// Poll whenever it is empty, instead of waking at every event.
	Poll time.Duration
	// Marker: cmdlines that contain it are counted in ArgvMarked.
	Marker []byte
	// Ready, when set, is called once the reader is subscribed.
	Ready func()
}

// RunProcFloor is the least a cn_proc reader does, to put the collector's
// CPU per exec in proportion (make bench's cnproc-floor condition: FIFO and
// Argv; cnproc.BenchmarkPrivProcFloor: every variant): on one locked
// thread, receive every datagram and, with Argv, at an exec read
// /proc/PID/cmdline and readlink /proc/PID/exe through a dirfd into reused
// buffers. Nothing is decoded beyond the event kind and pid, nothing kept
// but the pid. It runs until ctx ends.
func RunProcFloor(ctx context.Context, o ProcFloorOptions) (FloorResult, error) {
	res := FloorResult{Priority: "normal"}
	runtime.LockOSThread() // never unlocked: the raised thread must not run other goroutines
	attr := &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: 10, Flags: unix.SCHED_FLAG_RESET_ON_FORK}
	if o.FIFO && unix.SchedSetAttr(0, attr, 0) == nil {
		res.Priority = "fifo"
	}
	root, err := unix.Open("/proc", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return res, fmt.Errorf("open /proc: %w", err)
	}
	defer unix.Close(root)
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
	if err != nil {
		return res, fmt.Errorf("cn_proc socket: %w", err)
	}
	defer unix.Close(fd)
	const cnIdxProc, cnValProc, listen = 1, 1, 1
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc}); err != nil {
		return res, fmt.Errorf("bind cn_proc socket: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
	tv := unix.Timeval{Usec: 200_000}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return res, err
	}
	// nlmsghdr (16) + cn_msg (20) + op (4).
	le := binary.NativeEndian
	sub := make([]byte, 40)
	le.PutUint32(sub[0:], 40)
	le.PutUint16(sub[4:], unix.NLMSG_DONE)
	le.PutUint32(sub[16:], cnIdxProc)
	le.PutUint32(sub[20:], cnValProc)
	le.PutUint16(sub[32:], 4)
	le.PutUint32(sub[36:], listen)
	if _, err := unix.Write(fd, sub); err != nil {
		return res, fmt.Errorf("subscribe to cn_proc: %w", err)
	}
	if o.Ready != nil {
		o.Ready()
	}
	flags := 0
	if o.Poll > 0 {
		flags = unix.MSG_DONTWAIT
	}
	buf := make([]byte, 64<<10)
	argv := make([]byte, 32<<10)
	exe := make([]byte, unix.PathMax)
	for ctx.Err() == nil {
		n, _, err := unix.Recvfrom(fd, buf, flags)
		if o.Poll > 0 && errors.Is(err, unix.EAGAIN) {
			time.Sleep(o.Poll)
			continue
		}
		if err != nil {
			continue // ENOBUFS, the receive timeout, EINTR
		}
		// proc_event at 36: what (4), cpu (4), timestamp (8), then for
		// exec: pid (4), tgid (4).
		if n < 60 || le.Uint32(buf[36:]) != 2 {
			continue
		}
		res.Execs++
		if !o.Argv {
			continue
		}
		pid := int32(le.Uint32(buf[56:]))
		dir := strconv.Itoa(int(pid))
		if k := readAt(root, dir+"/cmdline", argv); k > 0 {
			res.ArgvPIDs = append(res.ArgvPIDs, pid)
			if len(o.Marker) > 0 && bytes.Contains(argv[:k], o.Marker) {
				res.ArgvMarked++
			}
		}
		_, _ = unix.Readlinkat(root, dir+"/exe", exe)
	}
	return res, nil
}

// readAt reads the file name under dirfd into buf with one read(2) and
// returns the byte count (0 on any error).
func readAt(dirfd int, name string, buf []byte) int {
	f, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0
	}
	n, _ := unix.Read(f, buf)
	unix.Close(f)
	return max(n, 0)
}
