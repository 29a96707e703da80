package custody_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/pofr/pofr/internal/servertest"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/internal/testutil"
	"github.com/pofr/pofr/loader"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// newDB returns a fresh database with the schema applied and today's
// partitions, and its DSN.
func newDB(t testing.TB) (*sql.DB, string) {
	t.Helper()
	return servertest.NewDB(t, loader.OpenDB)
}

// loadedHosts returns a fresh database, its DSN and a fixture in which each
// of hosts sealed n segments of rows busy rows, all loaded by a real pass.
func loadedHosts(t testing.TB, n, rows int, hosts ...string) (*sql.DB, string, *servertest.Fixture) {
	t.Helper()
	db, dsn := newDB(t)
	f := servertest.NewFixture(t, hosts...)
	for _, h := range hosts {
		for range n {
			f.Seal(h, servertest.BusyFill(rows))
		}
	}
	if s := run(t, db, f.State, 2); s.Loaded != n*len(hosts) {
		t.Fatalf("run: %s, want %d loaded", s, n*len(hosts))
	}
	return db, dsn, f
}

// run is one load pass over state: the custody tests audit, prune and purge
// what a real pass took in.
func run(t testing.TB, db *sql.DB, state statedir.Dir, workers int) loader.Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := loader.Once(ctx, loader.Options{DB: db, StateDir: state, Workers: workers})
	if err != nil {
		t.Fatalf("run: %v (summary %s)", err, s)
	}
	return s
}
