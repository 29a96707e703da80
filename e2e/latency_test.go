package e2e

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// latencyExecs is how many execs TestLatency times.
const latencyExecs = 20

// TestLatency measures how long an exec takes to become queryable in
// MariaDB with the default profile (15 s segments, upload every 5 s) and
// `pofr-server load --watch 5s`: from the start of the process to the first
// poll (every 100 ms) that finds its exec row. It logs p50/p99 and asserts
// nothing about time, only that every exec arrives.
func TestLatency(t *testing.T) {
	p := newPipeline(t)
	c := p.startCollector()
	const watch = "5s"
	loader := p.start("load-watch", p.server, "load", "--watch", watch, "--state-dir", p.path("server"),
		"--dsn-file", p.dsnFile, "--no-progress")

	type sample struct {
		started time.Time
		latency time.Duration
	}
	samples := map[int]*sample{}
	spawned := make(chan struct {
		pid     int
		started time.Time
	}, latencyExecs)
	spawnErr := make(chan string, 1)
	go func() {
		defer close(spawned)
		for i := range latencyExecs {
			// Spread the execs over the segment age so that they land at
			// every phase of the seal and upload cycles.
			time.Sleep(time.Duration(500+rand.IntN(1000)) * time.Millisecond)
			pid, _, started, err := spawnNoFatal(fmt.Sprintf("e2e-latency-%d", i), 20*time.Millisecond)
			if err != nil {
				spawnErr <- err.Error()
				return
			}
			spawned <- struct {
				pid     int
				started time.Time
			}{pid, started}
		}
	}()

	deadline := time.Now().Add(3 * time.Minute)
	open := true
	for found := 0; open || found < len(samples); {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d execs queryable before the deadline", found, len(samples))
		}
		select {
		case msg := <-spawnErr:
			t.Fatal(msg)
		default:
		}
		for drained := false; !drained; {
			select {
			case s, ok := <-spawned:
				if !ok {
					open, drained = false, true
					break
				}
				samples[s.pid] = &sample{started: s.started}
			default:
				drained = true
			}
		}
		var waiting []string
		for pid, s := range samples {
			if s.latency == 0 {
				waiting = append(waiting, strconv.Itoa(pid))
			}
		}
		if len(waiting) > 0 {
			rows, err := p.db.Query(`SELECT DISTINCT pid FROM proc_events WHERE host_id = ? AND event = 'exec' AND pid IN (`+
				strings.Join(waiting, ",")+`)`, p.hostID)
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			for rows.Next() {
				var pid int
				if err := rows.Scan(&pid); err != nil {
					t.Fatal(err)
				}
				samples[pid].latency = now.Sub(samples[pid].started)
				found++
			}
			rows.Close()
		}
		time.Sleep(100 * time.Millisecond)
	}

	var lat []time.Duration
	for _, s := range samples {
		lat = append(lat, s.latency)
	}
	slices.Sort(lat)
	var sum time.Duration
	for _, l := range lat {
		sum += l
	}
	r := func(d time.Duration) time.Duration { return d.Round(100 * time.Millisecond) }
	t.Logf("exec → queryable over %d execs (default profile: segment age 15 s, upload every 5 s; load --watch %s): "+
		"p50 %v, p99 %v, min %v, mean %v, max %v",
		len(lat), watch, r(percentile(lat, 50)), r(percentile(lat, 99)), r(lat[0]), r(sum/time.Duration(len(lat))), r(lat[len(lat)-1]))

	if err := loader.stop(syscall.SIGTERM, 30*time.Second); err != nil {
		t.Errorf("stop pofr-server load --watch: %v\n%s", err, loader.output())
	}
	p.stopCollector(c)
	p.load()
	p.checkLedger()
}

// percentile returns the nearest-rank percentile q of sorted.
func percentile(sorted []time.Duration, q int) time.Duration {
	i := (q*len(sorted)+99)/100 - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
