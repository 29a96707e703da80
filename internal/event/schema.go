package event

// The column lists below are the single source of truth for every table: the
// Arrow schema, the Go record mapping and the column documentation all come
// from them. Keep schema/ in step (same names, same meaning).

var procColumns = []column[Proc]{
	tsCol("ts", "When the event happened: ns since the Unix epoch, UTC (kernel event time for cn_proc events; sampling time for snapshot and poll rows).", func(r *Proc) *int64 { return &r.TS }),
	dictStr("event", "fork, exec, exit, uid, gid, sid, comm, ptrace, coredump or snapshot (the process was already running when recording started or resynchronised).", func(r *Proc) *string { return &r.Event }),
	num("pid", int32Type, "Process id (thread group id) in the initial pid namespace.", func(r *Proc) *int32 { return &r.PID }),
	num("tid", int32Type, "Thread id the kernel reported the event for; equals pid unless the event came from a non-leader thread.", func(r *Proc) *int32 { return &r.TID }),
	num("ppid", int32Type, "Parent process id at the time of the event (0 if unknown).", func(r *Proc) *int32 { return &r.PPID }),
	num("proc_start", int64Type, "Start time of the process, ns since boot at clock-tick resolution (as /proc/PID/stat starttime); with boot_id and pid it identifies one process life.", func(r *Proc) *int64 { return &r.ProcStart }),
	optNum("parent_start", int64Type, "proc_start of the parent; null if the parent's start is unknown (flag parent_unknown).", func(r *Proc) *Opt[int64] { return &r.ParentStart }),
	idCol("uid", "Real user id; null if unknown (process gone before it could be read).", func(r *Proc) *uint32 { return &r.UID }),
	idCol("euid", "Effective user id; null if unknown.", func(r *Proc) *uint32 { return &r.EUID }),
	idCol("gid", "Real group id; null if unknown.", func(r *Proc) *uint32 { return &r.GID }),
	idCol("egid", "Effective group id; null if unknown.", func(r *Proc) *uint32 { return &r.EGID }),
	idCol("auid", "Login (audit) user id from /proc/PID/loginuid: who logged in, whatever su/sudo did since; null if unset or unknown.", func(r *Proc) *uint32 { return &r.AUID }),
	idCol("session_id", "Audit session id from /proc/PID/sessionid (exec/snapshot rows) or the new session id (sid rows); null if unset or unknown.", func(r *Proc) *uint32 { return &r.SessionID }),
	dictBin("tty", "Controlling terminal (e.g. pts/0); null if none or unknown.", func(r *Proc) *[]byte { return &r.TTY }),
	dictBin("comm", "Command name (/proc/PID/comm, at most 15 bytes, exact bytes); on comm rows the new name.", func(r *Proc) *[]byte { return &r.Comm }),
	dictBin("exe", "Path of the executable (/proc/PID/exe, or fanotify FAN_OPEN_EXEC when the process was already gone: flag exe_from_fanotify); exact bytes; null if unknown.", func(r *Proc) *[]byte { return &r.Exe }),
	bin("argv", "Arguments exactly as /proc/PID/cmdline: each argument followed by a NUL byte; cut at the configured cap (flag argv_truncated); null if it could not be read.", func(r *Proc) *[]byte { return &r.Argv }),
	dictBin("cwd", "Working directory at exec (/proc/PID/cwd), exact bytes; null if unknown.", func(r *Proc) *[]byte { return &r.Cwd }),
	optNum("exit_code", int32Type, "Exit status (0–255) on exit rows when the process exited normally; null otherwise.", func(r *Proc) *Opt[int32] { return &r.ExitCode }),
	optNum("exit_signal", int32Type, "Signal that killed the process on exit and coredump rows; null if it exited normally or on other rows.", func(r *Proc) *Opt[int32] { return &r.ExitSignal }),
	optNum("tracer_pid", int32Type, "ptrace rows: pid of the tracer that attached, 0 on detach; null on other rows.", func(r *Proc) *Opt[int32] { return &r.TracerPID }),
	dictBin("cgroup", "cgroup v2 path of the process (/proc/PID/cgroup); null if unknown.", func(r *Proc) *[]byte { return &r.Cgroup }),
	dictBin("container_id", "Container id derived from the cgroup path (docker, containerd, podman, …); null if the process is not in a recognised container.", func(r *Proc) *[]byte { return &r.ContainerID }),
	optNum("ns_pid", uint32Type, "Inode of the pid namespace (/proc/PID/ns/pid); null if unknown.", func(r *Proc) *Opt[uint32] { return &r.NSPid }),
	optNum("ns_mnt", uint32Type, "Inode of the mount namespace; null if unknown.", func(r *Proc) *Opt[uint32] { return &r.NSMnt }),
	optNum("ns_net", uint32Type, "Inode of the network namespace; null if unknown.", func(r *Proc) *Opt[uint32] { return &r.NSNet }),
	optNum("ns_user", uint32Type, "Inode of the user namespace; null if unknown.", func(r *Proc) *Opt[uint32] { return &r.NSUser }),
	optNum("ns_uts", uint32Type, "Inode of the UTS namespace; null if unknown.", func(r *Proc) *Opt[uint32] { return &r.NSUts }),
	optNum("ns_ipc", uint32Type, "Inode of the IPC namespace; null if unknown.", func(r *Proc) *Opt[uint32] { return &r.NSIpc }),
	optNum("ns_cgroup", uint32Type, "Inode of the cgroup namespace; null if unknown.", func(r *Proc) *Opt[uint32] { return &r.NSCgroup }),
	num("flags", uint32Type, "Bit set: 1 gone, 2 late_read, 4 argv_truncated, 8 self, 16 poll, 32 thread, 64 exe_from_fanotify, 128 parent_unknown, 256 argv_from_proc (see ProcFlag* in internal/event).", func(r *Proc) *uint32 { return &r.Flags }),
	added(optNum("exe_key", uint64Type, "exec rows: identity of the executed file (the file named by exe), as ExeKey of its device, inode, size, mtime and ctime: the exe table's row of that identity has its SHA-256; null if fanotify did not report the exec (or on other rows). Absent in segments of collectors before it.", func(r *Proc) *Opt[uint64] { return &r.ExeKey })),
}

var fileColumns = []column[File]{
	tsCol("ts", "First access in the aggregation window: ns since the Unix epoch, UTC.", func(r *File) *int64 { return &r.TS }),
	tsCol("last_ts", "Last access in the window (equals ts when count is 1).", func(r *File) *int64 { return &r.LastTS }),
	num("count", uint32Type, "Number of accesses aggregated into this row (the kernel also merges identical queued events, so this is a lower bound).", func(r *File) *uint32 { return &r.Count }),
	num("pid", int32Type, "Process id that made the access.", func(r *File) *int32 { return &r.PID }),
	optNum("proc_start", int64Type, "proc_start of that process (see proc table); null if unknown (flag proc_unknown).", func(r *File) *Opt[int64] { return &r.ProcStart }),
	idCol("uid", "Effective user id of the process at the time; null if unknown.", func(r *File) *uint32 { return &r.UID }),
	dictStr("op", "open, exec, write (closed after writing), create, delete, rename, moved_from, moved_to, or fd (seen open by a /proc/PID/fd scan).", func(r *File) *string { return &r.Op }),
	dictBin("path", "Absolute path, exact bytes; for unresolved rows (flag unresolved) only the name within the directory identified by dev/inode.", func(r *File) *[]byte { return &r.Path }),
	dictBin("new_path", "rename rows: the new path; null otherwise.", func(r *File) *[]byte { return &r.NewPath }),
	optNum("inode", uint64Type, "Inode number of the file (or, for unresolved rows, of its directory); null if unknown.", func(r *File) *Opt[uint64] { return &r.Inode }),
	optNum("dev", uint64Type, "Device number (st_dev, Linux encoding) of the file system; null if unknown.", func(r *File) *Opt[uint64] { return &r.Dev }),
	num("flags", uint32Type, "Bit set: 1 unresolved, 2 self, 4 fallback, 8 dir, 16 proc_unknown (see FileFlag* in internal/event).", func(r *File) *uint32 { return &r.Flags }),
}

var sockColumns = []column[Sock]{
	tsCol("ts", "When the observation was made: destroy notification time for close rows, dump time otherwise; ns since the Unix epoch, UTC.", func(r *Sock) *int64 { return &r.TS }),
	dictStr("event", "listen (a listener first seen), open (a connected socket first seen in a dump) or close (the socket was destroyed).", func(r *Sock) *string { return &r.Event }),
	dictStr("proto", "tcp or udp.", func(r *Sock) *string { return &r.Proto }),
	num("family", uint8Type, "4 for IPv4, 6 for IPv6.", func(r *Sock) *uint8 { return &r.Family }),
	dictStr("state", "TCP state name (ESTABLISHED, LISTEN, CLOSE, …); for UDP ESTABLISHED if connected, CLOSE otherwise.", func(r *Sock) *string { return &r.State }),
	dictStr("direction", "out (we connected), in (accepted on a local listening port) or listen; null if it cannot be told.", func(r *Sock) *string { return &r.Direction }),
	bin("local_addr", "Local address, 4 or 16 bytes in network order (INET6_NTOA in SQL).", func(r *Sock) *[]byte { return &r.LocalAddr }),
	num("local_port", uint16Type, "Local port.", func(r *Sock) *uint16 { return &r.LocalPort }),
	bin("remote_addr", "Remote address, 4 or 16 bytes in network order; all zero for listeners and unconnected UDP.", func(r *Sock) *[]byte { return &r.RemoteAddr }),
	num("remote_port", uint16Type, "Remote port; 0 for listeners and unconnected UDP.", func(r *Sock) *uint16 { return &r.RemotePort }),
	optNum("inode", uint64Type, "Socket inode (socket:[N] in /proc/PID/fd); null if never seen alive in a dump.", func(r *Sock) *Opt[uint64] { return &r.Inode }),
	num("cookie", uint64Type, "Kernel socket cookie: the same value in every dump and in the destroy notification of one socket.", func(r *Sock) *uint64 { return &r.Cookie }),
	idCol("uid", "Owning user id from the dump; null if the socket was never seen alive.", func(r *Sock) *uint32 { return &r.UID }),
	optNum("pid", int32Type, "Owning process id; null if no owner was seen (flag owner_unknown).", func(r *Sock) *Opt[int32] { return &r.PID }),
	optNum("proc_start", int64Type, "proc_start of the owning process; null if unknown.", func(r *Sock) *Opt[int64] { return &r.ProcStart }),
	optNum("netns", uint64Type, "Inode of the network namespace the socket lives in; null if unknown.", func(r *Sock) *Opt[uint64] { return &r.Netns }),
	optNum("bytes_sent", uint64Type, "TCP: bytes sent (tcp_info bytes_sent) at the time of the row; null for UDP or if unknown.", func(r *Sock) *Opt[uint64] { return &r.BytesSent }),
	optNum("bytes_recv", uint64Type, "TCP: bytes received (tcp_info bytes_received); null for UDP or if unknown.", func(r *Sock) *Opt[uint64] { return &r.BytesRecv }),
	optTSCol("first_ts", "When the socket was first seen alive (the open row's ts); close ts − first_ts is a lower bound of its life; null if never seen alive.", func(r *Sock) *Opt[int64] { return &r.FirstTS }),
	num("flags", uint32Type, "Bit set: 1 self, 2 owner_unknown, 4 fallback, 8 from_destroy, 16 vanished, 32 owner_from_listener (see SockFlag* in internal/event).", func(r *Sock) *uint32 { return &r.Flags }),
}

var gapColumns = []column[Gap]{
	tsCol("from_ts", "Start of the incomplete interval: ns since the Unix epoch, UTC.", func(r *Gap) *int64 { return &r.FromTS }),
	tsCol("to_ts", "End of the incomplete interval.", func(r *Gap) *int64 { return &r.ToTS }),
	dictStr("source", "What is incomplete: proc, file, sock, spool (segments evicted by the quota) or collector (not running).", func(r *Gap) *string { return &r.Source }),
	optNum("lost", int64Type, "Number of events (or, for spool, rows) lost; null if unknown.", func(r *Gap) *Opt[int64] { return &r.Lost }),
	dictStr("reason", "Why, in words (e.g. \"ENOBUFS on cn_proc socket\", \"unclean stop\", \"quota eviction of segment 41\").", func(r *Gap) *string { return &r.Reason }),
}

var acctColumns = []column[Account]{
	tsCol("ts", "When the mapping was read: ns since the Unix epoch, UTC.", func(r *Account) *int64 { return &r.TS }),
	dictStr("kind", "user or group.", func(r *Account) *string { return &r.Kind }),
	num("id", uint32Type, "The uid or gid.", func(r *Account) *uint32 { return &r.ID }),
	bin("name", "Its name from /etc/passwd or /etc/group, exact bytes.", func(r *Account) *[]byte { return &r.Name }),
}

var exeColumns = []column[Executable]{
	tsCol("ts", "First exec of this identity the row covers: ns since the Unix epoch, UTC.", func(r *Executable) *int64 { return &r.TS }),
	tsCol("last_ts", "Last exec of this identity before the row was sent (equals ts when count is 1).", func(r *Executable) *int64 { return &r.LastTS }),
	num("count", uint32Type, "Execs of this identity the row covers (FAN_OPEN_EXEC events; an ELF interpreter counts for every program it loads).", func(r *Executable) *uint32 { return &r.Count }),
	num("pid", int32Type, "Process id of the first exec the row covers.", func(r *Executable) *int32 { return &r.PID }),
	num("dev", uint64Type, "Device number (st_dev, Linux encoding) of the file's file system.", func(r *Executable) *uint64 { return &r.Dev }),
	num("inode", uint64Type, "Inode number of the file.", func(r *Executable) *uint64 { return &r.Inode }),
	num("size", int64Type, "Size of the file in bytes (st_size).", func(r *Executable) *int64 { return &r.Size }),
	num("mtime_ns", int64Type, "Modification time of the file (st_mtim), ns since the Unix epoch.", func(r *Executable) *int64 { return &r.MTimeNS }),
	num("ctime_ns", int64Type, "Status change time of the file (st_ctim), ns since the Unix epoch.", func(r *Executable) *int64 { return &r.CTimeNS }),
	bin("sha256", "SHA-256 of the file's bytes (32 bytes); null if skipped (see skip).", func(r *Executable) *[]byte { return &r.SHA256 }),
	dictStr("how", "How the file was opened for hashing: handle (open_by_handle_at of the fanotify file handle) or proc (/proc/PID/exe).", func(r *Executable) *string { return &r.How }),
	dictStr("skip", "Why there is no hash: too_large (over the size limit), changed (size, mtime or ctime changed while it was read) or read_error; null when hashed.", func(r *Executable) *string { return &r.Skip }),
	dictBin("path", "Path of the file at the first exec (fanotify's resolution), exact bytes; null if unknown.", func(r *Executable) *[]byte { return &r.Path }),
}

var dnsColumns = []column[DNS]{
	tsCol("ts", "When the packet was read from the packet socket: ns since the Unix epoch, UTC.", func(r *DNS) *int64 { return &r.TS }),
	dictStr("event", "query (QR bit clear) or response (QR bit set).", func(r *DNS) *string { return &r.Event }),
	dictStr("proto", "udp or tcp (DNS over TCP, RFC 1035 4.2.2).", func(r *DNS) *string { return &r.Proto }),
	bin("client_addr", "Address of the side that asked, 4 or 16 bytes in network order.", func(r *DNS) *[]byte { return &r.ClientAddr }),
	num("client_port", uint16Type, "Port of the side that asked.", func(r *DNS) *uint16 { return &r.ClientPort }),
	bin("server_addr", "Address of the side that answers (port 53), 4 or 16 bytes in network order.", func(r *DNS) *[]byte { return &r.ServerAddr }),
	num("server_port", uint16Type, "Port of the side that answers (53).", func(r *DNS) *uint16 { return &r.ServerPort }),
	optNum("pid", int32Type, "Process id of the client socket's owner (connection owners from tracepoints); null if unknown (flag owner_unknown).", func(r *DNS) *Opt[int32] { return &r.PID }),
	optNum("proc_start", int64Type, "proc_start of that process; null if unknown.", func(r *DNS) *Opt[int64] { return &r.ProcStart }),
	num("dns_id", uint16Type, "DNS message id (pairs a response with its query).", func(r *DNS) *uint16 { return &r.ID }),
	dictBin("qname", "Name of the first question: its labels' exact bytes joined by dots, with a final dot (a label holding a dot makes the message malformed); null if the message has no question.", func(r *DNS) *[]byte { return &r.QName }),
	optNum("qtype", uint16Type, "Type of the first question (1 A, 28 AAAA, 5 CNAME, 12 PTR, 15 MX, 16 TXT, 33 SRV, 65 HTTPS, …); null if none.", func(r *DNS) *Opt[uint16] { return &r.QType }),
	optNum("rcode", uint8Type, "Response code of a response (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED, …); null for queries.", func(r *DNS) *Opt[uint8] { return &r.RCode }),
	bin("answers", "Answer records of a response, one line each: name, type, TTL and data (address, target name, or the length of other data); null for queries.", func(r *DNS) *[]byte { return &r.Answers }),
	bin("answer_addrs", "The A and AAAA addresses of the answers as upper-case hex between commas (\",5DB8D822,\"; an A address also in its IPv4-mapped 16-byte form), so SQL can find the name an address was resolved from: LOCATE(CONCAT(',', HEX(remote_addr), ','), answer_addrs); null if none.", func(r *DNS) *[]byte { return &r.AnswerAddrs }),
	num("flags", uint32Type, "Bit set: 1 truncated (TC), 2 malformed, 4 owner_unknown, 8 partial (TCP message not whole in one segment), 16 answers_cut (see DNSFlag* in internal/event).", func(r *DNS) *uint32 { return &r.Flags }),
}

var loginColumns = []column[Login]{
	tsCol("ts", "Time of the record (ut_tv): ns since the Unix epoch, UTC, microsecond resolution.", func(r *Login) *int64 { return &r.TS }),
	dictStr("kind", "login (wtmp USER_PROCESS), logout (wtmp DEAD_PROCESS), failed (any btmp record), boot (BOOT_TIME), runlevel (RUN_LVL, also shutdown) or other.", func(r *Login) *string { return &r.Kind }),
	dictStr("file", "The file the record was read from: wtmp or btmp.", func(r *Login) *string { return &r.File }),
	num("ut_type", int32Type, "ut_type as the file holds it (7 USER_PROCESS, 8 DEAD_PROCESS, 6 LOGIN_PROCESS, …).", func(r *Login) *int32 { return &r.UTType }),
	num("pid", int32Type, "ut_pid: the login process (for sshd, the session's privileged sshd process).", func(r *Login) *int32 { return &r.PID }),
	dictBin("tty", "ut_line: the terminal without /dev/ (pts/3, ssh:notty), exact bytes up to the first NUL.", func(r *Login) *[]byte { return &r.TTY }),
	bin("ut_id", "ut_id: the terminal suffix or inittab id, exact bytes up to the first NUL.", func(r *Login) *[]byte { return &r.UTID }),
	dictBin("user", "ut_user: the user name as given (for failed logins, whatever the client sent), exact bytes up to the first NUL.", func(r *Login) *[]byte { return &r.User }),
	bin("remote_host", "ut_host: the remote host name or address as text (or the kernel release on boot rows), exact bytes up to the first NUL.", func(r *Login) *[]byte { return &r.RemoteHost }),
	bin("remote_addr", "ut_addr_v6: the remote address, 4 bytes (IPv4) or 16 (IPv6) in network order; null if the record has none.", func(r *Login) *[]byte { return &r.RemoteAddr }),
	num("session", int32Type, "ut_session: the session id the writer recorded (often 0).", func(r *Login) *int32 { return &r.Session }),
}

var ctrColumns = []column[Container]{
	tsCol("ts", "When the first process row with this container id was seen: ns since the Unix epoch, UTC.", func(r *Container) *int64 { return &r.TS }),
	bin("container_id", "The container id as derived from the cgroup path (the proc table's container_id).", func(r *Container) *[]byte { return &r.ID }),
	num("pid", int32Type, "Process id of that first process row.", func(r *Container) *int32 { return &r.PID }),
	dictStr("runtime", "The runtime whose state named the container: docker, containerd, podman (system-wide or a user's rootless storage) or crio; null if none did.", func(r *Container) *string { return &r.Runtime }),
	bin("name", "The runtime's container name (Docker Name without its slash, CRI container name, Podman's first name, containerd's nerdctl/name label), exact bytes as the runtime stored them, at most 1024; null if unknown.", func(r *Container) *[]byte { return &r.Name }),
	bin("image", "The image the container was created from, as the runtime recorded it (name:tag or digest), at most 4096 bytes; null if unknown.", func(r *Container) *[]byte { return &r.Image }),
	bin("pod", "Kubernetes pod name (annotation or label io.kubernetes.pod.name), at most 1024 bytes; null if none.", func(r *Container) *[]byte { return &r.Pod }),
	bin("namespace", "Kubernetes namespace (io.kubernetes.pod.namespace), at most 1024 bytes; null if none.", func(r *Container) *[]byte { return &r.Namespace }),
	bin("source", "The state file read (a runtime's JSON file, or containerd's meta.db when a field came from it), as a path on the host; null if none was found.", func(r *Container) *[]byte { return &r.Source }),
	dictStr("error", "Why there is no name: not_found, too_large (state file over the limit), parse_error or read_error; null when found.", func(r *Container) *string { return &r.Error }),
}
