package tracepoint

// spRegMask selects the user stack pointer in sample_regs_user
// (PERF_REG_X86_SP, arch/x86/include/uapi/asm/perf_regs.h).
const spRegMask = 1 << 7
