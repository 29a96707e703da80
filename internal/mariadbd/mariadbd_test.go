package mariadbd_test

import (
	"context"
	"database/sql"
	"os"
	"testing"
	"time"

	"github.com/pofr/pofr/internal/mariadbd"
	"github.com/pofr/pofr/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// TestStartWithoutNetwork starts a server the way make bench does (socket
// only; the TCP one is every service test's, through testutil) and checks
// that it answers, has no TCP port, and that Stop removes its directory.
func TestStartWithoutNetwork(t *testing.T) {
	testutil.RequireTier(t, testutil.TierService)
	if _, _, err := mariadbd.Look(); err != nil {
		testutil.Skip(t, testutil.TierService, err.Error())
	}
	dir, err := os.MkdirTemp("/var/tmp", "pofr-mariadbd-test-")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := mariadbd.Start(ctx, mariadbd.Options{Dir: dir, Settings: []string{"--skip-log-bin", "--innodb-buffer-pool-size=64M"}})
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	db, err := sql.Open("mysql", s.Config("root", "", "").FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	var skip string
	if err := db.QueryRow("SELECT @@skip_networking").Scan(&skip); err != nil || skip != "1" {
		t.Errorf("@@skip_networking = %q, %v; want 1", skip, err)
	}
	db.Close()
	if s.Port != 0 {
		t.Errorf("Port = %d without Options.TCP", s.Port)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the server's directory is still there after Stop: %v", err)
	}
}

// TestGalera starts a 3-node Galera cluster, writes on one node and reads
// the row on the others, then kills a node: the other two stay a primary
// component and keep taking writes.
func TestGalera(t *testing.T) {
	c := testutil.StartGalera(t, "--innodb-buffer-pool-size=64M", "--skip-log-bin")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if len(c.Nodes) != 3 {
		t.Fatalf("%d nodes", len(c.Nodes))
	}
	dbs := make([]*sql.DB, 3)
	for i, s := range c.Nodes {
		if s.Port == 0 {
			t.Errorf("node %d has no TCP port", i+1)
		}
		cfg := s.Config("root", "", "")
		// Every statement waits until the node applied what the cluster
		// committed before it (a DDL on node 1 may not yet be applied on
		// node 2 when node 1 returns).
		cfg.Params = map[string]string{"wsrep_sync_wait": "15"}
		var err error
		if dbs[i], err = sql.Open("mysql", cfg.FormatDSN()); err != nil {
			t.Fatal(err)
		}
		defer dbs[i].Close()
	}
	exec := func(db *sql.DB, q string) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(dbs[0], "CREATE DATABASE g")
	exec(dbs[0], "CREATE TABLE g.t (id INT PRIMARY KEY, v VARCHAR(10))")
	exec(dbs[1], "INSERT INTO g.t VALUES (1, 'one')")
	for i, db := range dbs {
		var v string
		// wsrep_sync_wait: read after every write the cluster has committed.
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.ExecContext(ctx, "SET SESSION wsrep_sync_wait = 1"); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRowContext(ctx, "SELECT v FROM g.t WHERE id = 1").Scan(&v); err != nil || v != "one" {
			t.Errorf("node %d: %q, %v", i+1, v, err)
		}
		conn.Close()
	}
	c.Nodes[2].Kill()
	if err := c.WaitSynced(ctx, 2, time.Minute); err != nil {
		t.Fatal(err)
	}
	exec(dbs[0], "INSERT INTO g.t VALUES (2, 'two')")
	var n int
	if err := dbs[1].QueryRowContext(ctx, "SELECT COUNT(*) FROM g.t").Scan(&n); err != nil || n != 2 {
		t.Errorf("after the kill: %d rows on node 2 (%v), want 2", n, err)
	}
}
