package dnspkt

import "golang.org/x/net/bpf"

// snapLen is what the filter keeps of an accepted packet: all of it.
const snapLen = 65535

// filterProgram is the classic BPF program of [Filter]. The packet starts at
// its network header (a SOCK_DGRAM packet socket). IPv4: UDP or TCP, not a
// later fragment, either port 53. IPv6: UDP or TCP directly after the fixed
// header (extension headers are not followed), either port 53. Jump offsets
// count instructions skipped; the comments give the target index.
var filterProgram = []bpf.Instruction{
	/* 0 */ bpf.LoadAbsolute{Off: 0, Size: 1},
	/* 1 */ bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4},
	/* 2 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 4, SkipTrue: 0, SkipFalse: 10}, // 3 : 13
	/* 3 */ bpf.LoadAbsolute{Off: 9, Size: 1},
	/* 4 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 17, SkipTrue: 1, SkipFalse: 0}, // 6 : 5
	/* 5 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 6, SkipTrue: 0, SkipFalse: 15}, // 6 : 21
	/* 6 */ bpf.LoadAbsolute{Off: 6, Size: 2},
	/* 7 */ bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x1fff, SkipTrue: 13, SkipFalse: 0}, // 21 : 8
	/* 8 */ bpf.LoadMemShift{Off: 0},
	/* 9 */ bpf.LoadIndirect{Off: 0, Size: 2},
	/* 10 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 53, SkipTrue: 11, SkipFalse: 0}, // 22 : 11
	/* 11 */ bpf.LoadIndirect{Off: 2, Size: 2},
	/* 12 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 53, SkipTrue: 9, SkipFalse: 8}, // 22 : 21
	/* 13 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 6, SkipTrue: 0, SkipFalse: 7}, // 14 : 21
	/* 14 */ bpf.LoadAbsolute{Off: 6, Size: 1},
	/* 15 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 17, SkipTrue: 1, SkipFalse: 0}, // 17 : 16
	/* 16 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 6, SkipTrue: 0, SkipFalse: 4}, // 17 : 21
	/* 17 */ bpf.LoadAbsolute{Off: 40, Size: 2},
	/* 18 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 53, SkipTrue: 3, SkipFalse: 0}, // 22 : 19
	/* 19 */ bpf.LoadAbsolute{Off: 42, Size: 2},
	/* 20 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 53, SkipTrue: 1, SkipFalse: 0}, // 22 : 21
	/* 21 */ bpf.RetConstant{Val: 0},
	/* 22 */ bpf.RetConstant{Val: snapLen},
}

// Filter returns the assembled socket filter (SO_ATTACH_FILTER).
func Filter() ([]bpf.RawInstruction, error) { return bpf.Assemble(filterProgram) }
