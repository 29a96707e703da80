//go:build !amd64 && !arm64

package tracepoint

// spRegMask is 0 where pofr does not know the register number of the user
// stack pointer: no stack is sampled, and argv comes from /proc.
const spRegMask = 0
