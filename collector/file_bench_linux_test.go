package collector

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/testutil"
	"github.com/pofr/pofr/profiles"
)

// benchSource starts a file source with the named profile ("none": no
// source) and returns its sink and a stop function that returns its stats.
func benchSource(b *testing.B, name string) (*event.MemSink, func() FileStats) {
	b.Helper()
	sink := &event.MemSink{}
	if name == "none" {
		return sink, func() FileStats { return FileStats{} }
	}
	p, err := profiles.Get(name)
	if err != nil {
		b.Fatal(err)
	}
	src, err := NewFileSource(FileOptions{Sink: sink, Profile: p.File})
	if err != nil {
		b.Fatal(err)
	}
	if src.Stats().Mode != FileModeFanotify {
		b.Fatalf("mode %s, want fanotify", src.Stats().Mode)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := src.Run(ctx); err != nil {
			b.Error(err)
		}
	})
	return sink, func() FileStats { cancel(); wg.Wait(); return src.Stats() }
}

// cpuSelf returns the CPU time (user + system) of this process, not of its
// children: with the workload in child processes, that is the listener's.
func cpuSelf() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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
// listener and with the default and forensic profiles (the loop runs in this
// process, so the listener's CPU is included in ns/op).
func BenchmarkFileOpenClose(b *testing.B) {
	for _, name := range []string{"none", "default", "forensic"} {
		b.Run(name, func(b *testing.B) {
			testutil.RequireRoot(b)
			f := filepath.Join(b.TempDir(), "f")
			if err := os.WriteFile(f, nil, 0o644); err != nil {
				b.Fatal(err)
			}
			_, stop := benchSource(b, name)
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
			cpu0 := cpuSelf()
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
			cpu := cpuSelf() - cpu0
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
