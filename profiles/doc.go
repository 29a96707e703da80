// Package profiles holds pofr's named collection profiles: data files
// (profiles/*.json) embedded in the collector and selected with --profile.
//
// A profile says what to record and how hard to try; flags given to
// 'pofr-collector run' override single values. The shipped profiles:
//
//	default    Most servers. Every process event with argv up to 32 KiB.
//	           Files: exec, write (close after writing), create, delete,
//	           rename; no plain opens (the most frequent event by far);
//	           2 s aggregation; fanotify queue 32768. Every TCP/UDP socket,
//	           dumps every second. Segments of 4 MiB or 15 s.
//	busy-host  Build servers and hosts with thousands of exec/s. argv up to
//	           4 KiB. Files: exec, delete, rename only, 10 s aggregation,
//	           /tmp/ and /var/tmp/ excluded (compiler churn); queue 65536.
//	           TCP only, dumps every 5 s. Larger, older segments.
//	forensic   Honeypots and hosts under investigation: everything. argv up
//	           to 128 KiB. Files: plain opens too (including opens of
//	           directories: an ls shows), 1 s aggregation, queue 65536.
//	           Socket dumps every 250 ms, /proc resync every minute.
//
// # File section
//
// ops chooses the fanotify events: open → FAN_OPEN, exec → FAN_OPEN_EXEC,
// write → FAN_CLOSE_WRITE, create → FAN_CREATE, delete → FAN_DELETE, rename
// → FAN_RENAME (one row with path and new_path). FAN_OPEN_EXEC is read even
// when exec is not recorded, because it gives the process source the exe of
// every exec; directory renames are read always, to keep the path cache
// right. When a process opens a file to execute it, the kernel reports open
// and exec together: that is an exec row, never also an open row.
//
// window is the aggregation window: every access by one process (pid,
// proc_start) to one path with one op within it is one row with the first
// and last time and a count. The kernel already merges an event with an
// identical one still queued, and the collector reads in 10 ms batches, so
// count is the number of accesses the kernel delivered — a lower bound, often
// far below the real number for a tight loop (10,000 opens of one file
// measured here as count 9). fanotify tells which process touched which
// file and when, not how many times.
//
// exclude lists raw byte prefixes of paths never recorded ("/tmp/" drops
// everything below /tmp); the spool and the collector's configuration are
// always excluded, by kernel ignore marks and in user space.
//
// queue_size is the fanotify queue length in events. The kernel takes it from
// the fs.fanotify.max_queued_events sysctl when the group is created (16384
// unless changed); the collector sets the sysctl to queue_size for that moment
// and restores it, so other fanotify users keep their size. 0 keeps the
// kernel's value. A queued event costs roughly 100–300 bytes of kernel memory
// (handle and name), so 65536 events is at most about 20 MB. When the queue
// overflows, the kernel drops events and the collector writes a gap row; raise
// queue_size (or use busy-host's narrower ops) if gaps appear. The queue is
// never unlimited: an unbounded queue would let a local flood pin kernel
// memory through the collector.
//
// # Sock section
//
// dump_interval is the inet_diag dump cadence (owners of sockets come from
// the dumps); udp adds UDP sockets; host_netns_only records the collector's
// own network namespace only. Otherwise (every shipped profile) a collector
// running in the initial network namespace records the sockets of every
// network namespace in use by processes, containers' included, each
// namespace from the census (every 5 s) after its first process appears;
// rows carry the namespace's inode in netns. A collector running inside
// another namespace records that one only: the others belong to the
// initial namespace's collector.
//
// # Cost of the file ops
//
// The file ops decide most of what fanotify costs the host's workloads, and
// most of that is the kernel's (measured with make bench-floors on a 2-core
// VM: tar x of 5,216 small files into tmpfs; docs/design.md has
// the table). Marks alone cost about 2 %. default slowed tar by 10–13 %, of
// which 8–11.5 % any listener of the same events pays; without create (a new
// file then shows only as a write, a new directory or symlink not at all)
// 6.5–8 %; forensic 11–18 % (floor 11–13 %), and its plain opens add 1.3 µs
// to every open(2) of a busy loop; busy-host about 3.4 %. A go build of
// pofr-collector (dependencies recompiled) showed no slowdown with default
// or forensic. Dropping create from default was measured and not done: it
// saves about 4 points and loses mkdir, symlink and "this file is new".
// Write a custom profile (ops without "create", or busy-host's) for hosts
// where file churn dominates.
package profiles
