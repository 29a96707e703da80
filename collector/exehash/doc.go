// Package exehash records the SHA-256 of every executed file (the exe table)
// off the hot path. The fanotify reader hands each FAN_OPEN_EXEC over as a
// descriptor opened by the event's file handle (so a file deleted right
// after its exec is still read while its inode lives) or, failing that, the
// hasher opens /proc/PID/exe. The descriptor is fstat'ed at once and looked
// up by file identity (device, inode, size, mtime, ctime): a known identity
// only counts the exec, so a binary run 10,000 times is hashed once. A new
// identity is queued for a worker that hashes it under a CPU budget
// (fraction of one CPU, measured in thread CPU time) and sends one exe row;
// while the identity keeps being executed, a row per refresh interval
// carries the later last_ts and count. Files over a size limit, changed
// while read or unreadable get a row without a hash and a skip reason;
// execs that could not be looked at at all (queue full, nothing to open)
// are counted and written as gap rows with source exe.
package exehash
