package collector

// ProcMap is a Processes over a fixed set of process lives: the stand-in
// for the process table in the sources' tests that run without a kernel.
type ProcMap map[int32]ProcInfo

// Lookup implements Processes.
func (m ProcMap) Lookup(pid int32) (ProcInfo, bool) { i, ok := m[pid]; return i, ok }
