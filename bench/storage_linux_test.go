package bench

import (
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pofr/pofr/internal/testutil"
)

// startBenchMariaDB starts a private MariaDB of the bench's own kind
// (service tier), stopped when b ends.
func startBenchMariaDB(b *testing.B) *MariaDB {
	testutil.RequireTier(b, testutil.TierService)
	m, err := StartMariaDB(b.Context(), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Stop() })
	return m
}

// BenchmarkStorage runs the Loader/storage measurement alone (make bench's
// full size; its quick size with POFR_BENCH_QUICK=1): database bytes per row of the
// busy-host mix, per table and per index.
// Service tier: a private MariaDB of the bench's own kind.
func BenchmarkStorage(b *testing.B) {
	m := startBenchMariaDB(b)
	opt, _ := LoaderBench{Quick: os.Getenv("POFR_BENCH_QUICK") != ""}.plans()
	var r Result
	for b.Loop() {
		var err error
		r, _, err = LoaderBench{}.storage(b.Context(), m, opt)
		if err != nil {
			b.Fatal(err)
		}
	}
	for _, v := range r.Metrics {
		b.ReportMetric(v.Value, v.Unit)
	}
}

// BenchmarkStorageOptions compares ways of storing the event tables
// (StorageOptions: as created, page compression with zlib levels and lz4,
// ROW_FORMAT=COMPRESSED, at the quick size only) in one private MariaDB, interleaved: bytes on disk
// and logically per row, and the loader's rows/s beside a plain LOAD DATA
// into the same tables. make bench's full size; POFR_BENCH_QUICK=1 for the
// quick size, POFR_BENCH_ROUNDS for more rounds than 2, POFR_BENCH_OPTIONS to
// pick options by name (comma-separated).
// Service tier.
func BenchmarkStorageOptions(b *testing.B) {
	m := startBenchMariaDB(b)
	quick := os.Getenv("POFR_BENCH_QUICK") != ""
	opt, _ := LoaderBench{Quick: quick}.plans()
	opt.Rounds = 2
	if n, err := strconv.Atoi(os.Getenv("POFR_BENCH_ROUNDS")); err == nil && n > 0 {
		opt.Rounds = n
	}
	only := os.Getenv("POFR_BENCH_OPTIONS") // names, comma-separated; empty: all
	var opts []StorageOption
	for _, o := range StorageOptions {
		if (quick || !o.Slow) && (only == "" || slices.Contains(strings.Split(only, ","), o.Name)) {
			opts = append(opts, o)
		}
	}
	for b.Loop() {
		rs, err := CompareStorageOptions(b.Context(), m, opt, opts, slog.New(slog.NewTextHandler(os.Stderr, nil)))
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range rs {
			b.Log(r.String())
		}
	}
}
