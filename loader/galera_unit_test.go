package loader

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"

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
		{wrap(&mysql.MySQLError{Number: 1180, Message: "Got error 6 \"No such device or address\" during COMMIT; Error while appending streaming replication fragment(provider status: Not connected to Primary Component)"}), true},
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
