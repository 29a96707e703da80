package tracepoint

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrRecord reports a ring record that does not decode.
var ErrRecord = errors.New("tracepoint: malformed perf record")

// Record types (perf_event_header.type, linux/perf_event.h) this package
// handles; others are skipped.
const (
	recordLost   = 2 // PERF_RECORD_LOST
	recordSample = 9 // PERF_RECORD_SAMPLE
)

// headerLen is sizeof(struct perf_event_header).
const headerLen = 8

// sampleIDLen is the sample_id trailer of non-sample records with
// sample_id_all and sample_type TID|TIME|CPU: pid, tid, time, cpu, res.
const sampleIDLen = 24

// Sample is one PERF_RECORD_SAMPLE of a tracepoint opened with
// PERF_SAMPLE_TID|TIME|CPU|RAW and optionally REGS_USER and STACK_USER. Its
// slices alias the ring (or a scratch copy) and are valid only until the
// handler returns.
type Sample struct {
	PID, TID uint32 // of the task that hit the tracepoint, in the reader's pid namespace
	Time     uint64 // CLOCK_MONOTONIC ns
	CPU      uint32
	// Raw is the tracepoint's record: common fields then the event's own,
	// as its Format describes.
	Raw []byte
	// RegsABI is PERF_SAMPLE_REGS_ABI_{NONE,32,64} of the user registers;
	// SP the user stack pointer (valid when RegsABI is not 0). Only the
	// stack pointer is sampled.
	RegsABI uint64
	SP      uint64
	// Stack is the part of the user-stack dump the kernel could copy (its
	// dyn_size), starting at SP. Nil when not sampled or nothing was copied.
	Stack []byte
}

// TypeID returns the tracepoint id of the sample (common_type, the first
// field of every raw record), or false if Raw is too short.
func (s *Sample) TypeID() (uint16, bool) {
	if len(s.Raw) < 2 {
		return 0, false
	}
	return binary.NativeEndian.Uint16(s.Raw), true
}

// Layout says what follows RAW in the samples of one tracepoint.
type Layout struct {
	Regs  int  // number of user registers sampled (bits of sample_regs_user); 0: REGS_USER not sampled
	Stack bool // STACK_USER sampled
}

// ParseHeader returns a record's type and size from its 8-byte header.
func ParseHeader(b []byte) (typ uint32, size int, err error) {
	if len(b) < headerLen {
		return 0, 0, fmt.Errorf("%w: %d bytes, short header", ErrRecord, len(b))
	}
	typ = binary.NativeEndian.Uint32(b)
	size = int(binary.NativeEndian.Uint16(b[6:]))
	if size < headerLen {
		return 0, 0, fmt.Errorf("%w: size %d", ErrRecord, size)
	}
	return typ, size, nil
}

// ParseSample decodes a PERF_RECORD_SAMPLE (header included). layout is
// asked, with the tracepoint id from the raw record, what follows RAW;
// regsSP is the index of the stack pointer among the sampled registers.
func ParseSample(rec []byte, layout func(id uint16) Layout, s *Sample) error {
	*s = Sample{}
	typ, size, err := ParseHeader(rec)
	if err != nil {
		return err
	}
	if typ != recordSample || size > len(rec) {
		return fmt.Errorf("%w: type %d size %d of %d bytes", ErrRecord, typ, size, len(rec))
	}
	b := rec[headerLen:size]
	le := binary.NativeEndian
	if len(b) < 8+8+8+4 {
		return fmt.Errorf("%w: sample of %d bytes", ErrRecord, len(b))
	}
	s.PID, s.TID = le.Uint32(b), le.Uint32(b[4:])
	s.Time = le.Uint64(b[8:])
	s.CPU = le.Uint32(b[16:])
	n := int(le.Uint32(b[24:]))
	b = b[28:]
	if n > len(b) {
		return fmt.Errorf("%w: raw size %d of %d bytes", ErrRecord, n, len(b))
	}
	s.Raw, b = b[:n:n], b[n:]
	id, ok := s.TypeID()
	if !ok {
		return fmt.Errorf("%w: raw record of %d bytes", ErrRecord, n)
	}
	l := layout(id)
	if l.Regs > 0 {
		if len(b) < 8 {
			return fmt.Errorf("%w: no regs abi", ErrRecord)
		}
		s.RegsABI, b = le.Uint64(b), b[8:]
		if s.RegsABI != 0 {
			if len(b) < 8*l.Regs {
				return fmt.Errorf("%w: %d regs in %d bytes", ErrRecord, l.Regs, len(b))
			}
			s.SP, b = le.Uint64(b), b[8*l.Regs:]
		}
	}
	if l.Stack {
		if len(b) < 8 {
			return fmt.Errorf("%w: no stack size", ErrRecord)
		}
		sz := le.Uint64(b)
		b = b[8:]
		if sz > 0 {
			if sz > uint64(len(b)) || len(b)-int(sz) < 8 {
				return fmt.Errorf("%w: stack dump %d of %d bytes", ErrRecord, sz, len(b))
			}
			dyn := le.Uint64(b[sz:])
			if dyn > sz {
				return fmt.Errorf("%w: stack dyn_size %d > size %d", ErrRecord, dyn, sz)
			}
			if dyn > 0 {
				s.Stack = b[:dyn:dyn]
			}
		}
	}
	return nil
}

// Lost is what a PERF_RECORD_LOST says: Count records of one ring were
// dropped because it was full, in the interval (From, To]: From is the time
// of the last record the ring kept before the loss (0: none since the ring
// was opened), To the time the kernel wrote the lost record. A loss no lost
// record said yet, read from the events' lost counters (see
// Set.Drain), has To the time they were read.
type Lost struct {
	CPU      int
	Count    uint64
	From, To uint64 // CLOCK_MONOTONIC ns
}

// ParseLost decodes a PERF_RECORD_LOST (header included) written with
// sample_id_all and sample_type TID|TIME|CPU: the count and the time.
func ParseLost(rec []byte) (count, time uint64, err error) {
	typ, size, err := ParseHeader(rec)
	if err != nil {
		return 0, 0, err
	}
	if typ != recordLost || size > len(rec) || size < headerLen+16+sampleIDLen {
		return 0, 0, fmt.Errorf("%w: lost record type %d size %d of %d bytes", ErrRecord, typ, size, len(rec))
	}
	b := rec[headerLen:size]
	return binary.NativeEndian.Uint64(b[8:]), binary.NativeEndian.Uint64(b[16+8:]), nil
}
