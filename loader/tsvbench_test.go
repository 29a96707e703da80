package loader

import (
	"io"
	"testing"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/servertest"
)

// BenchmarkTSVRender renders a realistic proc member (repeated comm, exe and
// cwd from dictionaries, distinct argv) as the LOAD DATA stream.
func BenchmarkTSVRender(b *testing.B) {
	procs, _, _ := servertest.BusyRows(servertest.HostileBase(), 300_000)
	rec := build(event.ProcTable, procs)
	defer rec.Release()
	ti, _ := infoOf(event.TableProc)
	r, err := newTSVReader(ti, rec, Escaped)
	if err != nil {
		b.Fatal(err)
	}
	n, err := io.Copy(io.Discard, r)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(n)
	b.ReportAllocs()
	for b.Loop() {
		r, _ := newTSVReader(ti, rec, Escaped)
		if _, err := io.Copy(io.Discard, r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rec.NumRows())*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
