package daemon

import "syscall"

// Credential is the account a program runs as.
type Credential struct{ UID, GID uint32 }

// Attr returns the process attributes of a program that must not outlive
// the thread that starts it: the kernel sends it SIGTERM when that thread
// ends. With as, it runs under that account; the credentials are set before
// the parent-death signal, so the signal survives the change (a program that
// changes its own credentials, as mariadbd --user does, loses it).
func Attr(as *Credential) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if as != nil {
		a.Credential = &syscall.Credential{Uid: as.UID, Gid: as.GID}
	}
	return a
}
