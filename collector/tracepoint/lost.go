package tracepoint

// lostLedger makes one ring's losses come out exactly once from two
// sources: the PERF_RECORD_LOST records the kernel writes into the ring, and
// the events' own lost counters (PERF_FORMAT_LOST). A ring writes its lost
// record only when it next has room and a sample to write, so a loss on a
// CPU that goes quiet, or one pending when the events are disabled, would
// stay unreported; the counters say it at once. Losses counted from the
// counters first are taken off the lost records that report them later.
type lostLedger struct {
	records uint64 // sum of the counts of the lost records read
	early   uint64 // counted from the counters, not yet reported by a record
}

// record takes a lost record's count and returns what was not handed out
// already from the counters.
func (l *lostLedger) record(n uint64) uint64 {
	l.records += n
	d := min(n, l.early)
	l.early -= d
	return n - d
}

// counters takes the sum of the ring's events' lost counters and returns
// the losses that no record and no earlier call handed out yet.
func (l *lostLedger) counters(total uint64) uint64 {
	if handed := l.records + l.early; total > handed {
		l.early += total - handed
		return total - handed
	}
	return 0
}
