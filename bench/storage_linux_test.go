package bench

import (
	"log/slog"
	"testing"

	"github.com/pofr/pofr/internal/testutil"
)

// BenchmarkStorage runs the Loader/storage measurement alone (make bench's
// full size; its quick size with -short): database bytes per row of the
// busy-host mix, per table and per index.
// Service tier: a private MariaDB of the bench's own kind.
func BenchmarkStorage(b *testing.B) {
	testutil.RequireTier(b, testutil.TierService)
	m, err := StartMariaDB(b.Context(), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer m.Stop()
	opt, _ := LoaderBench{Quick: testing.Short()}.plans()
	var r Result
	for b.Loop() {
		r, _, err = LoaderBench{}.storage(b.Context(), m, opt)
		if err != nil {
			b.Fatal(err)
		}
	}
	for _, v := range r.Metrics {
		b.ReportMetric(v.Value, v.Unit)
	}
}
