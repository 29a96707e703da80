package cnproc

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Wire constants of the proc connector (linux/connector.h, linux/cn_proc.h,
// linux/netlink.h). x/sys/unix does not carry them.
const (
	cnIdxProc = 1 // CN_IDX_PROC: connector index and multicast group of cn_proc
	cnValProc = 1 // CN_VAL_PROC

	procCnMcastListen = 1 // PROC_CN_MCAST_LISTEN
	procCnMcastIgnore = 2 // PROC_CN_MCAST_IGNORE

	cnNlmsgHdrLen = 16 // sizeof(struct nlmsghdr)
	cnMsgHdrLen   = 20 // sizeof(struct cn_msg) without data
	procEvHdrLen  = 16 // what, cpu, timestamp_ns
	cnNlmsgError  = 2  // NLMSG_ERROR
	cnNlmsgDone   = 3  // NLMSG_DONE: the type the connector sends
)

// cn_proc event kinds (enum proc_event.what).
const (
	procEventNone     uint32 = 0x00000000
	procEventFork     uint32 = 0x00000001
	procEventExec     uint32 = 0x00000002
	procEventUID      uint32 = 0x00000004
	procEventGID      uint32 = 0x00000040
	procEventSID      uint32 = 0x00000080
	procEventPtrace   uint32 = 0x00000100
	procEventComm     uint32 = 0x00000200
	procEventCoredump uint32 = 0x40000000
	procEventExit     uint32 = 0x80000000
)

// errProcFrame reports a netlink datagram that is not a well-formed cn_proc
// message. The reader counts and skips such frames.
var errProcFrame = errors.New("collector: malformed cn_proc frame")

// procMsg is one decoded cn_proc event. Which fields are set depends on What;
// the subject of the event (the child for fork) is always PID/TGID.
type procMsg struct {
	What uint32 // procEvent*
	CPU  uint32
	TS   uint64 // kernel time of the event, CLOCK_MONOTONIC ns (ktime_get_ns)
	Seq  uint32 // cn_msg sequence number (per CPU)

	PID  int32 // thread id of the subject (fork: the child)
	TGID int32 // thread group (process) id of the subject

	ParentPID  int32 // fork, exit, coredump: parent thread
	ParentTGID int32 // fork, exit, coredump: parent process

	TracerPID  int32 // ptrace: 0 on detach
	TracerTGID int32

	RID uint32 // uid: ruid; gid: rgid
	EID uint32 // uid: euid; gid: egid

	ExitCode   uint32 // exit: raw wait status (task->exit_code)
	ExitSignal uint32 // exit: signal sent to the parent (usually SIGCHLD), not the killing signal

	Comm [16]byte // comm: the new name, NUL-padded

	Err uint32 // none: the ack's error (0 after a subscription)
}

// procEventBody is the number of union bytes each kind needs.
func procEventBody(what uint32) (int, bool) {
	switch what {
	case procEventNone:
		return 4, true
	case procEventFork, procEventPtrace, procEventCoredump:
		return 16, true
	case procEventExec, procEventSID:
		return 8, true
	case procEventUID, procEventGID:
		return 16, true
	case procEventComm:
		return 24, true
	case procEventExit:
		return 24, true
	}
	return 0, false
}

// decodeProcEvents parses one netlink datagram received on a cn_proc socket
// and appends its events to out. It is a pure function over bytes: it never
// touches a socket, so tests and the fuzzer drive it with frames captured from
// the kernel (testdata/proc). Messages that are not cn_proc (another
// connector index, a netlink control message) are skipped; a truncated or
// inconsistent frame returns the events decoded before it and an error
// wrapping errProcFrame. Event kinds unknown to this code are skipped, so a
// newer kernel cannot break the reader.
func decodeProcEvents(b []byte, out []procMsg) ([]procMsg, error) {
	le := binary.NativeEndian
	for len(b) > 0 {
		if len(b) < cnNlmsgHdrLen {
			return out, fmt.Errorf("%w: %d bytes left, short netlink header", errProcFrame, len(b))
		}
		mlen := int(le.Uint32(b[0:4]))
		typ := le.Uint16(b[4:6])
		if mlen < cnNlmsgHdrLen || mlen > len(b) {
			return out, fmt.Errorf("%w: netlink length %d of %d bytes", errProcFrame, mlen, len(b))
		}
		msg := b[cnNlmsgHdrLen:mlen]
		// Advance by the aligned length (NLMSG_ALIGN); the last message may
		// end without padding.
		next := (mlen + 3) &^ 3
		if next > len(b) {
			next = len(b)
		}
		b = b[next:]

		switch typ {
		case cnNlmsgError:
			if len(msg) < 4 {
				return out, fmt.Errorf("%w: short netlink error", errProcFrame)
			}
			return out, fmt.Errorf("%w: netlink error %d", errProcFrame, int32(le.Uint32(msg[0:4])))
		case cnNlmsgDone:
		default:
			continue // NOOP, OVERRUN or anything else: nothing to decode
		}

		if len(msg) < cnMsgHdrLen {
			return out, fmt.Errorf("%w: short connector header (%d bytes)", errProcFrame, len(msg))
		}
		idx, val := le.Uint32(msg[0:4]), le.Uint32(msg[4:8])
		seq := le.Uint32(msg[8:12])
		dlen := int(le.Uint16(msg[16:18]))
		if idx != cnIdxProc || val != cnValProc {
			continue
		}
		data := msg[cnMsgHdrLen:]
		if dlen > len(data) {
			return out, fmt.Errorf("%w: connector payload %d of %d bytes", errProcFrame, dlen, len(data))
		}
		data = data[:dlen]
		if len(data) < procEvHdrLen {
			return out, fmt.Errorf("%w: short proc_event (%d bytes)", errProcFrame, len(data))
		}
		ev := procMsg{
			What: le.Uint32(data[0:4]),
			CPU:  le.Uint32(data[4:8]),
			TS:   le.Uint64(data[8:16]),
			Seq:  seq,
		}
		need, known := procEventBody(ev.What)
		if !known {
			continue
		}
		u := data[procEvHdrLen:]
		if len(u) < need {
			return out, fmt.Errorf("%w: event %#x needs %d bytes, has %d", errProcFrame, ev.What, need, len(u))
		}
		i32 := func(off int) int32 { return int32(le.Uint32(u[off : off+4])) }
		u32 := func(off int) uint32 { return le.Uint32(u[off : off+4]) }
		switch ev.What {
		case procEventNone:
			ev.Err = u32(0)
		case procEventFork:
			ev.ParentPID, ev.ParentTGID = i32(0), i32(4)
			ev.PID, ev.TGID = i32(8), i32(12)
		case procEventExec, procEventSID:
			ev.PID, ev.TGID = i32(0), i32(4)
		case procEventUID, procEventGID:
			ev.PID, ev.TGID = i32(0), i32(4)
			ev.RID, ev.EID = u32(8), u32(12)
		case procEventPtrace:
			ev.PID, ev.TGID = i32(0), i32(4)
			ev.TracerPID, ev.TracerTGID = i32(8), i32(12)
		case procEventComm:
			ev.PID, ev.TGID = i32(0), i32(4)
			copy(ev.Comm[:], u[8:24])
		case procEventCoredump:
			ev.PID, ev.TGID = i32(0), i32(4)
			ev.ParentPID, ev.ParentTGID = i32(8), i32(12)
		case procEventExit:
			ev.PID, ev.TGID = i32(0), i32(4)
			ev.ExitCode, ev.ExitSignal = u32(8), u32(12)
			ev.ParentPID, ev.ParentTGID = i32(16), i32(20)
		}
		out = append(out, ev)
	}
	return out, nil
}

// procWaitStatus splits a raw wait status (the exit event's exit_code) into the
// exit code of a normal exit or the signal that ended the process; exactly
// one of the two is valid.
func procWaitStatus(ws uint32) (code int32, codeOK bool, sig int32, sigOK bool) {
	if s := ws & 0x7f; s != 0 {
		return 0, false, int32(s), true
	}
	return int32((ws >> 8) & 0xff), true, 0, false
}

// procCommBytes returns the comm of a comm event without its NUL padding.
func procCommBytes(c *[16]byte) []byte {
	n := 0
	for n < len(c) && c[n] != 0 {
		n++
	}
	return append([]byte(nil), c[:n]...)
}

// procSubscribeFrame builds the netlink message that subscribes to (op
// procCnMcastListen) or unsubscribes from (procCnMcastIgnore) cn_proc events.
func procSubscribeFrame(op uint32) []byte { return procControlFrame(op) }

// procSubscribeFilterFrame is procSubscribeFrame with a struct proc_input
// payload (Linux ≥ 6.6): op and the event kinds (procEvent* bits) the
// kernel sends to this socket.
func procSubscribeFilterFrame(op, events uint32) []byte { return procControlFrame(op, events) }

// procControlFrame builds a cn_proc control message whose payload is words.
func procControlFrame(words ...uint32) []byte {
	le := binary.NativeEndian
	payload := 4 * len(words)
	b := make([]byte, cnNlmsgHdrLen+cnMsgHdrLen+payload)
	le.PutUint32(b[0:4], uint32(len(b)))
	le.PutUint16(b[4:6], cnNlmsgDone)
	m := b[cnNlmsgHdrLen:]
	le.PutUint32(m[0:4], cnIdxProc)
	le.PutUint32(m[4:8], cnValProc)
	le.PutUint16(m[16:18], uint16(payload))
	for i, w := range words {
		le.PutUint32(m[cnMsgHdrLen+4*i:], w)
	}
	return b
}
