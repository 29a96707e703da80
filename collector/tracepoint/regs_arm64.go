package tracepoint

// spRegMask selects the user stack pointer in sample_regs_user
// (PERF_REG_ARM64_SP, arch/arm64/include/uapi/asm/perf_regs.h).
const spRegMask = 1 << 31
