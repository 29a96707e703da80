package loader

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/pofr/pofr/internal/servertest"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/internal/testutil"
)

func TestMain(m *testing.M) {
	if os.Getenv("POFR_LOADER_CHILD") != "" {
		os.Exit(childMain())
	}
	testutil.Main(m)
}

// childMain is the loader run as a subprocess by TestKill9: one pass over
// POFR_LOADER_STATE into POFR_LOADER_DSN.
func childMain() int {
	l, err := New(Options{DSN: os.Getenv("POFR_LOADER_DSN"), StateDir: statedir.Dir(os.Getenv("POFR_LOADER_STATE")), Workers: 2})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer l.Close()
	s, err := l.Run(context.Background())
	fmt.Println(s)
	// Its own peak RSS: the rusage of a child counts the parent's (the
	// exec'd process inherits the high-water mark of the mm it replaced).
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "VmHWM:") {
				fmt.Println(line)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// newDB returns a fresh database with the schema applied and today's
// partitions, and its DSN.
func newDB(t testing.TB) (*sql.DB, string) {
	t.Helper()
	return servertest.NewDB(t, OpenDB)
}
