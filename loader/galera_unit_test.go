package loader

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// TestNodeLost: the errors of a node that died or left the primary
// component fail over; errors of the segment or the transaction do not.
func TestNodeLost(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("load proc_events: %w", err) }
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{wrap(&mysql.MySQLError{Number: 1047, Message: "WSREP has not yet prepared node for application use"}), true},
		// A commit on a node that left the primary component (MariaDB 10.11.19,
		// galera-4 26.4.23; TestGalera reaches it).
		{wrap(&mysql.MySQLError{Number: 1180, Message: "Error while appending streaming replication fragment(provider status: Not connected to Primary Component)"}), true},
		{wrap(&mysql.MySQLError{Number: 1180, Message: "Got error 1 \"Operation not permitted\" during COMMIT"}), false},
		{wrap(&mysql.MySQLError{Number: 1053, Message: "Server shutdown in progress"}), true},
		{wrap(mysql.ErrInvalidConn), true},
		{wrap(driver.ErrBadConn), true},
		{wrap(&net.OpError{Op: "dial", Net: "unix", Err: syscall.ECONNREFUSED}), true},
		{wrap(syscall.ECONNRESET), true},
		{wrap(&mysql.MySQLError{Number: 1213, Message: "Deadlock found when trying to get lock"}), false},
		{wrap(&mysql.MySQLError{Number: 1062, Message: "Duplicate entry"}), false},
		{wrap(&mysql.MySQLError{Number: 1366, Message: "Incorrect string value"}), false},
		{wrap(ErrRejected), false},
		{errors.New("decode: corrupt"), false},
	} {
		if got := nodeLost(tc.err); got != tc.want {
			t.Errorf("nodeLost(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestAwaitNode: the nodes are tried again and again, with a pause from
// the second try on, while they have been lost for less than FailoverWait;
// past it each is tried once more; a stopped pass stops the wait; a node
// that answers resets the clock.
func TestAwaitNode(t *testing.T) {
	l := &Loader{dbs: make([]*sql.DB, 3), log: slog.New(slog.DiscardHandler)}
	cause := &mysql.MySQLError{Number: 1047, Message: "WSREP has not yet prepared node for application use"}
	for try := 1; try <= 3; try++ {
		if err := l.awaitNode(t.Context(), try, cause); err != nil {
			t.Fatalf("try %d at the start of an outage: %v", try, err)
		}
	}
	if l.lostAt.Load() == 0 {
		t.Fatal("the outage's start is not recorded")
	}
	l.lostAt.Store(time.Now().Add(-FailoverWait - time.Second).UnixNano())
	for try := 1; try <= 2; try++ {
		if err := l.awaitNode(t.Context(), try, cause); err != nil {
			t.Errorf("try %d of 3 nodes after FailoverWait: %v; want every node tried once", try, err)
		}
	}
	err := l.awaitNode(t.Context(), 3, cause)
	if err == nil || !errors.Is(err, error(cause)) || !strings.Contains(err.Error(), "no database node in the primary component for 1m") {
		t.Errorf("third try after FailoverWait: %v; want the outage and its cause", err)
	}
	l.nodeFound()
	if l.lostAt.Load() != 0 {
		t.Error("nodeFound kept the outage")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := l.awaitNode(ctx, 4, cause); !errors.Is(err, context.Canceled) {
		t.Errorf("await in a stopped pass: %v; want context.Canceled", err)
	}
}
