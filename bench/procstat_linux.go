package bench

import "syscall"

// errESRCH is what reading /proc/PID/* returns for a process that exited
// after its directory was opened.
var errESRCH error = syscall.ESRCH
