package cnproc

import (
	"testing"
	"time"
)

func TestBusyTick(t *testing.T) {
	const ms = uint64(time.Millisecond)
	run := func(name string, missEvery int, life time.Duration, want time.Duration) {
		t.Helper()
		b := newBusyTick(5*time.Millisecond, 40*time.Millisecond, time.Millisecond)
		now := uint64(1e12)
		for i := range 2000 {
			pid := int32(1000 + i%30000)
			missed := missEvery > 0 && i%missEvery == 0
			b.exec(pid, []byte("/bin/true"), now, missed)
			if life >= 0 {
				b.exit(pid, now+uint64(life))
			}
			now += ms
			if i%5 == 4 {
				b.update(now)
			}
		}
		if got := b.update(now); got != want {
			t.Errorf("%s: period %v, want %v (execs %.0f, risk %.2f)", name, got, want, b.all.execs, b.all.risk)
		}
	}
	run("every argv in the dump", 0, 3*time.Millisecond, 40*time.Millisecond)
	run("a tenth missed, 3 ms lives", 10, 3*time.Millisecond, 5*time.Millisecond)
	run("a tenth missed, 20 ms lives", 10, 20*time.Millisecond, 5*time.Millisecond)
	run("a tenth missed, instant exits", 10, 500*time.Microsecond, 40*time.Millisecond)
	run("a tenth missed, still running", 10, -1, 40*time.Millisecond)
	run("a tenth missed, 1 s lives", 10, time.Second, 40*time.Millisecond)
	run("1 in 1000 missed, 3 ms lives", 1000, 3*time.Millisecond, 40*time.Millisecond)

	// Too few execs seen: short.
	b := newBusyTick(5*time.Millisecond, 40*time.Millisecond, time.Millisecond)
	for i := range 100 {
		b.exec(int32(i), []byte("/bin/true"), uint64(i)*ms, false)
	}
	if got := b.update(200 * ms); got != 5*time.Millisecond {
		t.Errorf("after 100 execs: %v, want the short period", got)
	}
	// TraceBusyMax at most TraceBusy: always TraceBusy, nothing remembered.
	b = newBusyTick(5*time.Millisecond, time.Millisecond, time.Millisecond)
	b.exec(1, []byte("/bin/true"), 0, true)
	if got := b.update(ms); got != 5*time.Millisecond || len(b.missed) != 0 {
		t.Errorf("disabled: %v, %d remembered", got, len(b.missed))
	}
	// One program's short lives among another's many execs: short.
	b = newBusyTick(5*time.Millisecond, 40*time.Millisecond, time.Millisecond)
	now := uint64(1e12)
	for i := range 3000 {
		pid, prog, life, missed := int32(1000+i), "/bin/true", 300*time.Microsecond, i%50 == 0
		if i%40 == 0 { // 2.5 % of the execs: a program whose argv misses the dump a fifth of the time
			prog, life, missed = "/usr/bin/long-argv", 5*time.Millisecond, i%200 == 0
		}
		b.exec(pid, []byte(prog), now, missed)
		b.exit(pid, now+uint64(life))
		now += ms
		b.update(now)
	}
	if got := b.period(); got != 5*time.Millisecond || b.all.risk >= riskBudget*b.all.execs {
		t.Errorf("one program at risk: %v, want the short period (all: risk %.2f of %.0f)", got, b.all.risk, b.all.execs)
	}
	// The loss difference of one life: 6 ms is caught for sure at 5 ms, with
	// 5/40 at 40 ms.
	b = newBusyTick(5*time.Millisecond, 40*time.Millisecond, time.Millisecond)
	if d := b.lossDiff(6 * time.Millisecond); d < 0.874 || d > 0.876 {
		t.Errorf("lossDiff(6 ms) = %v, want 0.875", d)
	}
	if d := b.lossDiff(41 * time.Millisecond); d != 0 {
		t.Errorf("lossDiff(41 ms) = %v, want 0", d)
	}
}
