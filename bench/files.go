package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// FileConfig describes a file churn: cycles of create, write, close,
// rename, open for reading, read, close, unlink, in Dir.
type FileConfig struct {
	Dir      string
	Rate     float64 // cycles per second
	Duration time.Duration
	Size     int // bytes written per file
}

// FileResult is what a churn did. Cycle i used [ChurnNames](i).
type FileResult struct {
	Owner  int    `json:"owner"`
	Dir    string `json:"dir"`
	Cycles int    `json:"cycles"`
	Start  int64  `json:"start_ns"`
	End    int64  `json:"end_ns"`
}

// ChurnNames returns the name a churn cycle creates and the name it renames
// it to.
func ChurnNames(i int) (created, renamed string) {
	s := strconv.Itoa(i)
	return "churn-" + s + ".tmp", "churn-" + s + ".dat"
}

// FileOpsPerCycle is how many file-system operations one churn cycle makes
// that a file recorder can see: create, open for writing, close after
// writing, rename, open for reading, unlink.
const FileOpsPerCycle = 6

// RunFiles runs the churn described by cfg in this process.
func RunFiles(ctx context.Context, cfg FileConfig) (FileResult, error) {
	if cfg.Rate <= 0 {
		return FileResult{}, fmt.Errorf("run file churn: rate %v, want > 0", cfg.Rate)
	}
	data := make([]byte, cfg.Size)
	buf := make([]byte, max(cfg.Size, 1))
	res := FileResult{Owner: os.Getpid(), Dir: cfg.Dir}
	want := int(cfg.Rate * cfg.Duration.Seconds())
	start := time.Now()
	for i := range paced(ctx, want, cfg.Rate) {
		a, b := ChurnNames(i)
		a, b = filepath.Join(cfg.Dir, a), filepath.Join(cfg.Dir, b)
		if err := os.WriteFile(a, data, 0o600); err != nil {
			return res, fmt.Errorf("churn: %w", err)
		}
		if err := os.Rename(a, b); err != nil {
			return res, fmt.Errorf("churn: %w", err)
		}
		f, err := os.Open(b)
		if err != nil {
			return res, fmt.Errorf("churn: %w", err)
		}
		_, err = io.ReadFull(f, buf[:cfg.Size])
		f.Close()
		if err != nil {
			return res, fmt.Errorf("churn: read %s: %w", b, err)
		}
		if err := os.Remove(b); err != nil {
			return res, fmt.Errorf("churn: %w", err)
		}
		res.Cycles++
	}
	res.Start, res.End = start.UnixNano(), time.Now().UnixNano()
	return res, ctx.Err()
}
