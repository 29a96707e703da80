package testutil

import (
	"testing"

	"github.com/pofr/pofr/internal/daemon"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. Another
// process may take it before the caller binds it, so servers started on it
// should retry with a new port when the bind fails; StartMariaDB and
// StartSSHD do.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := daemon.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}
