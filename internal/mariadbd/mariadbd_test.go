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
