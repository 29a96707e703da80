// Package event defines the records pofr captures and their Arrow schemas: the
// contract between the collector (which produces records), the spool (which
// stores them as Arrow IPC streams) and the loader (which turns them into
// MariaDB rows).
//
// There are nine tables. Column names are the SQL column names of the matching
// MariaDB table (schema/); every column is documented in schema.go, not in the
// Arrow field metadata (docs/segment-format.md §6 says why).
//
//	table  Arrow member   SQL table     one row per
//	proc   proc.arrow     proc_events   process event (fork, exec, exit, …, snapshot)
//	file   file.arrow     file_events   (process, path, op) within an aggregation window
//	sock   sock.arrow     sock_events   socket observation (listen, open, close)
//	gap    gap.arrow      gaps          interval in which the record is incomplete
//	acct   acct.arrow     accounts      user or group id → name, sent when it changes
//	exe    exe.arrow      executables   executed file identity → SHA-256, sent once per identity (and refreshed)
//	dns    dns.arrow      dns_events    DNS message (query or response) seen on a packet socket
//	login  login.arrow    login_events  wtmp/btmp record
//	ctr    ctr.arrow      containers    container id → runtime name, image, pod, sent when the id is first seen
//
// Conventions, the same in every table:
//
//   - Timestamps are int64 nanoseconds since the Unix epoch, UTC (Arrow
//     timestamp[ns, tz=UTC]). The client's UTC offset is in the segment manifest.
//   - A process is identified by (boot_id, pid, proc_start), never by pid alone;
//     boot_id and host_id are per segment (manifest) and are added by the loader.
//   - Everything the kernel or a process hands us as a name (comm, argv, paths,
//     cgroup, tty) is stored as exact bytes (Arrow binary): Linux names are not
//     UTF-8, and an attacker controls them. Nothing is decoded or escaped here.
//   - Unknown values are null, never a sentinel. In Go, a nullable column is an
//     [Opt] or, for ids, the kernel's own "unset" value [NoID] ((uid_t)-1), which
//     maps to null.
package event

import (
	"crypto/sha256"
	"encoding/binary"
	"strconv"
)

// NoID is the kernel's "unset" user, group, login uid or session id
// ((uid_t)-1). A field holding NoID is stored as null.
const NoID = ^uint32(0)

// Opt is a value that may be absent (null in Arrow and SQL).
type Opt[T any] struct {
	V     T
	Valid bool
}

// Some returns a present Opt holding v.
func Some[T any](v T) Opt[T] { return Opt[T]{V: v, Valid: true} }

// Table names, also the stem of the segment member name (proc → proc.arrow).
const (
	TableProc  = "proc"
	TableFile  = "file"
	TableSock  = "sock"
	TableGap   = "gap"
	TableAcct  = "acct"
	TableExe   = "exe"
	TableDNS   = "dns"
	TableLogin = "login"
	TableCtr   = "ctr"
)

// Tables lists the table names in the order their members appear in a segment.
var Tables = []string{TableProc, TableFile, TableSock, TableGap, TableAcct, TableExe, TableDNS, TableLogin, TableCtr}

// Process event kinds (the proc table's event column).
const (
	ProcFork     = "fork"     // a new process (or thread, folded into its process) was created
	ProcExec     = "exec"     // the process replaced its program
	ProcExit     = "exit"     // the process ended; exit_code / exit_signal are set
	ProcUID      = "uid"      // real/effective uid changed
	ProcGID      = "gid"      // real/effective gid changed
	ProcSID      = "sid"      // the process started a new session
	ProcComm     = "comm"     // the process renamed itself (comm)
	ProcPtrace   = "ptrace"   // the process was attached to (tracer_pid set) or detached (tracer_pid 0)
	ProcCoredump = "coredump" // the process dumped core
	ProcSnapshot = "snapshot" // the process was already running when the record (re)started
)

// Proc flags (bit set in Proc.Flags).
const (
	// ProcFlagGone: the process was gone before /proc could be read, so the
	// enrichment columns (argv, exe, cwd, ids, cgroup, namespaces) are partly
	// or wholly null.
	ProcFlagGone uint32 = 1 << iota
	// ProcFlagLateRead: /proc was read after the process may already have
	// changed (for example after a resync), so enrichment may describe a later
	// state of the process than the event.
	ProcFlagLateRead
	// ProcFlagArgvTruncated: argv was longer than the configured cap and was cut.
	ProcFlagArgvTruncated
	// ProcFlagSelf: the row describes pofr's own collector process.
	ProcFlagSelf
	// ProcFlagPoll: the row comes from /proc polling (fallback mode), not cn_proc;
	// short-lived processes may be missing and timestamps are sampling times.
	ProcFlagPoll
	// ProcFlagThread: the event was reported for a thread (tid ≠ pid) and folded
	// into its process.
	ProcFlagThread
	// ProcFlagExeFromFanotify: exe comes from fanotify's FAN_OPEN_EXEC, not
	// from /proc/PID/exe (the process had already gone).
	ProcFlagExeFromFanotify
	// ProcFlagParentUnknown: the parent's start time is not known, so
	// parent_start is null.
	ProcFlagParentUnknown
	// ProcFlagArgvFromProc: tracepoint capture did not find argv in the
	// exec's user-stack dump, so it was read from /proc/PID/cmdline at the
	// next drain (a few ms later): what the process showed then, which a
	// process that rewrites its argv may already have changed.
	ProcFlagArgvFromProc
)

// Proc is one row of the proc table. See schema.go for each column.
type Proc struct {
	TS          int64
	Event       string
	PID         int32
	TID         int32
	PPID        int32
	ProcStart   int64
	ParentStart Opt[int64]
	UID         uint32
	EUID        uint32
	GID         uint32
	EGID        uint32
	AUID        uint32
	SessionID   uint32
	TTY         []byte
	Comm        []byte
	Exe         []byte
	Argv        []byte
	Cwd         []byte
	ExitCode    Opt[int32]
	ExitSignal  Opt[int32]
	TracerPID   Opt[int32]
	Cgroup      []byte
	ContainerID []byte
	NSPid       Opt[uint32]
	NSMnt       Opt[uint32]
	NSNet       Opt[uint32]
	NSUser      Opt[uint32]
	NSUts       Opt[uint32]
	NSIpc       Opt[uint32]
	NSCgroup    Opt[uint32]
	Flags       uint32
	ExeKey      Opt[uint64]
}

// File operations (the file table's op column).
const (
	FileOpen     = "open"       // opened for reading or writing (FAN_OPEN)
	FileExec     = "exec"       // opened to be executed (FAN_OPEN_EXEC)
	FileWrite    = "write"      // closed after writing (FAN_CLOSE_WRITE)
	FileCreate   = "create"     // created (FAN_CREATE)
	FileDelete   = "delete"     // deleted (FAN_DELETE)
	FileRename   = "rename"     // renamed from path to new_path (FAN_MOVED_FROM/TO paired)
	FileMoveFrom = "moved_from" // renamed away; the target was not seen
	FileMoveTo   = "moved_to"   // renamed here; the source was not seen
	FileFDOpen   = "fd"         // seen open in /proc/PID/fd (fallback mode)
)

// File flags (bit set in File.Flags).
const (
	// FileFlagUnresolved: the path could not be resolved (the directory was
	// deleted); path holds only the name and dev/inode identify the directory.
	FileFlagUnresolved uint32 = 1 << iota
	// FileFlagSelf: the access was made by pofr's own collector.
	FileFlagSelf
	// FileFlagFallback: seen by a /proc/PID/fd scan (fanotify unavailable):
	// only files that happened to be open at a sample are seen.
	FileFlagFallback
	// FileFlagDir: the object is a directory.
	FileFlagDir
	// FileFlagProcUnknown: the process key (proc_start) is not known.
	FileFlagProcUnknown
)

// File is one row of the file table: every matching access by one process to
// one path with one op within the aggregation window.
type File struct {
	TS        int64
	LastTS    int64
	Count     uint32
	PID       int32
	ProcStart Opt[int64]
	UID       uint32
	Op        string
	Path      []byte
	NewPath   []byte
	Inode     Opt[uint64]
	Dev       Opt[uint64]
	Flags     uint32
}

// Socket event kinds (the sock table's event column).
const (
	SockListen = "listen" // a listening TCP socket or bound unconnected UDP socket was first seen
	SockOpen   = "open"   // a connected socket was first seen in a dump
	SockClose  = "close"  // the socket was destroyed (or vanished between dumps)
)

// Socket directions (the sock table's direction column).
const (
	DirOut    = "out"    // we connected (local port is not a listening port)
	DirIn     = "in"     // accepted on one of our listening ports
	DirListen = "listen" // the socket is a listener
)

// Sock flags (bit set in Sock.Flags).
const (
	// SockFlagSelf: the socket is pofr's own (the uplink connection).
	SockFlagSelf uint32 = 1 << iota
	// SockFlagOwnerUnknown: no process was seen owning the socket while it lived.
	SockFlagOwnerUnknown
	// SockFlagFallback: seen by parsing /proc/net (sock_diag unavailable).
	SockFlagFallback
	// SockFlagFromDestroy: the row comes from a kernel destroy notification, so
	// the close was seen exactly, with final byte counts.
	SockFlagFromDestroy
	// SockFlagVanished: the socket disappeared between two dumps and no destroy
	// notification was seen for it.
	SockFlagVanished
	// SockFlagOwnerFromListener: the socket was accepted on a listener and was
	// never seen alive itself; its owner is the listener's owner (the process
	// that accepted it is usually that one, or a child it passed it to).
	SockFlagOwnerFromListener
)

// Sock is one row of the sock table.
type Sock struct {
	TS         int64
	Event      string
	Proto      string // "tcp" or "udp"
	Family     uint8  // 4 or 6
	State      string
	Direction  string
	LocalAddr  []byte // 4 or 16 bytes, network order
	LocalPort  uint16
	RemoteAddr []byte // 4 or 16 bytes, network order
	RemotePort uint16
	Inode      Opt[uint64]
	Cookie     uint64
	UID        uint32
	PID        Opt[int32]
	ProcStart  Opt[int64]
	Netns      Opt[uint64]
	BytesSent  Opt[uint64]
	BytesRecv  Opt[uint64]
	FirstTS    Opt[int64]
	Flags      uint32
}

// Gap sources (the gap table's source column).
const (
	SourceProc      = "proc"      // cn_proc
	SourceFile      = "file"      // fanotify
	SourceSock      = "sock"      // sock_diag
	SourceSpool     = "spool"     // segments evicted by the quota
	SourceCollector = "collector" // the collector itself was not running
	SourceExe       = "exe"       // executables executed but not hashed
	SourceLogin     = "login"     // wtmp/btmp records lost (truncated under us)
	SourceDNS       = "dns"       // the DNS packet socket
)

// Gap is one row of the gap table: an interval in which some source's record
// is known to be incomplete.
type Gap struct {
	FromTS int64
	ToTS   int64
	Source string
	Lost   Opt[int64]
	Reason string
}

// Account kinds (the acct table's kind column).
const (
	AcctUser  = "user"
	AcctGroup = "group"
)

// Account is one row of the acct table: the name of a user or group id on the
// host at time TS.
type Account struct {
	TS   int64
	Kind string
	ID   uint32
	Name []byte
}

// DNS message kinds (the dns table's event column).
const (
	DNSQuery    = "query"    // a question (QR bit clear)
	DNSResponse = "response" // an answer (QR bit set)
)

// DNS flags (bit set in DNS.Flags).
const (
	// DNSFlagTruncated: the server set the TC bit (the answer did not fit
	// a UDP datagram; the resolver usually retries over TCP).
	DNSFlagTruncated uint32 = 1 << iota
	// DNSFlagMalformed: the message could not be parsed to its end; the
	// columns hold what was parsed before the error.
	DNSFlagMalformed
	// DNSFlagOwnerUnknown: no process was found for the client socket, so
	// pid and proc_start are null.
	DNSFlagOwnerUnknown
	// DNSFlagPartial: a DNS-over-TCP message was not whole in one segment
	// (or the packet was cut), so only its start was parsed.
	DNSFlagPartial
	// DNSFlagAnswersCut: the answers were longer than the recorded cap and
	// were cut.
	DNSFlagAnswersCut
)

// DNS is one row of the dns table: one DNS message seen on the wire.
type DNS struct {
	TS          int64
	Event       string // DNSQuery or DNSResponse
	Proto       string // "udp" or "tcp"
	ClientAddr  []byte // 4 or 16 bytes: the side that asked
	ClientPort  uint16
	ServerAddr  []byte // 4 or 16 bytes: the side that answers (port 53)
	ServerPort  uint16
	PID         Opt[int32]
	ProcStart   Opt[int64]
	ID          uint16
	QName       []byte
	QType       Opt[uint16]
	RCode       Opt[uint8]
	Answers     []byte // one "name type ttl data" line per answer record
	AnswerAddrs []byte // ",HEX," of every A/AAAA answer address
	Flags       uint32
}

// DNSSink receives DNS records. It is separate from [Sink] so that the
// sinks that do not record DNS need not change; the spool writer and
// [MemSink] implement both.
type DNSSink interface {
	AppendDNS(*DNS)
}

// Sink receives records. The spool writer is the production Sink; tests use
// [MemSink]. Implementations must be safe for concurrent use and must not
// block the caller for long: sources call them from their event loops.
// The record and the slices it points to are only valid during the call:
// sources reuse them, so an implementation copies what it keeps.
type Sink interface {
	AppendProc(*Proc)
	AppendFile(*File)
	AppendSock(*Sock)
	AppendGap(*Gap)
	AppendAccount(*Account)
}

// How an executable was opened for hashing (the exe table's how column).
const (
	// ExeByHandle: opened with open_by_handle_at from the file handle of its
	// fanotify FAN_OPEN_EXEC event, so even a file deleted right after the
	// exec is read while its inode lives.
	ExeByHandle = "handle"
	// ExeByProc: opened through /proc/PID/exe (the handle could not be
	// opened); the process was still running.
	ExeByProc = "proc"
)

// Why an executable has no hash (the exe table's skip column).
const (
	ExeSkipTooLarge = "too_large" // larger than the configured limit
	ExeSkipChanged  = "changed"   // size, mtime or ctime changed while it was read
	ExeSkipRead     = "read_error"
)

// Executable is one row of the exe table: the SHA-256 of an executed file,
// named by its identity on the host (device, inode, size, mtime, ctime). The
// collector hashes an identity once and sends a row when it first sees it
// and again, with a later LastTS, when it is still being executed a refresh
// interval after the previous row; a reader takes the earliest TS and the
// latest LastTS of an identity.
type Executable struct {
	TS      int64 // first exec seen with this identity
	LastTS  int64 // last exec seen before the row was sent
	Count   uint32
	PID     int32 // the process of the first exec
	Dev     uint64
	Inode   uint64
	Size    int64
	MTimeNS int64
	CTimeNS int64
	SHA256  []byte // 32 bytes; nil if Skip is set
	How     string
	Skip    string
	Path    []byte // the path fanotify resolved at the first exec; nil if unknown
}

// ExeKey is the compact key of an executed file's identity (device, inode,
// size, mtime and ctime in ns) that exec rows carry (proc column exe_key):
// the first 8 bytes, big-endian, of the SHA-256 of the five numbers in
// decimal joined by commas. The loader derives the same key for each
// exe_ids row in SQL (CONV(LEFT(SHA2(CONCAT_WS(',', dev, inode, size,
// mtime_ns, ctime_ns), 256), 16), 16, 10), migration 018), so exec rows
// join their file's hash exactly.
func ExeKey(dev, inode uint64, size, mtimeNS, ctimeNS int64) uint64 {
	b := make([]byte, 0, 5*21)
	b = strconv.AppendUint(b, dev, 10)
	b = append(b, ',')
	b = strconv.AppendUint(b, inode, 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, size, 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, mtimeNS, 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, ctimeNS, 10)
	sum := sha256.Sum256(b)
	return binary.BigEndian.Uint64(sum[:8])
}

// ExeSink receives exe rows. The spool writer implements it, and so does
// [MemSink]; like [Sink], it copies what it keeps and must not block long.
type ExeSink interface {
	AppendExecutable(*Executable)
}

// Login kinds (the login table's kind column).
const (
	LoginLogin  = "login"  // wtmp USER_PROCESS
	LoginLogout = "logout" // wtmp DEAD_PROCESS
	LoginFailed = "failed" // any btmp record
	LoginBoot   = "boot"   // wtmp BOOT_TIME
	LoginRunLvl = "runlevel"
	LoginOther  = "other"
)

// Login is one row of the login table: one struct utmp record of wtmp or
// btmp, its text fields as exact bytes.
type Login struct {
	TS         int64
	Kind       string
	File       string // wtmp or btmp
	UTType     int32
	PID        int32
	TTY        []byte
	UTID       []byte
	User       []byte
	RemoteHost []byte
	RemoteAddr []byte // 4 or 16 bytes; nil if none
	Session    int32
}

// LoginSink receives login rows. The spool writer and [MemSink] implement it.
type LoginSink interface {
	AppendLogin(*Login)
}

// Container runtimes (the ctr table's runtime column).
const (
	RuntimeDocker     = "docker"
	RuntimeContainerd = "containerd"
	RuntimePodman     = "podman"
	RuntimeCRIO       = "crio" // CRI-O: containers/storage with CRI-O's metadata
)

// Why a container has no name (the ctr table's error column).
const (
	CtrNotFound   = "not_found"   // no runtime's state names the id
	CtrTooLarge   = "too_large"   // the state file is over the size limit
	CtrParseError = "parse_error" // the state file is not the JSON expected
	CtrReadError  = "read_error"  // the state file could not be read
)

// Container is one row of the ctr table: what the container runtime's own
// state on the host says about a container id when a process in it is
// first seen. Text fields are the JSON strings' bytes, cut to their limits.
type Container struct {
	TS        int64  // first proc row seen with this container id
	ID        []byte // the container id (64 hex digits) from the cgroup path
	PID       int32  // the process of that row
	Runtime   string // RuntimeDocker, RuntimeContainerd, RuntimePodman, RuntimeCRIO; "" if not found
	Name      []byte // the runtime's container name; nil if unknown
	Image     []byte // the image as the container was created from it; nil if unknown
	Pod       []byte // Kubernetes pod name; nil if none
	Namespace []byte // Kubernetes namespace; nil if none
	Source    []byte // the state file the row was read from; nil if none
	Error     string // why there is no name ("" when found)
}

// ContainerSink receives ctr rows. The spool writer and [MemSink] implement it.
type ContainerSink interface {
	AppendContainer(*Container)
}
