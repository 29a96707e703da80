package testutil

import (
	"fmt"
	"strconv"
	"strings"
)

// Cap is a Linux capability number, as in capabilities(7) and the CAP_*
// constants of golang.org/x/sys/unix.
type Cap uint

// The capabilities pofr's tests ask for. Any other number works as Cap(n).
const (
	CapChown          Cap = 0
	CapDACOverride    Cap = 1
	CapDACReadSearch  Cap = 2
	CapKill           Cap = 5
	CapSetGID         Cap = 6
	CapSetUID         Cap = 7
	CapNetBindService Cap = 10
	CapNetAdmin       Cap = 12
	CapNetRaw         Cap = 13
	CapSysChroot      Cap = 18
	CapSysPtrace      Cap = 19
	CapSysAdmin       Cap = 21
	CapSysNice        Cap = 23
	CapSysResource    Cap = 24
	CapAuditWrite     Cap = 29
	CapAuditControl   Cap = 30
	CapAuditRead      Cap = 37
)

var capNames = map[Cap]string{
	CapChown:          "CAP_CHOWN",
	CapDACOverride:    "CAP_DAC_OVERRIDE",
	CapDACReadSearch:  "CAP_DAC_READ_SEARCH",
	CapKill:           "CAP_KILL",
	CapSetGID:         "CAP_SETGID",
	CapSetUID:         "CAP_SETUID",
	CapNetBindService: "CAP_NET_BIND_SERVICE",
	CapNetAdmin:       "CAP_NET_ADMIN",
	CapNetRaw:         "CAP_NET_RAW",
	CapSysChroot:      "CAP_SYS_CHROOT",
	CapSysPtrace:      "CAP_SYS_PTRACE",
	CapSysAdmin:       "CAP_SYS_ADMIN",
	CapSysNice:        "CAP_SYS_NICE",
	CapSysResource:    "CAP_SYS_RESOURCE",
	CapAuditWrite:     "CAP_AUDIT_WRITE",
	CapAuditControl:   "CAP_AUDIT_CONTROL",
	CapAuditRead:      "CAP_AUDIT_READ",
}

// String returns the capability's name, such as "CAP_NET_ADMIN".
func (c Cap) String() string {
	if n, ok := capNames[c]; ok {
		return n
	}
	return fmt.Sprintf("capability %d", uint(c))
}

// parseCapEff returns the CapEff mask from the text of /proc/PID/status.
func parseCapEff(status string) (uint64, error) {
	for line := range strings.Lines(status) {
		v, ok := strings.CutPrefix(line, "CapEff:")
		if !ok {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return 0, fmt.Errorf("parse CapEff %q: %w", strings.TrimSpace(v), err)
		}
		return mask, nil
	}
	return 0, fmt.Errorf("no CapEff line")
}
