//go:build !linux

package daemon

import "syscall"

// Credential is the account a program runs as.
type Credential struct{ UID, GID uint32 }

// Attr returns the process attributes of a program. Outside Linux there is
// no parent-death signal, and programs run as the caller's account.
func Attr(as *Credential) *syscall.SysProcAttr { return nil }
