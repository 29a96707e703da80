// Package bench holds the workload generators and the benchmark harness
// behind make bench (cmd/pofr-bench), which measures pofr-collector side by
// side with its peers, in the same run and on the same workloads:
//
//   - Linux audit with an execve rule: Debian's auditd started without
//     systemd (auditd -n, a private configuration, RAW log format), CPU of
//     auditd (all threads) plus the kauditd kernel thread, per exec;
//   - a POFR-style poller ([Poll], pofr-load poll) that walks /proc every
//     0.3 s like POFR's client/scanproc.pl;
//   - pofr-collector, run as a black box (run --standalone) and read back
//     from its spool ([ReadSpool]): "collector" with the profile as given
//     (processes from kernel tracepoint rings), and in the exec storms also
//     "collector-cnproc", the same collector with --no-proc-tracepoints (the
//     cn_proc capture it replaced), beside the cn_proc floor reader, and
//     "collector-nohash", the collector with --no-exe-hash (what executable
//     hashing costs per exec of an already hashed binary).
//
// Then the server side, in a private MariaDB ([StartMariaDB],
// [LoaderBench]): the loader's rows/s with 1, 2 and 4 workers against a
// plain LOAD DATA LOCAL of the same rows in the same run ([MeasureLoad]), and
// exec → queryable latency through the real pipeline on this host
// (pofr-server serve, a token registration, pofr-collector run with the
// profile's default intervals, pofr-server load --watch), from marked execs
// whose exec rows are polled for in SQL.
//
// # Workloads
//
// Each generator is a library function and a subcommand of
// cmd/pofr-load, which the harness runs as a separate process so that the
// workload's processes, sockets and files are told apart by its pid:
//
//   - [RunExec]: fork → exec → reap of /bin/true, one child at a time, at a
//     fixed rate (absolute deadlines) or as fast as possible;
//   - [RunProcs]: processes of chosen lifetimes (0, 1 ms, 5 ms, 50 ms, 1 s)
//     running a static C program built at bench time ([StaticProgram]),
//     each with a [Marker] in its argv;
//   - [RunConns]: TCP and connected UDP over 127.0.0.1 and ::1, held for
//     chosen lifetimes;
//   - [RunFiles]: create, write, rename, read, unlink cycles in a directory.
//
// # Measurement
//
// CPU is the kernel's own accounting: utime+stime of all threads from
// /proc/PID/stat ([ProcFS]) sampled before and after a window, or from
// wait4 for a collector that has exited (so its final seal counts); memory is
// the peak resident set (VmHWM, ru_maxrss). CPU per exec divides by every
// exec the observer saw in the window (other processes on the machine exec
// too), or by the execs spawned if that is larger. Slowdown compares the
// max-rate storm with and without the observer in the same repetition.
//
// # Output
//
// Go benchmark lines ([WriteBench]) that benchstat compares across runs, a
// markdown report ([WriteMarkdown]) and one PASS / MISS / FAIL / SKIP line
// per threshold ([Check]). The seed's budget (1 core, 400 MB) FAILs the run;
// the project's targets MISS visibly without failing it.
package bench
