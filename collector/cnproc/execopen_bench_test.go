package cnproc

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/testutil"
)

// BenchmarkProcTableExecOpen is the table's cost for one short-lived
// dynamic exec with fanotify on: fork, the exec's two exec-opens (program
// and ELF interpreter, each with its file's key), the exec with exe from
// /proc, exit. open-first is the tracepoint reader's usual order (a drain
// applies the opens it read before its events); exec-first holds the exec
// row until its open comes.
func BenchmarkProcTableExecOpen(b *testing.B) {
	for _, c := range []struct {
		name      string
		openFirst bool
	}{{"open-first", true}, {"exec-first", false}} {
		b.Run(c.name, func(b *testing.B) {
			clk := &testClock{t: time.Unix(1_800_000_000, 0)}
			tb := newProcTable(event.Discard{}, slog.New(slog.NewTextHandler(io.Discard, nil)), &procCounters{}, clk.now)
			tb.selfPID = -1
			in := execInfo(1, "worker", "/usr/bin/worker", "worker\x00")
			opens := func(pid int32) {
				tb.onOpen(procExecOpen{pid: pid, path: []byte("/usr/bin/worker"), exeKey: 7})
				tb.onOpen(procExecOpen{pid: pid, path: []byte("/lib64/ld-linux-x86-64.so.2"), exeKey: 8})
			}
			msgs := func(frame []byte) []procMsg {
				m, err := decodeProcEvents(frame, nil)
				if err != nil {
					b.Fatal(err)
				}
				return m
			}
			pid := int32(1000)
			cpu0 := testutil.ProcessCPU()
			for b.Loop() {
				pid++
				if pid > 30000 {
					pid = 1001
				}
				fork := msgs(procTestFrame(procEventFork, 1, 1, 1, uint32(pid), uint32(pid)))
				exec := msgs(procTestFrame(procEventExec, 2, uint32(pid), uint32(pid)))
				exit := msgs(procTestFrame(procEventExit, 3, uint32(pid), uint32(pid), 0, 17, 1, 1))
				tb.handle(&procItem{kind: procItemEvent, msg: fork[0]})
				if c.openFirst {
					opens(pid)
				}
				tb.handle(&procItem{kind: procItemEvent, msg: exec[0], info: in})
				if !c.openFirst {
					opens(pid)
				}
				tb.handle(&procItem{kind: procItemEvent, msg: exit[0]})
			}
			// Wall time is the machine's load; CPU time is ours.
			b.ReportMetric(float64(testutil.ProcessCPU()-cpu0)/float64(b.N), "cpu-ns/exec")
			if rows := tb.st.rows.Load(); rows < 3*uint64(b.N) {
				b.Fatalf("%d rows for %d execs", rows, b.N)
			}
		})
	}
}
