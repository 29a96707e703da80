package bench

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/pofr/pofr/internal/servertest"
	"github.com/pofr/pofr/loader"
)

// BenchmarkLoad measures the loader against the ceiling (a plain LOAD DATA
// LOCAL of the same rows, pre-rendered) with 1, 2 and 4 workers, in the
// same run. Service tier: a private MariaDB. Size with POFR_BENCH_SEGMENTS
// and POFR_BENCH_ROWS (per segment); run with -benchtime=1x.
func BenchmarkLoad(b *testing.B) {
	_, dsn := servertest.SchemaDB(b, loader.OpenDB)
	segs, _ := strconv.Atoi(os.Getenv("POFR_BENCH_SEGMENTS"))
	rows, _ := strconv.Atoi(os.Getenv("POFR_BENCH_ROWS"))
	for _, n := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("workers=%d", n), func(b *testing.B) {
			var r LoadResult
			for b.Loop() {
				res, err := MeasureLoad(b.Context(), LoadOptions{DSN: dsn, Workers: []int{n}, Segments: segs, RowsPerSegment: rows})
				if err != nil {
					b.Fatal(err)
				}
				r = res[0]
			}
			b.ReportMetric(r.LoaderRowsPerSec, "rows/s")
			b.ReportMetric(r.CeilingRowsPerSec, "ceiling-rows/s")
			b.ReportMetric(r.Ratio, "ratio")
			b.ReportMetric(r.LoaderCPUPerMRows, "cpu-s/Mrows")
			b.Log(r.String())
		})
	}
}
