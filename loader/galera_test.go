package loader

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/mariadbd"
	"github.com/pofr/pofr/internal/servertest"
	"github.com/pofr/pofr/internal/testutil"
	"github.com/pofr/pofr/schema"
)

// galeraShard starts a 3-node Galera cluster with binlog_row_image=NOBLOB
// and the schema applied through node 1, and returns it with the loader
// DSN of each node.
func galeraShard(t *testing.T) (*mariadbd.Cluster, []string) {
	t.Helper()
	c := testutil.StartGalera(t, "--skip-name-resolve", "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
		"--innodb-buffer-pool-size=128M", "--innodb-flush-log-at-trx-commit=2", "--skip-log-bin", "--binlog-row-image=NOBLOB")
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	root, err := sql.Open("mysql", c.Nodes[0].Config("root", "", "").FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if _, err := root.ExecContext(ctx, "CREATE DATABASE pofr"); err != nil {
		t.Fatal(err)
	}
	var dsns []string
	for _, s := range c.Nodes {
		dsns = append(dsns, s.Config("root", "", "pofr").FormatDSN())
	}
	db, err := OpenDB(dsns[0])
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := schema.Apply(ctx, db); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := schema.EnsurePartitions(ctx, db, now.AddDate(0, 0, -1), now.AddDate(0, 0, 2)); err != nil {
		t.Fatal(err)
	}
	return c, dsns
}

// fullRowImageQuarantines shows what the check prevents: past it, a
// segment with a non-UTF-8 argv is rejected with warning 1300 under
// binlog_row_image=FULL.
func fullRowImageQuarantines(t *testing.T, dsn string) {
	t.Helper()
	db := openNode(t, dsn)
	l, w := newTestLoader2(t, db)
	defer l.Close()
	defer w.close()
	procs, files, socks, gaps, accts := servertest.HostileRows(servertest.HostileBase())
	seg := memSegment("full-image", 1, "", procs, files, socks, gaps, accts)
	defer seg.release()
	_, err := w.commit(t.Context(), job{host: "full-image", name: "x"}, seg, 1, time.Now())
	if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "1300") {
		t.Errorf("commit under FULL row images: %v; want ErrRejected with warning 1300", err)
	}
}

// syncRead adds wsrep_sync_wait=1 to a DSN: reads wait until the node has
// applied every write the cluster committed before.
func syncRead(dsn string) string {
	if strings.Contains(dsn, "?") {
		return dsn + "&wsrep_sync_wait=1"
	}
	return dsn + "?wsrep_sync_wait=1"
}

// openNode opens a node's DSN for the test's own queries.
func openNode(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := OpenDB(dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestGalera runs on one 3-node Galera shard: the warning case (hostile,
// non-UTF-8 argv loads without quarantine under NOBLOB and arrives intact
// on the other nodes; the start-up check refuses FULL row images and small
// write set limits with a clear message), then a load during which the
// node the loader writes to is killed: the loader fails over to the next
// node, and every segment is in the database exactly once.
func TestGalera(t *testing.T) {
	c, dsns := galeraShard(t)
	ctx := t.Context()
	node1 := openNode(t, dsns[0])

	t.Run("hostile argv under NOBLOB", func(t *testing.T) {
		f := servertest.NewFixture(t, "h1")
		procs, files, socks, gaps, accts := servertest.HostileRows(servertest.HostileBase())
		paths := f.Seal("h1", func(s event.Sink) { event.AppendAll(s, procs, files, socks, gaps, accts) })
		s := run(t, node1, f.State, 2)
		if s.Loaded != len(paths) || s.Quarantined != 0 || s.Failed != 0 {
			t.Fatalf("summary %s, want %d loaded", s, len(paths))
		}
		// Replicated byte-exact: node 3 reads what node 1 took.
		want := readProcs(t, node1, "")
		node3 := openNode(t, syncRead(dsns[2]))
		if got := readProcs(t, node3, ""); len(got) != len(want) || len(want) == 0 {
			t.Fatalf("node 3 has %d proc rows, node 1 %d", len(got), len(want))
		}
		var c1, c3 string
		q := "SELECT SHA2(GROUP_CONCAT(HEX(argv), HEX(cmdline) ORDER BY segment_id, row_no), 256) FROM proc_events"
		if err := node1.QueryRowContext(ctx, q).Scan(&c1); err != nil {
			t.Fatal(err)
		}
		if err := node3.QueryRowContext(ctx, q).Scan(&c3); err != nil || c1 != c3 {
			t.Errorf("argv checksum: node 1 %s, node 3 %s (%v)", c1, c3, err)
		}
	})

	t.Run("refuse unsafe settings", func(t *testing.T) {
		for _, tc := range []struct{ set, reset, want string }{
			{"binlog_row_image = 'FULL'", "binlog_row_image = 'NOBLOB'", "binlog_row_image is FULL: set binlog_row_image=NOBLOB"},
			{"wsrep_max_ws_rows = 1000", "wsrep_max_ws_rows = 0", "wsrep_max_ws_rows is 1000"},
			{"wsrep_max_ws_size = 1048576", "wsrep_max_ws_size = 2147483647", "wsrep_max_ws_size is 1048576"},
		} {
			if _, err := node1.ExecContext(ctx, "SET GLOBAL "+tc.set); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(tc.set, "FULL") {
				fullRowImageQuarantines(t, dsns[0])
			}
			f := servertest.NewFixture(t, "h2")
			sealMany(f, "h2", 1, 100)
			l, err := New(Options{DSN: dsns[0], StateDir: f.State, Workers: 1})
			if err != nil {
				t.Fatal(err)
			}
			// load --watch stops too: the settings will not change by
			// themselves.
			wctx, cancel := context.WithTimeout(ctx, time.Minute)
			s, err := l.Watch(wctx, 100*time.Millisecond)
			cancel()
			l.Close()
			if _, rerr := node1.ExecContext(ctx, "SET GLOBAL "+tc.reset); rerr != nil {
				t.Fatal(rerr)
			}
			if !errors.Is(err, ErrGaleraConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("SET GLOBAL %s: Run = %v, want ErrGaleraConfig with %q", tc.set, err, tc.want)
			}
			if s.Loaded != 0 || s.Quarantined != 0 || len(f.Files("inbox", "h2")) != 1 {
				t.Errorf("SET GLOBAL %s: summary %s, inbox %v: the refused loader touched a segment", tc.set, s, f.Files("inbox", "h2"))
			}
			t.Logf("refused: %v", err)
		}
	})

	t.Run("writer killed during a load", func(t *testing.T) {
		f := servertest.NewFixture(t, "k1", "k2")
		sealMany(f, "k1", 20, 2000)
		sealMany(f, "k2", 20, 2000)
		node2 := openNode(t, dsns[1])
		l, _ := killedLoad(t, f, dsns, node2, func(atKill int, _ *failoverLog) {
			killed := time.Now()
			c.Nodes[0].Kill()
			// The stall: from the kill to the next segment committed
			// through node 2 (reported, not asserted: the machine is
			// shared).
			var stall time.Duration
			for time.Since(killed) < time.Minute {
				var n int
				if err := node2.QueryRowContext(ctx, "SELECT COUNT(*) FROM segments").Scan(&n); err == nil && n > atKill+2 {
					stall = time.Since(killed)
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			t.Logf("stall after the kill: %v until a segment beyond those in flight committed on node 2", stall.Round(time.Millisecond))
		})
		if l.cur.Load() == 0 {
			t.Error("the loader still uses the killed node")
		}
		survivorsHoldAll(t, f, dsns[1:], "k1", "k2")
	})

	t.Run("no primary component during a load", func(t *testing.T) {
		// Node 2 is cut off from every other running node: alone it is a
		// minority, out of the primary component like each of the
		// others, and every statement there or elsewhere fails (1180 for
		// a commit, 1047 after) until the partition ends and the nodes
		// merge back into one primary component. The loader knows all
		// three nodes (node 1 is dead after the case above).
		f := servertest.NewFixture(t, "p1", "p2")
		sealMany(f, "p1", 20, 2000)
		sealMany(f, "p2", 20, 2000)
		node2 := openNode(t, dsns[1])
		var others []*sql.DB
		running := 1
		for i, s := range c.Nodes {
			if i != 1 && s.Running() {
				others = append(others, openNode(t, dsns[i]))
				running++
			}
		}
		isolate := func(on int) {
			for _, db := range others {
				if _, err := db.ExecContext(ctx, fmt.Sprintf("SET GLOBAL wsrep_provider_options = 'gmcast.isolate=%d'", on)); err != nil {
					t.Error(err)
				}
			}
		}
		killedLoad(t, f, dsns, node2, func(_ int, failovers *failoverLog) {
			before := failovers.n()
			isolate(1)
			partitioned := time.Now()
			defer func() {
				isolate(0)
				t.Logf("partition ended after %v", time.Since(partitioned).Round(time.Millisecond))
			}()
			// Until the loader has moved on twice since: the node it
			// failed over to was out of the primary component as well
			// (before the fix, that failed the segment).
			testutil.WaitFor(t, 2*time.Minute, "two failovers in the partition", func() bool { return failovers.n() >= before+2 })
		})
		if err := c.WaitSynced(ctx, running, time.Minute); err != nil {
			t.Fatal(err)
		}
		var live []string
		for i, s := range c.Nodes {
			if s.Running() {
				live = append(live, dsns[i])
			}
		}
		survivorsHoldAll(t, f, live, "p1", "p2")
	})
}

// TestGaleraReplicaKilled: a node the loader does not write to (node 3)
// is killed during a load; the loader stays on node 1, unless node 1
// itself said it was out of the primary component (the survivors pass
// through a non-primary view while they evict node 3: a commit on node 1
// then gets 1180 "Not connected to Primary Component"), and every segment
// is on both survivors exactly once with its rows. (TestGalera kills the
// writer; after that its cluster has two nodes, too few to lose another,
// hence a cluster of its own.)
func TestGaleraReplicaKilled(t *testing.T) {
	c, dsns := galeraShard(t)
	f := servertest.NewFixture(t, "r1", "r2")
	sealMany(f, "r1", 20, 2000)
	sealMany(f, "r2", 20, 2000)
	l, failovers := killedLoad(t, f, dsns, openNode(t, dsns[0]), func(int, *failoverLog) { c.Nodes[2].Kill() })
	for _, cause := range failovers.causes() {
		if !strings.Contains(cause, "Primary Component") && !strings.Contains(cause, "WSREP has not yet prepared") {
			t.Errorf("the loader left a live node 1 when a replica died: %s", cause)
		}
	}
	if n := l.cur.Load(); n != 0 {
		t.Logf("the loader moved to node %d: node 1 was out of the primary component for a moment (%q)", n+1, failovers.causes())
	}
	survivorsHoldAll(t, f, dsns[:2], "r1", "r2")
}

// killedLoad runs one pass of a 2-worker loader over f's inboxes on the
// cluster of dsns (node 1 first, the others its failover nodes) and calls
// kill with the ledger's size and the loader's failovers once db (a node
// that survives) has seen 4 segments committed; the pass must end with
// every segment loaded and the inboxes empty.
func killedLoad(t *testing.T, f *servertest.Fixture, dsns []string, db *sql.DB, kill func(atKill int, failovers *failoverLog)) (*Loader, *failoverLog) {
	t.Helper()
	ctx := t.Context()
	var before int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM segments").Scan(&before); err != nil {
		t.Fatal(err)
	}
	failovers := &failoverLog{Handler: slog.NewTextHandler(t.Output(), nil), log: new(failovers)}
	l, err := New(Options{DSN: dsns[0], FailoverDSNs: dsns[1:], StateDir: f.State, Workers: 2, Log: slog.New(failovers)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var (
		wg   sync.WaitGroup
		sum  Summary
		rerr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		rctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		sum, rerr = l.Run(rctx)
	}()
	deadline := time.Now().Add(2 * time.Minute)
	var atKill int
	for {
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM segments").Scan(&atKill); err != nil {
			t.Fatal(err)
		}
		if atKill-before >= 4 {
			break
		}
		if time.Now().After(deadline) {
			wg.Wait()
			t.Fatal("no segments loaded after 2 minutes")
		}
		time.Sleep(20 * time.Millisecond)
	}
	killed := time.Now()
	kill(atKill, failovers)
	wg.Wait()
	t.Logf("killed %v before the end of the pass; summary %s; err %v", time.Since(killed).Round(time.Millisecond), sum, rerr)
	if rerr != nil || sum.Failed != 0 || sum.Quarantined != 0 {
		t.Errorf("pass across the kill: %s, %v; want every segment loaded or skipped", sum, rerr)
	}
	var left int
	for h := range f.Keys {
		left += len(f.Files("inbox", h))
	}
	if left != 0 {
		t.Errorf("%d segments left in the inboxes", left)
	}
	return l, failovers
}

// failoverLog writes the loader's log to the test's output and keeps the
// cause of each of its moves to the next node.
type failoverLog struct {
	slog.Handler
	log *failovers
}

type failovers struct {
	mu     sync.Mutex
	causes []string
}

func (h *failoverLog) Handle(ctx context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "database node lost; failing over") {
		var cause string
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "err" {
				cause = a.Value.String()
			}
			return true
		})
		h.log.mu.Lock()
		h.log.causes = append(h.log.causes, cause)
		h.log.mu.Unlock()
	}
	return h.Handler.Handle(ctx, r)
}

func (h *failoverLog) WithAttrs(a []slog.Attr) slog.Handler {
	return &failoverLog{h.Handler.WithAttrs(a), h.log}
}

func (h *failoverLog) WithGroup(g string) slog.Handler {
	return &failoverLog{h.Handler.WithGroup(g), h.log}
}

// n is the number of moves so far.
func (h *failoverLog) n() int { return len(h.causes()) }

// causes are the errors that made the loader move, in order.
func (h *failoverLog) causes() []string {
	h.log.mu.Lock()
	defer h.log.mu.Unlock()
	return slices.Clone(h.log.causes)
}

// survivorsHoldAll checks, on every node of dsns (reading after the
// cluster's last commit), that each of hosts has exactly its archived
// segments in the ledger and their rows (the database may hold other
// hosts' rows too).
func survivorsHoldAll(t *testing.T, f *servertest.Fixture, dsns []string, hosts ...string) {
	t.Helper()
	ctx := t.Context()
	for i, dsn := range dsns {
		db := openNode(t, syncRead(dsn))
		t.Run(fmt.Sprintf("survivor%d", i+1), func(t *testing.T) {
			checkConsistent(t, db)
			for _, h := range hosts {
				var segs int
				if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM segments WHERE host_id = ?", h).Scan(&segs); err != nil {
					t.Fatal(err)
				}
				if segs != len(f.Files("archive", h)) {
					t.Errorf("%s: ledger %d segments, archive %d files", h, segs, len(f.Files("archive", h)))
				}
				want := f.ArchivedRows(h)
				for _, ti := range tableInfos {
					var n int64
					if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+ti.sqlName+" WHERE host_id = ?", h).Scan(&n); err != nil {
						t.Fatal(err)
					}
					if n != want[ti.table] {
						t.Errorf("%s: %s has %d rows, the archived manifests %d", h, ti.sqlName, n, want[ti.table])
					}
				}
			}
		})
	}
}
