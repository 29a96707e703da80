// Package logins records login, logout and failed-login records from wtmp
// and btmp (the glibc `struct utmp` files) as login rows. Records are parsed
// byte-exactly (384 bytes each, the Linux x86-64/arm64 layout) and read when
// a file changes (inotify on its directory, with a slow poll behind it).
// A rotated file (new inode) is read to its end through the descriptor still
// open, then the new file from its start; a truncated file (size below what
// was read) loses whatever was appended and truncated between two reads: a
// gap row says so. utmp (/run/utmp) is not read: it holds the current
// sessions, whose login and logout records wtmp already has.
package logins
