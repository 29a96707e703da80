package spool

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pofr/pofr/internal/event"
)

// workload is a realistic mix of rows: 10 % proc (exec with real-looking
// argv, exe, cwd and cgroup from a small vocabulary, plus fork and exit),
// 60 % file (paths from a few thousand real-looking names), 30 % sock.
type workload struct {
	kinds []uint8 // 0 proc, 1 file, 2 sock, in append order
	procs []event.Proc
	files []event.File
	socks []event.Sock
	raw   int64 // estimated bytes, as the writer estimates them
}

var (
	workOnce sync.Once
	work     *workload
)

const workEvents = 200_000

func benchWorkload() *workload {
	workOnce.Do(func() { work = newWorkload(workEvents, 1) })
	return work
}

func newWorkload(n int, seed uint64) *workload {
	rng := rand.New(rand.NewPCG(seed, 2))
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	type prog struct {
		exe  string
		args [][]string
	}
	progs := []prog{
		{"/usr/bin/ls", [][]string{{"ls", "-la"}, {"ls", "--color=auto", "-l"}, {"ls"}}},
		{"/usr/bin/grep", [][]string{{"grep", "-r", "TODO", "src/"}, {"grep", "-q", "^root:", "/etc/passwd"}, {"grep", "--color=auto", "-n", "error", "/var/log/syslog"}}},
		{"/usr/bin/bash", [][]string{{"bash", "-c", "for f in *.log; do gzip \"$f\"; done"}, {"/bin/bash", "--login"}, {"bash", "/usr/local/bin/backup.sh"}}},
		{"/usr/bin/dash", [][]string{{"sh", "-c", "command -v debian-sa1 > /dev/null && debian-sa1 1 1"}, {"/bin/sh", "/usr/lib/update-notifier/apt-check"}}},
		{"/usr/bin/python3.11", [][]string{{"python3", "/opt/app/manage.py", "runserver", "0.0.0.0:8000"}, {"/usr/bin/python3", "-m", "pip", "install", "-r", "requirements.txt"}, {"python3", "-c", "import sys; print(sys.version)"}}},
		{"/usr/lib/git-core/git", [][]string{{"git", "status", "--porcelain"}, {"git", "fetch", "origin"}, {"git", "rev-parse", "--abbrev-ref", "HEAD"}}},
		{"/usr/bin/curl", [][]string{{"curl", "-fsSL", "https://api.example.com/v1/health"}, {"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://localhost:8080/metrics"}}},
		{"/usr/sbin/nginx", [][]string{{"nginx", "-g", "daemon on; master_process on;"}, {"nginx", "-s", "reload"}}},
		{"/usr/bin/cat", [][]string{{"cat", "/proc/meminfo"}, {"cat", "/etc/os-release"}}},
		{"/usr/bin/ps", [][]string{{"ps", "aux"}, {"ps", "-eo", "pid,ppid,cmd,%mem,%cpu", "--sort=-%mem"}}},
		{"/usr/bin/systemctl", [][]string{{"systemctl", "is-active", "--quiet", "nginx.service"}, {"systemctl", "status", "cron"}}},
		{"/usr/bin/find", [][]string{{"find", "/var/log", "-name", "*.gz", "-mtime", "+7", "-delete"}, {"find", ".", "-type", "f", "-name", "*.go"}}},
		{"/usr/bin/tar", [][]string{{"tar", "czf", "/backup/etc.tar.gz", "/etc"}, {"tar", "-xf", "release.tar"}}},
		{"/usr/local/bin/node", [][]string{{"node", "/srv/web/server.js"}, {"node", "--max-old-space-size=4096", "build.js"}}},
		{"/usr/bin/sed", [][]string{{"sed", "-i", "s/foo/bar/g", "config.yaml"}, {"sed", "-n", "1,20p", "README.md"}}},
		{"/usr/bin/awk", [][]string{{"awk", "{print $1}", "/var/log/nginx/access.log"}}},
		{"/usr/bin/sudo", [][]string{{"sudo", "-u", "postgres", "psql", "-c", "SELECT 1"}, {"sudo", "apt-get", "update"}}},
		{"/usr/bin/ssh", [][]string{{"ssh", "-o", "BatchMode=yes", "deploy@10.0.3.7", "uptime"}}},
	}
	cwds := []string{"/", "/root", "/home/alice", "/home/alice/src/shop", "/home/bob/work", "/srv/web", "/var/lib/postgresql", "/tmp", "/opt/app", "/etc/nginx"}
	cgroups := []string{"/system.slice/cron.service", "/system.slice/nginx.service", "/user.slice/user-1000.slice/session-3.scope",
		"/user.slice/user-1001.slice/session-7.scope", "/system.slice/docker-4f1c2a9e8b7d.scope", "/system.slice/ssh.service"}
	dirs := []string{"/usr/lib/x86_64-linux-gnu", "/etc", "/var/log", "/var/log/nginx", "/home/alice/src/shop/internal/cart",
		"/home/alice/src/shop/web/static", "/srv/web/public/img", "/var/lib/postgresql/15/main/base/16384", "/tmp",
		"/proc/self", "/usr/share/zoneinfo/Europe", "/var/cache/apt/archives", "/home/bob/.cache/go-build/3f", "/run/systemd/journal"}
	stems := []string{"libc.so.6", "libssl.so.3", "passwd", "hosts", "resolv.conf", "syslog", "access.log", "error.log", "cart.go",
		"cart_test.go", "main.css", "logo.png", "16397", "16401_fsm", "tmp", "status", "Paris", "Berlin", "curl_8.5.0-2_amd64.deb", "socket"}
	var paths []string
	for _, d := range dirs {
		for _, s := range stems {
			paths = append(paths, d+"/"+s)
		}
		for i := range 100 {
			paths = append(paths, fmt.Sprintf("%s/f%03d.dat", d, i))
		}
	}
	ops := []string{event.FileOpen, event.FileOpen, event.FileOpen, event.FileWrite, event.FileExec, event.FileCreate, event.FileDelete}
	remotes := [][]byte{{93, 184, 216, 34}, {140, 82, 112, 3}, {10, 0, 3, 7}, {10, 0, 3, 8}, {151, 101, 1, 69}, {1, 1, 1, 1}, {8, 8, 8, 8}, {192, 168, 1, 20}}
	rports := []uint16{443, 443, 443, 80, 5432, 22, 53, 8080}

	type live struct {
		pid   int32
		start int64
		prog  int
	}
	pids := make([]live, 300)
	nextPID := int32(20000)
	for i := range pids {
		pids[i] = live{pid: nextPID, start: int64(nextPID) * 10_000_000, prog: rng.IntN(len(progs))}
		nextPID++
	}
	w := &workload{}
	ts := time.Date(2025, 11, 25, 12, 0, 0, 0, time.UTC).UnixNano()
	cookie := uint64(1 << 32)
	for range n {
		ts += int64(rng.ExpFloat64() * 100_000) // about 10 000 events/s
		p := &pids[rng.IntN(len(pids))]
		switch r := rng.IntN(100); {
		case r < 10:
			ev := event.Proc{TS: ts, PID: p.pid, TID: p.pid, PPID: 1000 + p.pid%50, ProcStart: p.start,
				ParentStart: event.Some[int64](1_000_000_000), UID: 1000, EUID: 1000, GID: 1000, EGID: 1000, AUID: 1000, SessionID: 3}
			switch k := rng.IntN(10); {
			case k < 4:
				ev.Event = event.ProcExec
				pr := progs[p.prog]
				args := pr.args[rng.IntN(len(pr.args))]
				var argv []byte
				for _, a := range args {
					argv = append(append(argv, a...), 0)
				}
				ev.Argv = argv
				ev.Exe = []byte(pr.exe)
				ev.Comm = []byte(args[0][strings.LastIndexByte(args[0], '/')+1:])
				if len(ev.Comm) > 15 {
					ev.Comm = ev.Comm[:15]
				}
				ev.Cwd = []byte(pick(cwds))
				ev.Cgroup = []byte(pick(cgroups))
				ev.TTY = []byte("pts/0")
				ev.NSPid, ev.NSMnt, ev.NSNet = event.Some[uint32](4026531836), event.Some[uint32](4026531841), event.Some[uint32](4026531840)
			case k < 7:
				ev.Event = event.ProcFork
				nextPID++
				*p = live{pid: nextPID, start: ts / 10_000_000 * 10_000_000, prog: rng.IntN(len(progs))}
				ev.PID, ev.TID, ev.ProcStart = p.pid, p.pid, p.start
			default:
				ev.Event = event.ProcExit
				ev.ExitCode = event.Some[int32](int32(rng.IntN(3) / 2))
			}
			w.kinds = append(w.kinds, 0)
			w.procs = append(w.procs, ev)
			w.raw += procRowBytes + int64(len(ev.TTY)+len(ev.Comm)+len(ev.Exe)+len(ev.Argv)+len(ev.Cwd)+len(ev.Cgroup))
		case r < 70:
			path := paths[int(rng.ExpFloat64()*300)%len(paths)]
			count := uint32(1)
			if rng.IntN(4) == 0 {
				count = uint32(1 + rng.IntN(20))
			}
			ino := binary.LittleEndian.Uint32([]byte(path[len(path)-4:])) % 5_000_000
			ev := event.File{TS: ts, LastTS: ts + int64(count-1)*int64(rng.IntN(1_000_000)), Count: count, PID: p.pid,
				ProcStart: event.Some(p.start), UID: 1000, Op: ops[rng.IntN(len(ops))], Path: []byte(path),
				Inode: event.Some(uint64(ino)), Dev: event.Some[uint64](2049)}
			w.kinds = append(w.kinds, 1)
			w.files = append(w.files, ev)
			w.raw += fileRowBytes + int64(len(ev.Path))
		default:
			ri := rng.IntN(len(remotes))
			cookie++
			ev := event.Sock{TS: ts, Event: event.SockClose, Proto: "tcp", Family: 4, State: "CLOSE", Direction: event.DirOut,
				LocalAddr: []byte{10, 0, 0, 5}, LocalPort: uint16(32768 + rng.IntN(28000)), RemoteAddr: remotes[ri], RemotePort: rports[ri],
				Inode: event.Some(uint64(100000 + rng.IntN(900000))), Cookie: cookie, UID: 1000, PID: event.Some(p.pid),
				ProcStart: event.Some(p.start), Netns: event.Some[uint64](4026531840),
				BytesSent: event.Some(uint64(rng.IntN(20000))), BytesRecv: event.Some(uint64(rng.IntN(200000))),
				FirstTS: event.Some(ts - int64(rng.IntN(5_000_000_000))), Flags: event.SockFlagFromDestroy}
			if rng.IntN(3) == 0 {
				ev.Event, ev.State, ev.BytesSent, ev.BytesRecv, ev.Flags = event.SockOpen, "ESTABLISHED", event.Opt[uint64]{}, event.Opt[uint64]{}, 0
			}
			w.kinds = append(w.kinds, 2)
			w.socks = append(w.socks, ev)
			w.raw += sockRowBytes + int64(len(ev.LocalAddr)+len(ev.RemoteAddr))
		}
	}
	return w
}

// appendAll appends the workload to s in its order.
func (wl *workload) appendAll(s event.Sink) {
	var p, f, k int
	for _, kind := range wl.kinds {
		switch kind {
		case 0:
			s.AppendProc(&wl.procs[p])
			p++
		case 1:
			s.AppendFile(&wl.files[f])
			f++
		default:
			s.AppendSock(&wl.socks[k])
			k++
		}
	}
}

func benchOptions(b *testing.B) Options {
	return Options{HostID: testHost, BootID: "6d0f1c3e-0000-4000-8000-000000000001", Key: testKey,
		MaxSegmentAge: time.Hour, Hostname: "bench", Version: "bench", Quota: 1 << 40, MaxPendingBytes: 1 << 30}
}

// BenchmarkAppend measures the append path alone (no sealing in the timed
// part): the cost a source pays per event.
func BenchmarkAppend(b *testing.B) {
	wl := benchWorkload()
	opts := benchOptions(b)
	opts.MaxSegmentBytes = maxSegmentBytesLimit // the whole workload fits one batch
	w, err := Open(b.TempDir(), opts)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	b.ReportAllocs()
	b.SetBytes(wl.raw)
	for b.Loop() {
		wl.appendAll(w)
		b.StopTimer()
		w.mu.Lock()
		if w.cur.rows != int64(len(wl.kinds)) {
			b.Fatalf("batch holds %d rows, want %d (a rotation happened)", w.cur.rows, len(wl.kinds))
		}
		w.cur.release()
		w.cur = newBatch()
		w.mu.Unlock()
		b.StartTimer()
	}
	b.ReportMetric(float64(len(wl.kinds))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppendSeal measures the whole writer with the default segment
// size: append, seal (encode, compress, sign, write, fsync, rename, re-read
// and verify), and reports the bytes per event on disk.
func BenchmarkAppendSeal(b *testing.B) {
	wl := benchWorkload()
	b.ReportAllocs()
	b.SetBytes(wl.raw)
	var disk, segs int64
	tables := map[string][2]int64{} // bytes, rows
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		w, err := Open(dir, benchOptions(b))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		wl.appendAll(w)
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		infos, err := List(dir)
		if err != nil {
			b.Fatal(err)
		}
		var rows int64
		for _, in := range infos {
			disk += in.Size
			m, _, err := ReadManifestFile(in.Path)
			if err != nil {
				b.Fatal(err)
			}
			rows += m.Rows()
			for _, mb := range m.Members {
				t := tables[mb.Table]
				tables[mb.Table] = [2]int64{t[0] + mb.Bytes, t[1] + mb.Rows}
			}
		}
		if rows != int64(len(wl.kinds)) {
			b.Fatalf("sealed %d rows, want %d", rows, len(wl.kinds))
		}
		segs += int64(len(infos))
		os.RemoveAll(dir)
		b.StartTimer()
	}
	events := float64(len(wl.kinds)) * float64(b.N)
	b.ReportMetric(events/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(disk)/events, "disk-B/event")
	b.ReportMetric(float64(disk)/b.Elapsed().Seconds()/1e6, "disk-MB/s")
	b.ReportMetric(float64(segs)/float64(b.N), "segments/op")
	for _, t := range []string{event.TableProc, event.TableFile, event.TableSock} {
		b.ReportMetric(float64(tables[t][0])/float64(tables[t][1]), t+"-B/row")
	}
}

// BenchmarkVerify measures reading a typical segment from memory: what the
// loader pays before it decodes rows.
func BenchmarkVerify(b *testing.B) {
	wl := benchWorkload()
	dir := b.TempDir()
	w, err := Open(dir, benchOptions(b))
	if err != nil {
		b.Fatal(err)
	}
	wl.appendAll(w)
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	infos, _ := List(dir)
	data := readAll(b, infos[0].Path)
	m, _, _ := readManifestBytes(data)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		s, err := VerifyBytes(data, VerifyOptions{PublicKey: testPub})
		if err != nil {
			b.Fatal(err)
		}
		s.Release()
	}
	b.ReportMetric(float64(m.Rows())*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// readManifestBytes is ReadManifest over bytes in memory (test helper).
func readManifestBytes(b []byte) (*Manifest, string, error) {
	return ReadManifest(strings.NewReader(string(b)), int64(len(b)))
}

// execRows are the rows the collector writes for one short exec (a shell
// running /usr/bin/true): the fork of the shell, the exec, the exit, and
// fanotify's exec rows of the program and its ELF interpreter. The byte
// columns share their slices between rows, as the process table's interned
// values do.
func execRows(pid int32, ts int64) ([3]event.Proc, [2]event.File) {
	sh, shExe := []byte("bash"), []byte("/usr/bin/bash")
	tr, trExe := []byte("true"), []byte("/usr/bin/true")
	cwd, cg := []byte("/home/alice/src/shop"), []byte("/user.slice/user-1000.slice/session-3.scope")
	tty := []byte("pts/0")
	base := event.Proc{PID: pid, TID: pid, PPID: 4000, ProcStart: ts / 10_000_000 * 10_000_000,
		ParentStart: event.Some[int64](1_000_000_000), UID: 1000, EUID: 1000, GID: 1000, EGID: 1000, AUID: 1000,
		SessionID: 3, TTY: tty, Comm: sh, Exe: shExe, Cwd: cwd, Cgroup: cg,
		NSPid: event.Some[uint32](4026531836), NSMnt: event.Some[uint32](4026531841), NSNet: event.Some[uint32](4026531840),
		NSUser: event.Some[uint32](4026531837), NSUts: event.Some[uint32](4026531838), NSIpc: event.Some[uint32](4026531839),
		NSCgroup: event.Some[uint32](4026531835)}
	var p [3]event.Proc
	p[0], p[1], p[2] = base, base, base
	p[0].TS, p[0].Event = ts, event.ProcFork
	p[1].TS, p[1].Event, p[1].Comm, p[1].Exe, p[1].Argv = ts+300_000, event.ProcExec, tr, trExe, []byte("/usr/bin/true\x00")
	p[2].TS, p[2].Event, p[2].Comm, p[2].Exe, p[2].ExitCode = ts+900_000, event.ProcExit, tr, trExe, event.Some[int32](0)
	f := event.File{TS: ts + 200_000, LastTS: ts + 200_000, Count: 1, PID: pid, ProcStart: event.Some(base.ProcStart),
		UID: 1000, Op: event.FileExec, Path: trExe, Inode: event.Some[uint64](1835123), Dev: event.Some[uint64](2049)}
	return p, [2]event.File{f, f}
}

// BenchmarkAppendExec measures the rows of one exec appended to the writer
// (no sealing in the timed part): what the collector's process table and
// file source pay per exec in the spool.
func BenchmarkAppendExec(b *testing.B) {
	opts := benchOptions(b)
	opts.MaxSegmentBytes = maxSegmentBytesLimit
	w, err := Open(b.TempDir(), opts)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	ld := []byte("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
	const perBatch = 20_000 // execs per batch, well inside one segment
	ts := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC).UnixNano()
	b.ReportAllocs()
	n := 0
	p, f := execRows(20000, ts)
	f[1].Path, f[1].Inode = ld, event.Some[uint64](1835999)
	cpu0 := cpuTime()
	for b.Loop() {
		pid := int32(20000 + n%30000)
		for i := range p {
			p[i].PID, p[i].TID, p[i].TS = pid, pid, ts+int64(i)*300_000
		}
		for i := range f {
			f[i].PID, f[i].TS, f[i].LastTS = pid, ts+200_000, ts+200_000
		}
		for i := range p {
			w.AppendProc(&p[i])
		}
		for i := range f {
			w.AppendFile(&f[i])
		}
		ts += 1_000_000
		if n++; n%perBatch == 0 {
			b.StopTimer()
			w.mu.Lock()
			w.sized = w.cur.n // as a rotation does
			w.cur.release()
			w.cur = newBatch()
			w.mu.Unlock()
			b.StartTimer()
		}
	}
	// CPU time, not wall time, is what the collector pays (and on a shared
	// machine the steadier figure); it includes the garbage collector's.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/exec")
}

// cpuTime returns the process's user and system CPU time in ns.
func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkSealSmall measures the seal of a segment of a few rows, what an
// idle host's trickle of events costs every MaxSegmentAge: the writer is
// warm (its encoder and pools in use), each iteration appends 3 process,
// 1 file and 1 socket row and seals (encode, compress, sign, write, fsync,
// rename, re-read and verify); the segment is then removed, untimed, as
// the uplink does after its upload.
func BenchmarkSealSmall(b *testing.B) {
	wl := benchWorkload()
	dir := b.TempDir()
	var sealed string
	opts := benchOptions(b)
	opts.Sealed = func(name string) { sealed = name }
	w, err := Open(dir, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	b.ReportAllocs()
	for b.Loop() {
		for i := range 3 {
			w.AppendProc(&wl.procs[i])
		}
		w.AppendFile(&wl.files[0])
		w.AppendSock(&wl.socks[0])
		if err := w.Seal(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := Remove(dir, sealed); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
