package bench

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pofr/pofr/internal/event"
)

func hits(bs []*Bucket) map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, b := range bs {
		m := map[string]int{"n": b.N}
		for k, v := range b.Hit {
			m[k] = v
		}
		out[b.Name] = m
	}
	return out
}

func TestMatchExecs(t *testing.T) {
	ms := int64(time.Millisecond)
	r := ExecResult{Spawner: 77, Spawned: 4, Start: 1000 * ms, End: 2000 * ms, PIDs: []int32{10, 11, 12, 10}}
	rows := []ProcRow{
		{TS: 1100 * ms, Event: event.ProcFork, PID: 10, PPID: 77},
		{TS: 1100 * ms, Event: event.ProcExec, PID: 10, PPID: 77, HasArgv: true, HasExe: true},
		{TS: 1200 * ms, Event: event.ProcExec, PID: 11, PPID: 0, HasExe: true},   // ppid unknown: still ours
		{TS: 1300 * ms, Event: event.ProcExec, PID: 12, PPID: 5},                 // pid reused by someone else
		{TS: 1400 * ms, Event: event.ProcExec, PID: 10, PPID: 77, HasArgv: true}, // second life of pid 10
		{TS: 1500 * ms, Event: event.ProcExec, PID: 10, PPID: 77},                // a third: not spawned
		{TS: 9000 * ms, Event: event.ProcExec, PID: 11, PPID: 77},                // outside the window
	}
	got := MatchExecs(rows, r, 100*time.Millisecond)
	want := ExecCapture{Spawned: 4, Recorded: 3, Argv: 2, Exe: 2, Machine: 5}
	if got != want {
		t.Errorf("MatchExecs = %+v, want %+v", got, want)
	}
}

func TestMatchProcs(t *testing.T) {
	ms := int64(time.Millisecond)
	r := ProcsResult{Spawner: 77, Procs: []ProcRecord{
		{Marker: "pofrbench-t-1", Lifetime: 5 * time.Millisecond, PID: 21, Spawn: 110 * ms, Reap: 116 * ms},
		{Marker: "pofrbench-t-0", Lifetime: 0, PID: 20, Spawn: 100 * ms, Reap: 101 * ms},
		{Marker: "pofrbench-t-2", Lifetime: 0, PID: 22, Spawn: 120 * ms, Reap: 121 * ms},
		{Marker: "pofrbench-t-3", Lifetime: 5 * time.Millisecond, PID: 23, Spawn: 130 * ms, Reap: 136 * ms},
	}}
	rows := []ProcRow{
		{TS: 100 * ms, Event: event.ProcExec, PID: 20, Marker: "pofrbench-t-0", HasExe: true},
		{TS: 111 * ms, Event: event.ProcExec, PID: 21, HasExe: true}, // argv lost
		{TS: 131 * ms, Event: event.ProcExec, PID: 23, Marker: "pofrbench-t-99"},
		{TS: 900 * ms, Event: event.ProcExec, PID: 22, Marker: "pofrbench-t-2"}, // long after: pid reuse
	}
	bs := MatchProcs(rows, r, 10*time.Millisecond)
	if len(bs) != 2 || bs[0].Name != "0" || bs[1].Name != "5ms" {
		t.Errorf("buckets %v, want 0 then 5ms", bs)
	}
	got := hits(bs)
	want := map[string]map[string]int{
		"0":   {"n": 2, "exec": 1, "argv": 1, "exe": 1},
		"5ms": {"n": 2, "exec": 2, "exe": 1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("MatchProcs (-want +got):\n%s", diff)
	}
	seen := &PollSeen{Words: map[string]bool{"pofrbench-t-3": true, "pofrbench-t-30": true}}
	got = hits(PollProcs(seen, r))
	want = map[string]map[string]int{"0": {"n": 2}, "5ms": {"n": 2, "seen": 1}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("PollProcs (-want +got):\n%s", diff)
	}
}

func TestMatchConns(t *testing.T) {
	ms := int64(time.Millisecond)
	r := ConnsResult{Owner: 88, Conns: []ConnRecord{
		{Kind: TCP4, Lifetime: time.Millisecond, LocalPort: 40000, RemotePort: 9000, Open: 100 * ms, Close: 102 * ms},
		{Kind: TCP4, Lifetime: time.Millisecond, LocalPort: 40001, RemotePort: 9000, Open: 110 * ms, Close: 112 * ms},
		{Kind: UDP6, Lifetime: time.Second, LocalPort: 40000, RemotePort: 9001, Open: 120 * ms, Close: 1121 * ms},
	}}
	rows := []SockRow{
		{TS: 102 * ms, Event: event.SockClose, Key: SockKey{"tcp", 4, 40000, 9000}, PID: 88},
		{TS: 111 * ms, Event: event.SockOpen, Key: SockKey{"tcp", 4, 40001, 9000}},            // owner unknown
		{TS: 111 * ms, Event: event.SockClose, Key: SockKey{"tcp", 4, 9000, 40001}, PID: 88},  // the server end
		{TS: 1121 * ms, Event: event.SockClose, Key: SockKey{"udp", 4, 40000, 9001}, PID: 88}, // wrong family
		{TS: 9000 * ms, Event: event.SockClose, Key: SockKey{"udp", 6, 40000, 9001}, PID: 88}, // too late
	}
	got := hits(MatchConns(rows, r, 100*time.Millisecond))
	want := map[string]map[string]int{
		"tcp4/1ms": {"n": 2, "seen": 2, "close": 1, "owner": 1},
		"udp6/1s":  {"n": 1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("MatchConns (-want +got):\n%s", diff)
	}
	seen := &PollSeen{Open: map[SockKey]int{{"udp", 6, 40000, 9001}: 88, {"tcp", 4, 40001, 9000}: 0}}
	got = hits(PollConns(seen, r))
	want = map[string]map[string]int{
		"tcp4/1ms": {"n": 2, "seen": 1},
		"udp6/1s":  {"n": 1, "seen": 1, "owner": 1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("PollConns (-want +got):\n%s", diff)
	}
}

func TestMatchFiles(t *testing.T) {
	c0, r0 := ChurnNames(0)
	c1, r1 := ChurnNames(1)
	rows := []FileRow{
		{Op: event.FileCreate, Name: c0}, {Op: event.FileWrite, Name: c0}, {Op: event.FileRename, Name: c0, NewName: r0},
		{Op: event.FileOpen, Name: r0}, {Op: event.FileDelete, Name: r0},
		{Op: event.FileCreate, Name: c1}, {Op: event.FileMoveTo, Name: r1}, {Op: event.FileDelete, Name: c1}, // wrong name
	}
	got := hits(MatchFiles(rows, FileResult{Cycles: 2}))
	want := map[string]map[string]int{
		event.FileCreate: {"n": 2, "seen": 2}, event.FileWrite: {"n": 2, "seen": 1}, event.FileRename: {"n": 2, "seen": 2},
		event.FileOpen: {"n": 2, "seen": 1}, event.FileDelete: {"n": 2, "seen": 1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("MatchFiles (-want +got):\n%s", diff)
	}
}

func TestProcsPlan(t *testing.T) {
	life := []time.Duration{0, time.Millisecond, time.Second}
	plan := procsPlan(ProcsConfig{Lifetimes: life, PerLifetime: 4})
	if len(plan) != 12 {
		t.Fatalf("plan has %d processes, want 12", len(plan))
	}
	for round := range 4 {
		count := map[time.Duration]int{}
		for _, d := range plan[round*3 : round*3+3] {
			count[d]++
		}
		if want := map[time.Duration]int{0: 1, time.Millisecond: 1, time.Second: 1}; !cmp.Equal(count, want) {
			t.Errorf("round %d: lifetimes %v, want one of each", round, count)
		}
	}
}
