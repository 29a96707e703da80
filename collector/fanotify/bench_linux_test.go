package fanotify

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"golang.org/x/sys/unix"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/testutil"
	"github.com/pofr/pofr/profiles"
)

// benchSource starts a file source with the named profile ("none": no
// source) and returns its sink and a stop function that returns its stats.
func benchSource(b *testing.B, name string) (*event.MemSink, func() Stats) {
	b.Helper()
	sink := &event.MemSink{}
	if name == "none" {
		return sink, func() Stats { return Stats{} }
	}
	p, err := profiles.Get(name)
	if err != nil {
		b.Fatal(err)
	}
	return sink, startFileSource(b, sink, p.File)
}

// encodedBytes is the size of rows as a spool member would hold them: an
// Arrow IPC stream with zstd buffer compression.
func encodedBytes(b *testing.B, rows []event.File) int {
	if len(rows) == 0 {
		return 0
	}
	bld := event.FileTable.NewBuilder(memory.DefaultAllocator)
	defer bld.Release()
	for i := range rows {
		bld.Append(&rows[i])
	}
	rec := bld.NewRecord()
	defer rec.Release()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(event.FileTable.Schema), ipc.WithZstd())
	if err := w.Write(rec); err != nil {
		b.Fatal(err)
	}
	w.Close()
	return buf.Len()
}

// BenchmarkFileOpenClose: open+close of one file in a loop, without a
// listener, with the default and forensic profiles, and with the kernel
// floors of those profiles (kernel-P: the group and marks of P drained by a
// reader that discards the events, as in BenchmarkFileTarXFloor).
func BenchmarkFileOpenClose(b *testing.B) {
	for _, name := range []string{"none", "kernel-default", "default", "kernel-forensic", "forensic"} {
		b.Run(name, func(b *testing.B) {
			testutil.RequireRoot(b)
			f := filepath.Join(b.TempDir(), "f")
			if err := os.WriteFile(f, nil, 0o644); err != nil {
				b.Fatal(err)
			}
			var stop func() Stats
			if p, ok := strings.CutPrefix(name, "kernel-"); ok {
				prof, err := profiles.Get(p)
				if err != nil {
					b.Fatal(err)
				}
				drain := startFanDrain(b, prof.File)
				stop = func() Stats { drain(); return Stats{} }
			} else {
				_, stop = benchSource(b, name)
			}
			for b.Loop() {
				fd, err := syscall.Open(f, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
				if err != nil {
					b.Fatal(err)
				}
				syscall.Close(fd)
			}
			st := stop()
			b.ReportMetric(float64(st.Events)/float64(b.N), "events/op")
		})
	}
}

// BenchmarkFileTarX: tar x of /usr/share/doc (thousands of small files) by a
// child tar into tmpfs, without a listener and with the default and forensic profiles.
// Reports the listener's CPU per event, and rows and Arrow+zstd bytes per
// 1,000 extracted files after aggregation.
func BenchmarkFileTarX(b *testing.B) {
	testutil.RequireRoot(b)
	tarball := filepath.Join(b.TempDir(), "src.tar")
	if out, err := exec.Command("tar", "cf", tarball, "-C", "/usr/share", "doc").CombinedOutput(); err != nil {
		b.Skipf("build tarball: %v %s", err, out)
	}
	files := 0
	filepath.WalkDir("/usr/share/doc", func(string, os.DirEntry, error) error { files++; return nil })
	for _, name := range []string{"none", "default", "forensic"} {
		b.Run(name, func(b *testing.B) {
			testutil.RequireRoot(b)
			// tmpfs (marked: /dev/shm is recorded): the disk of this VM
			// (ext4 with discard) makes extraction times too noisy to compare.
			work, err := os.MkdirTemp("/dev/shm", "pofr-bench-")
			if err != nil {
				b.Skipf("needs /dev/shm: %v", err)
			}
			defer os.RemoveAll(work)
			sink, stop := benchSource(b, name)
			cpu0 := testutil.ProcessCPU()
			i := 0
			for b.Loop() {
				dir := filepath.Join(work, "x")
				if err := os.Mkdir(dir, 0o755); err != nil {
					b.Fatal(err)
				}
				if out, err := exec.Command("tar", "xf", tarball, "-C", dir).CombinedOutput(); err != nil {
					b.Fatalf("tar x: %v %s", err, out)
				}
				b.StopTimer()
				if out, err := exec.Command("rm", "-rf", dir).CombinedOutput(); err != nil {
					b.Fatalf("rm: %v %s", err, out)
				}
				b.StartTimer()
				i++
			}
			time.Sleep(50 * time.Millisecond)
			st := stop()
			cpu := testutil.ProcessCPU() - cpu0
			if name == "none" {
				return
			}
			var rows []event.File
			for _, r := range sink.Files() {
				if bytes.HasPrefix(r.Path, []byte(work+"/x/")) && r.Op != event.FileDelete {
					rows = append(rows, r)
				}
			}
			perK := float64(1000) / float64(files*i)
			b.ReportMetric(float64(cpu.Microseconds())/float64(st.Events), "listener-µs/event")
			b.ReportMetric(float64(st.Events)/float64(i), "events/op")
			b.ReportMetric(float64(len(rows))*perK, "rows/1000files")
			b.ReportMetric(float64(encodedBytes(b, rows))*perK, "bytes/1000files")
		})
	}
}

// BenchmarkFileTarXFloor separates the kernel's share of the tar x slowdown
// from the file source's, in one run with the conditions interleaved (the
// VM's noise moves the separate runs of BenchmarkFileTarX by more than the
// effect). One op is one round: tar x of /usr/share/doc into tmpfs under each
// condition in turn:
//
//   - none: no fanotify group (the baseline);
//   - kernel-P: a group with the init flags and the filesystem marks that
//     the source sets for profile P, drained by a reader that only reads
//     and discards, with the source's batching (poll while empty, then a
//     read every BatchDelay): the cost no listener of P's events can avoid;
//   - P: the file source with profile P.
//
// P is default, default-create (default without create: a new file then
// shows as a write only) and forensic; kernel-exec marks for exec only, an
// event tar never causes: what the filesystem marks cost by being there;
// busy-host is that profile's source (no create or write events).
// Reported per condition: the median over rounds of tar's wall time
// (slowdown-%) and CPU time (cpu-%) against none's in the same round.
func BenchmarkFileTarXFloor(b *testing.B) {
	testutil.RequireRoot(b)
	tarball := filepath.Join(b.TempDir(), "src.tar")
	if out, err := exec.Command("tar", "cf", tarball, "-C", "/usr/share", "doc").CombinedOutput(); err != nil {
		b.Skipf("build tarball: %v %s", err, out)
	}
	work, err := os.MkdirTemp("/dev/shm", "pofr-bench-")
	if err != nil {
		b.Skipf("needs /dev/shm: %v", err)
	}
	defer os.RemoveAll(work)
	prof := map[string]profiles.File{}
	for _, name := range []string{"default", "forensic"} {
		p, err := profiles.Get(name)
		if err != nil {
			b.Fatal(err)
		}
		prof[name] = p.File
	}
	nc := prof["default"]
	nc.Ops = nil
	for _, op := range prof["default"].Ops {
		if op != event.FileCreate {
			nc.Ops = append(nc.Ops, op)
		}
	}
	prof["default-create"] = nc
	prof["exec"] = profiles.File{Enabled: true, Ops: []string{event.FileExec}}
	conds := []string{"none", "kernel-exec"}
	for _, p := range []string{"default", "default-create", "forensic"} {
		conds = append(conds, "kernel-"+p, p)
	}
	conds = append(conds, "busy-host")
	if p, err := profiles.Get("busy-host"); err == nil {
		prof["busy-host"] = p.File
	}
	// Per round, each condition's time is divided by that round's none:
	// the median of those ratios follows the VM's drift less than a ratio of
	// medians would.
	wall, cpu := map[string][]float64{}, map[string][]float64{}
	var base []float64
	round := 0
	for b.Loop() {
		w, c := map[string]float64{}, map[string]float64{}
		for _, cond := range testutil.Interleaved(conds, round) {
			el, used := tarFloorRun(b, cond, prof, tarball, work)
			w[cond], c[cond] = el.Seconds(), used.Seconds()
		}
		base = append(base, w["none"])
		for _, cond := range conds[1:] {
			wall[cond] = append(wall[cond], w[cond]/w["none"])
			cpu[cond] = append(cpu[cond], c[cond]/c["none"])
		}
		round++
	}
	b.ReportMetric(testutil.Median(base)*1000, "none-ms")
	for _, c := range conds[1:] {
		b.ReportMetric(100*(testutil.Median(wall[c])-1), c+"-slowdown-%")
		b.ReportMetric(100*(testutil.Median(cpu[c])-1), c+"-cpu-%")
	}
}

// tarFloorRun runs one tar x into work under condition c of
// BenchmarkFileTarXFloor and returns how long tar took. (Outside the
// b.Loop body: go1.26.8's compiler crashed on this code there.) It also
// returns tar's CPU time (user + system, where the kernel charges its
// fanotify work).
func tarFloorRun(b *testing.B, c string, prof map[string]profiles.File, tarball, work string) (wall, cpu time.Duration) {
	var stop func()
	switch {
	case c == "none":
		stop = func() {}
	case strings.HasPrefix(c, "kernel-"):
		stop = startFanDrain(b, prof[strings.TrimPrefix(c, "kernel-")])
	default:
		stopSrc := startFileSource(b, &event.MemSink{}, prof[c])
		stop = func() { stopSrc() }
	}
	defer stop()
	dir := filepath.Join(work, "x")
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	defer func() {
		if out, err := exec.Command("rm", "-rf", dir).CombinedOutput(); err != nil {
			b.Fatalf("rm: %v %s", err, out)
		}
	}()
	t0 := time.Now()
	cmd := exec.Command("tar", "xf", tarball, "-C", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("tar x: %v %s", err, out)
	}
	wall = time.Since(t0)
	return wall, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

// startFanDrain sets up the fanotify group and marks of a file source for
// profile p and drains it without looking at the events.
func startFanDrain(b *testing.B, p profiles.File) func() {
	b.Helper()
	// The source's own group and marks, never Run: only drained here.
	src, err := New(Options{Sink: &event.MemSink{}, Profile: p})
	if err != nil {
		b.Fatal(err)
	}
	if src.Mode() != ModeFanotify {
		b.Fatalf("mode %s, want fanotify", src.Mode())
	}
	fd := src.fd
	var stopping atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 256<<10)
		for !stopping.Load() {
			n, _ := unix.Read(fd, buf)
			switch {
			case n >= len(buf)/2:
			case n > 0:
				time.Sleep(src.batch)
			default:
				pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
				_, _ = unix.Poll(pfd, 50)
			}
		}
	})
	return func() { stopping.Store(true); wg.Wait(); src.closeFanotify() }
}

// BenchmarkFileGoBuild: the "real build-like workload": go build of
// pofr-collector with its third-party dependencies recompiled (a -gcflags
// pattern new in every build changes their cache keys; the standard library
// stays cached, in a private GOCACHE warmed first), without a listener and
// with the default and forensic profiles, interleaved per round like
// BenchmarkFileTarXFloor. Reported: the median over rounds of the build's
// wall and CPU time against none's in the same round, and the file events
// per build.
func BenchmarkFileGoBuild(b *testing.B) {
	testutil.RequireRoot(b)
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		b.Skipf("no go command: %v", err)
	}
	_, file, _, _ := runtime.Caller(0)
	module := filepath.Dir(filepath.Dir(file))
	cache := b.TempDir()
	build := func(tag string) (wall, cpu time.Duration) {
		cmd := exec.Command(goBin, "build", "-o", os.DevNull, "-gcflags=github.com/...=-trimpath=/pofr-bench-"+tag, "./cmd/pofr-collector")
		cmd.Dir = module
		cmd.Env = append(os.Environ(), "GOCACHE="+cache)
		t0 := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("go build: %v %s", err, out)
		}
		return time.Since(t0), cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	build("warm") // the standard library, untimed
	conds := []string{"none", "default", "forensic"}
	prof := map[string]profiles.File{}
	for _, n := range conds[1:] {
		p, err := profiles.Get(n)
		if err != nil {
			b.Fatal(err)
		}
		prof[n] = p.File
	}
	wall, cpu, events := map[string][]float64{}, map[string][]float64{}, map[string][]float64{}
	round := 0
	for b.Loop() {
		w, c := map[string]float64{}, map[string]float64{}
		for _, cond := range testutil.Interleaved(conds, round) {
			var stop func() Stats
			if cond == "none" {
				stop = func() Stats { return Stats{} }
			} else {
				stop = startFileSource(b, &event.MemSink{}, prof[cond])
			}
			el, used := build(fmt.Sprintf("%d-%s", round, cond))
			st := stop()
			w[cond], c[cond] = el.Seconds(), used.Seconds()
			events[cond] = append(events[cond], float64(st.Events))
		}
		for _, cond := range conds[1:] {
			wall[cond] = append(wall[cond], w[cond]/w["none"])
			cpu[cond] = append(cpu[cond], c[cond]/c["none"])
		}
		round++
	}
	for _, c := range conds[1:] {
		b.ReportMetric(100*(testutil.Median(wall[c])-1), c+"-slowdown-%")
		b.ReportMetric(100*(testutil.Median(cpu[c])-1), c+"-cpu-%")
		b.ReportMetric(testutil.Median(events[c]), c+"-events/build")
	}
}

// startFileSource runs a file source with profile p into sink, in fanotify
// mode, and returns a function that stops it and returns its stats.
func startFileSource(b *testing.B, sink event.Sink, p profiles.File) func() Stats {
	b.Helper()
	src, err := New(Options{Sink: sink, Profile: p})
	if err != nil {
		b.Fatal(err)
	}
	if src.Stats().Mode != ModeFanotify {
		b.Fatalf("mode %s, want fanotify", src.Stats().Mode)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := src.Run(ctx); err != nil {
			b.Error(err)
		}
	})
	return func() Stats { cancel(); wg.Wait(); return src.Stats() }
}

// BenchmarkFileAggExec measures the aggregator on the file rows of execs:
// two new rows per exec (the program and its ELF interpreter, a new pid
// each time), a window flushed every 50 execs (about what a 10 ms window
// holds at 5,000 execs/s).
func BenchmarkFileAggExec(b *testing.B) {
	a := newFileAgg()
	prog, ld := []byte("/usr/bin/true"), []byte("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
	b.ReportAllocs()
	n := 0
	cpu0 := testutil.ProcessCPU()
	for b.Loop() {
		pid := int32(20000 + n%30000)
		start := event.Some(int64(n) * 10_000_000)
		a.add(pid, start, event.FileExec, prog, nil, int64(n))
		a.add(pid, start, event.FileExec, ld, nil, int64(n)+1000)
		if n++; n%50 == 0 {
			a.flush(event.Discard{})
		}
	}
	b.ReportMetric(float64(testutil.ProcessCPU()-cpu0)/float64(b.N), "cpu-ns/exec")
}
