package cnproc

import "time"

// busyTick chooses the tracepoint reader's drain period while events flow.
// Each drain is a wakeup and a pass over every queue, so fewer drains cost
// less; what a longer period loses is the /proc argv of processes whose
// argv was not in the exec sample's stack dump and that end before the
// drain. busyTick measures exactly that population: for every exec whose
// argv missed the dump it learns the process's lifetime from its exit, and
// sums the chance that the long period loses the argv where the short one
// would have read it (a drain comes at a uniformly random phase: a life L
// past the settle margin is caught with probability (L − settle) / period).
// While that expected extra loss stays under riskBudget of all execs and of
// the execs of every program (by exec filename: one program's short lives
// must not hide among another's many execs), the period is long; otherwise
// short. docs/design.md, "Drain policy".
type busyTick struct {
	short, long, settle time.Duration
	all                 tickRisk
	progs               map[string]*tickRisk // by exec filename, at most riskMaxProgs
	missed              map[int32]tickMiss   // tgid → an exec whose argv missed the dump
	useLong             bool
}

// tickRisk counts execs and expected extra argv losses (decayed).
type tickRisk struct{ execs, risk float64 }

type tickMiss struct {
	at   uint64 // exec time
	prog *tickRisk
}

const (
	// riskBudget is the extra share of all execs whose argv a long period
	// may lose: the argv bars are 95 % for 5 ms lives and 99 % from 50 ms
	// (the long period is shorter than 50 ms, so those are never at risk).
	riskBudget = 0.005
	// riskMinExecs execs are seen before the period may grow, and the
	// counts are halved beyond riskWindow (a moving window of execs).
	riskMinExecs = 500
	riskWindow   = 4096
	// riskMaxMissed bounds the map; beyond it a miss counts as lost.
	riskMaxMissed = 1 << 16
	// riskMaxProgs programs are told apart (others share one count), and
	// a program is judged once it has riskMinProgExecs execs.
	riskMaxProgs     = 512
	riskMinProgExecs = 50
)

func newBusyTick(short, long, settle time.Duration) *busyTick {
	return &busyTick{short: short, long: max(long, short), settle: settle,
		progs: make(map[string]*tickRisk), missed: make(map[int32]tickMiss)}
}

// exec records an exec of program filename at ts (CLOCK_MONOTONIC ns);
// missed: its argv was not in the dump (and no guard read it).
func (b *busyTick) exec(tgid int32, filename []byte, ts uint64, missed bool) {
	if b.long == b.short {
		return
	}
	p := b.progs[string(filename)]
	if p == nil {
		if len(b.progs) >= riskMaxProgs {
			if p = b.progs[""]; p == nil {
				p = new(tickRisk)
				b.progs[""] = p
			}
		} else {
			p = new(tickRisk)
			b.progs[string(filename)] = p
		}
	}
	b.all.execs++
	p.execs++
	if !missed {
		delete(b.missed, tgid)
		return
	}
	if len(b.missed) >= riskMaxMissed {
		b.all.risk++
		p.risk++
		return
	}
	b.missed[tgid] = tickMiss{at: ts, prog: p}
}

// exit records the end of process tgid at ts.
func (b *busyTick) exit(tgid int32, ts uint64) {
	m, ok := b.missed[tgid]
	if !ok {
		return
	}
	delete(b.missed, tgid)
	if ts > m.at {
		d := b.lossDiff(time.Duration(ts - m.at))
		b.all.risk += d
		m.prog.risk += d
	}
}

// lossDiff is the chance that the long period loses a life of l whose
// argv the short period would have read.
func (b *busyTick) lossDiff(l time.Duration) float64 {
	caught := func(period time.Duration) float64 {
		if l <= b.settle {
			return 0
		}
		return min(1, float64(l-b.settle)/float64(period))
	}
	return caught(b.short) - caught(b.long)
}

// update ends a drain whose cutoff is now: lives of the remembered execs
// that are longer than the long period plus the settle margin are never at
// risk. It returns the period for the next wait.
func (b *busyTick) update(now uint64) time.Duration {
	if b.long == b.short {
		return b.short
	}
	horizon := uint64(b.long + b.settle)
	for tgid, m := range b.missed {
		if now > m.at && now-m.at >= horizon {
			delete(b.missed, tgid)
		}
	}
	if b.all.execs > riskWindow {
		b.all.execs, b.all.risk = b.all.execs/2, b.all.risk/2
		for name, p := range b.progs {
			if p.execs, p.risk = p.execs/2, p.risk/2; p.execs < 1 {
				delete(b.progs, name) // a program not seen for a while (a remembered miss keeps its pointer)
			}
		}
	}
	b.useLong = b.all.execs >= riskMinExecs && b.all.risk < riskBudget*b.all.execs
	if b.useLong {
		for _, p := range b.progs {
			if p.execs >= riskMinProgExecs && p.risk >= riskBudget*p.execs {
				b.useLong = false
				break
			}
		}
	}
	return b.period()
}

// period is the busy drain period in effect.
func (b *busyTick) period() time.Duration {
	if b.useLong {
		return b.long
	}
	return b.short
}
