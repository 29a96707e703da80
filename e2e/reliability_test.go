package e2e

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pofr/pofr/internal/testutil"
)

// spawn runs /bin/sh -c 'sleep D; exit 0' MARKER to completion and returns
// its pid, the argv the collector should record and when it started. The
// script ends with a builtin so that sh does not exec sleep in its place.
func spawn(t *testing.T, marker string, d time.Duration) (pid int, argv []byte, started time.Time) {
	t.Helper()
	pid, argv, started, err := spawnNoFatal(marker, d)
	if err != nil {
		t.Fatal(err)
	}
	return pid, argv, started
}

// spawnNoFatal is spawn for goroutines other than the test's.
func spawnNoFatal(marker string, d time.Duration) (pid int, argv []byte, started time.Time, err error) {
	script := fmt.Sprintf("sleep %.3f; exit 0", d.Seconds())
	cmd := exec.Command("/bin/sh", "-c", script, marker)
	started = time.Now()
	if err := cmd.Start(); err != nil {
		return 0, nil, started, fmt.Errorf("%s: %w", marker, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return 0, nil, started, fmt.Errorf("%s: %w", marker, err)
		}
	case <-time.After(d + 10*time.Second):
		cmd.Process.Kill()
		return 0, nil, started, fmt.Errorf("%s did not exit within %v", marker, d+10*time.Second)
	}
	return cmd.Process.Pid, argvBytes("/bin/sh", "-c", script, marker), started, nil
}

// checkExecs checks that each pid has exactly one exec row, with argv want[pid].
func (p *pipeline) checkExecs(want map[int][]byte) {
	p.t.Helper()
	if len(want) == 0 {
		p.t.Fatal("no processes to check")
	}
	pids := make([]string, 0, len(want))
	for pid := range want {
		pids = append(pids, strconv.Itoa(pid))
	}
	got := map[int]int{}
	testutil.EachRow(p.t, p.db, func(row testutil.Row) {
		var pid int
		var argv string
		row.Scan(&pid, &argv)
		got[pid]++
		if w := hexUpper(want[pid]); argv != w {
			p.t.Errorf("pid %d: argv %s, want %s", pid, argv, w)
		}
	}, `SELECT pid, HEX(IFNULL(argv, '')) FROM proc_events
		WHERE host_id = ? AND event = 'exec' AND pid IN (`+strings.Join(pids, ",")+`)`, p.hostID)
	missing, twice := 0, 0
	for pid := range want {
		switch got[pid] {
		case 0:
			missing++
			p.t.Errorf("pid %d (%q): no exec row", pid, want[pid])
		case 1:
		default:
			twice++
			p.t.Errorf("pid %d (%q): %d exec rows, want 1", pid, want[pid], got[pid])
		}
	}
	p.t.Logf("%d processes: %d with one exec row, %d missing, %d more than once", len(want), len(want)-missing-twice, missing, twice)
}

// TestCollectorKill kills the collector with SIGKILL while it records, starts
// it again, and checks that the restart is an explicit "unclean stop" gap in
// the gaps table and that the hash chain continues across it.
func TestCollectorKill(t *testing.T) {
	p := newPipeline(t)
	c := p.startCollector("--segment-age", "1s")
	testutil.WaitEvery(t, 30*time.Second, 100*time.Millisecond, "two sealed segments", func() bool {
		return len(p.spooled())+len(p.inbox()) >= 2
	})
	// A process right before the kill: its rows are probably not sealed yet.
	lostPid, lostArgv, lostAt := spawn(t, "e2e-before-kill", 50*time.Millisecond)
	c.kill()
	killedAt := time.Now()
	t.Logf("collector killed %v after the last exec (pid %d)", killedAt.Sub(lostAt).Round(time.Millisecond), lostPid)

	c = p.startCollector("--segment-age", "1s")
	afterPid, afterArgv, _ := spawn(t, "e2e-after-restart", 50*time.Millisecond)
	time.Sleep(2 * time.Second)
	p.stopCollector(c)
	t.Logf("load: %s", strings.TrimSpace(p.load()))
	led := p.checkLedger()
	p.checkExecs(map[int][]byte{afterPid: afterArgv})

	type gapRow struct {
		Seq      int64
		From, To time.Time
		Reason   string
	}
	var gaps []gapRow
	testutil.EachRow(t, p.db, func(row testutil.Row) {
		var g gapRow
		var reason []byte
		row.Scan(&g.Seq, &g.From, &g.To, &reason)
		g.Reason = string(reason)
		gaps = append(gaps, g)
	}, `SELECT s.seq, g.from_ts, g.to_ts, g.reason FROM gaps g JOIN segments s USING (segment_id)
		WHERE g.host_id = ? AND g.source = 'collector' ORDER BY s.seq`, p.hostID)
	if len(gaps) != 1 {
		t.Fatalf("collector gap rows: %+v, want exactly one (the restart)", gaps)
	}
	g := gaps[0]
	t.Logf("gap in segment seq %d of %d: %s → %s: %s", g.Seq, len(led), g.From.Format(time.RFC3339Nano), g.To.Format(time.RFC3339Nano), g.Reason)
	if !strings.HasPrefix(g.Reason, "unclean stop") {
		t.Errorf("gap reason %q, want an unclean stop", g.Reason)
	}
	if g.Seq < 2 {
		t.Errorf("gap in segment seq %d: want a segment after those sealed before the kill", g.Seq)
	}
	if g.To.Before(killedAt) || g.From.After(killedAt) {
		t.Errorf("gap %v → %v does not cover the kill at %v", g.From, g.To, killedAt)
	}
	// The process that ran just before the kill is either recorded, or
	// inside the gap: never silently lost.
	var n int
	if err := p.db.QueryRow(`SELECT COUNT(*) FROM proc_events WHERE host_id = ? AND pid = ? AND event = 'exec' AND argv = ?`,
		p.hostID, lostPid, lostArgv).Scan(&n); err != nil {
		t.Fatal(err)
	}
	switch {
	case n == 1:
		t.Logf("the exec before the kill was sealed in time")
	case n == 0 && !lostAt.Before(g.From) && !lostAt.After(g.To):
		t.Logf("the exec before the kill was lost, inside the gap")
	default:
		t.Errorf("exec before the kill (pid %d at %v): %d rows, and the gap %v → %v does not cover it", lostPid, lostAt, n, g.From, g.To)
	}
}

// TestServerOutage stops the receiver while the collector records for 10 s,
// starts it again, and checks that every segment arrives and loads once.
func TestServerOutage(t *testing.T) {
	p := newPipeline(t)
	c := p.startCollector("--segment-age", "1s")
	testutil.WaitEvery(t, 30*time.Second, 100*time.Millisecond, "the first upload", func() bool { return len(p.inbox()) >= 1 })
	addr := p.addr
	p.stopServe()
	down := time.Now()

	want := map[int][]byte{}
	for i := 0; time.Since(down) < 10*time.Second; i++ {
		pid, argv, _ := spawn(t, fmt.Sprintf("e2e-outage-%d", i), 100*time.Millisecond)
		want[pid] = argv
		time.Sleep(100 * time.Millisecond)
	}
	backlog := len(p.spooled())
	t.Logf("server down %v: %d processes spawned, %d segments waiting in the spool", time.Since(down).Round(time.Millisecond), len(want), backlog)
	if backlog < 5 {
		t.Errorf("only %d segments waiting after 10 s of outage with 1 s segments", backlog)
	}

	p.startServe(addr)
	up := time.Now()
	testutil.WaitEvery(t, 90*time.Second, 200*time.Millisecond, "the spool backlog to drain", func() bool { return len(p.spooled()) == 0 })
	t.Logf("backlog drained %v after the server came back", time.Since(up).Round(time.Millisecond))
	p.stopCollector(c)
	if len(p.spooled()) > 0 {
		// Reported above as an error. The segments are not lost: the next
		// start pushes them. Do that, so that the rest of the test checks
		// that nothing else is missing.
		t.Log("starting the collector again to push what the stop left in the spool")
		c = p.startCollector("--segment-age", "1s")
		testutil.WaitEvery(t, 30*time.Second, 200*time.Millisecond, "the spool to drain", func() bool { return len(p.spooled()) == 0 })
		p.stopCollector(c)
	}
	t.Logf("load: %s", strings.TrimSpace(p.load()))
	led := p.checkLedger()
	t.Logf("ledger: %d segments, seqs 1..%d, chain intact", len(led), led[len(led)-1].Seq)
	p.checkExecs(want)
}
