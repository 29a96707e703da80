package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestPaced: paced yields in order and stops when the context is done.
func TestPaced(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var got []int
	for i := range paced(ctx, 10, 1e6) {
		got = append(got, i)
		if i == 2 {
			cancel()
		}
	}
	if len(got) != 3 || got[0] != 0 || got[2] != 2 {
		t.Errorf("paced yielded %v, want 0 1 2 and no more after the cancel", got)
	}
}

func TestRunExec(t *testing.T) {
	r, err := RunExec(t.Context(), ExecConfig{Path: "/bin/true", Rate: 200, Duration: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// 200/s for 100 ms is 20 execs, unless the machine is so loaded that the
	// run hit its cap of twice the duration; then deadlines were missed.
	if r.Spawned == 0 || r.Spawned > 20 || r.Spawned < 20 && r.Late == 0 || len(r.PIDs) != r.Spawned || r.Failed != 0 {
		t.Errorf("spawned %d (%d pids, %d late), %d failed; want 20 (or fewer with late deadlines), one pid each, 0 failed",
			r.Spawned, len(r.PIDs), r.Late, r.Failed)
	}
	if r.Spawner != os.Getpid() || r.End <= r.Start || r.LatP50 <= 0 || r.LatP99 < r.LatP50 {
		t.Errorf("result %+v: want spawner = us, end > start, 0 < p50 ≤ p99", r)
	}
	r, err = RunExec(t.Context(), ExecConfig{Path: "/bin/false", Duration: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Spawned == 0 || r.Failed != r.Spawned {
		t.Errorf("/bin/false: spawned %d, failed %d; want all failed", r.Spawned, r.Failed)
	}
}

func TestRunProcsStatic(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc not installed: the lifetime program is compiled with gcc -static")
	}
	bin, err := StaticProgram(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	life := []time.Duration{0, 20 * time.Millisecond}
	r, err := RunProcs(t.Context(), ProcsConfig{Path: bin, Lifetimes: life, PerLifetime: 3, Rate: 500, Tag: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Procs) != 6 {
		t.Fatalf("%d processes, want 6", len(r.Procs))
	}
	markers := map[string]bool{}
	for _, p := range r.Procs {
		if !p.OK || p.PID <= 0 || p.Reap < p.Spawn {
			t.Errorf("process %+v: want exit 0, a pid, reap after spawn", p)
		}
		// The program must really live its lifetime: this is a floor, not a
		// timing assertion.
		if got := time.Duration(p.Reap - p.Spawn); got < p.Lifetime {
			t.Errorf("process %s lived %v, want at least %v", p.Marker, got, p.Lifetime)
		}
		markers[p.Marker] = true
	}
	if len(markers) != 6 {
		t.Errorf("markers %v are not unique", markers)
	}
}

func TestRunConns(t *testing.T) {
	r, err := RunConns(t.Context(), ConnConfig{Kinds: ConnKinds, Lifetimes: []time.Duration{0, time.Millisecond}, PerBucket: 2, Rate: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Conns) != 16 || r.Owner != os.Getpid() {
		t.Fatalf("%d connections owned by %d, want 16 owned by %d", len(r.Conns), r.Owner, os.Getpid())
	}
	ports := map[SockKey]bool{}
	for _, c := range r.Conns {
		if c.LocalPort == 0 || c.RemotePort == 0 || c.Close < c.Open {
			t.Errorf("connection %+v: want both ports and close after open", c)
		}
		ports[connKey(c)] = true
	}
	if len(ports) != 16 {
		t.Errorf("%d distinct client sockets, want 16", len(ports))
	}
}

func TestRunFiles(t *testing.T) {
	dir := t.TempDir()
	r, err := RunFiles(t.Context(), FileConfig{Dir: dir, Rate: 1000, Duration: 20 * time.Millisecond, Size: 100})
	if err != nil {
		t.Fatal(err)
	}
	if r.Cycles != 20 {
		t.Errorf("%d cycles, want 20", r.Cycles)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(left) != 0 {
		t.Errorf("churn left %v behind", left)
	}
}
