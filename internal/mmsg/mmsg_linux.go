// Package mmsg receives the datagrams queued on a socket in batches with
// recvmmsg(2): one system call for up to a batch, never blocking. The
// collector's readers of netlink notifications (cn_proc, sock_diag destroy)
// use it from a thread-locked reader, so the call is made as a raw syscall:
// it does not enter the Go runtime's syscall state, which would let the
// runtime hand the reader's P to another thread.
package mmsg

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Reader receives up to Cap datagrams of at most size bytes per Recv.
type Reader struct {
	bufs [][]byte
	iov  []unix.Iovec
	hdrs []unix.Mmsghdr
}

// NewReader returns a reader of n datagrams of size bytes each.
func NewReader(n, size int) *Reader {
	r := &Reader{bufs: make([][]byte, n), iov: make([]unix.Iovec, n), hdrs: make([]unix.Mmsghdr, n)}
	for i := range n {
		r.bufs[i] = make([]byte, size)
		r.iov[i].Base = &r.bufs[i][0]
		r.iov[i].SetLen(size)
		r.hdrs[i].Hdr.Iov = &r.iov[i]
		r.hdrs[i].Hdr.SetIovlen(1)
	}
	return r
}

// Cap is the most datagrams one Recv returns: fewer means the socket was
// emptied.
func (r *Reader) Cap() int { return len(r.bufs) }

// Recv reads what the socket holds, up to Cap datagrams, without blocking.
// It returns how many it read, or the error of the call (EAGAIN: none).
func (r *Reader) Recv(fd int) (int, error) {
	for i := range r.hdrs {
		r.hdrs[i].Len = 0
		r.hdrs[i].Hdr.Flags = 0
	}
	n, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(len(r.hdrs)),
		unix.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// Msg returns datagram i of the last Recv (valid until the next Recv).
func (r *Reader) Msg(i int) []byte { return r.bufs[i][:r.hdrs[i].Len] }

// Truncated reports whether datagram i of the last Recv was longer than the
// buffer (MSG_TRUNC): Msg holds its beginning only.
func (r *Reader) Truncated(i int) bool { return r.hdrs[i].Hdr.Flags&unix.MSG_TRUNC != 0 }
