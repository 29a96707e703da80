package tracepoint

import (
	"bytes"
	"encoding/binary"
	"errors"
)

// Errors of ParseArgv (bare sentinels: the reader meets them for a fifth of
// all execs and only counts them). Both mean: take argv from /proc/PID/cmdline.
var (
	// ErrArgvMissing: the argv strings are not in the dump. On x86_64 the
	// kernel leaves a random 0–8 KiB gap below them; when a whole page of
	// it was never touched, the non-faulting copy of the stack stops there.
	ErrArgvMissing = errors.New("tracepoint: argv not in the stack dump")
	// ErrArgvCut: the dump ends inside the pointer table or a string (argv
	// longer than the dump).
	ErrArgvCut = errors.New("tracepoint: argv cut by the end of the stack dump")
)

// Register ABIs of a sample's user registers (PERF_SAMPLE_REGS_ABI_*).
const (
	RegsABINone = 0
	RegsABI32   = 1
	RegsABI64   = 2
)

// ParseArgv reads argv from the user-stack dump of a sched_process_exec
// sample. At that tracepoint the new program's stack is built and sp points
// at argc, then the argv pointers, a NULL, the envp pointers, auxv; the
// strings lie above. Each argv pointer is mapped to an offset from sp in
// the dump. It appends argv to dst in /proc/PID/cmdline form (each argument
// NUL-terminated) and returns it with argc. Only argv is read: the
// environment, which the dump also holds, is never looked at or copied.
// abi is the sample's RegsABI (4-byte pointers for RegsABI32). On an error
// dst holds the arguments recovered before it.
func ParseArgv(stack []byte, sp, abi uint64, dst []byte) ([]byte, int, error) {
	w := 8
	switch abi {
	case RegsABI64:
	case RegsABI32:
		w = 4
	default:
		return dst, 0, ErrArgvMissing
	}
	word := func(off int) uint64 {
		if w == 4 {
			return uint64(binary.NativeEndian.Uint32(stack[off:]))
		}
		return binary.NativeEndian.Uint64(stack[off:])
	}
	if len(stack) < w {
		return dst, 0, ErrArgvMissing
	}
	argc64 := word(0)
	if argc64 > uint64(len(stack)/w) {
		// More pointers than the dump can hold (or not an argc at all).
		if argc64 > 1<<24 {
			return dst, 0, ErrArgvMissing
		}
		return dst, int(argc64), ErrArgvCut
	}
	argc := int(argc64)
	if (1+argc)*w > len(stack) {
		return dst, argc, ErrArgvCut
	}
	var next uint64 // where argv[i] must start: the kernel lays the strings out one after the other
	for i := range argc {
		p := word((1 + i) * w)
		if p < sp || p-sp >= uint64(len(stack)) {
			return dst, argc, ErrArgvMissing
		}
		if i > 0 && p != next {
			return dst, argc, ErrArgvMissing
		}
		s := stack[p-sp:]
		n := bytes.IndexByte(s, 0)
		if n < 0 {
			return dst, argc, ErrArgvCut
		}
		dst = append(dst, s[:n+1]...)
		next = p + uint64(n) + 1
	}
	return dst, argc, nil
}
