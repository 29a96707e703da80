package main

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progressBar renders a load pass as a progress bar (segments, rows/s, ETA)
// on w, a terminal.
type progressBar struct {
	w     io.Writer
	start time.Time
	bar   *progressbar.ProgressBar
}

func (p *progressBar) Start(segments int) {
	p.start = time.Now()
	p.bar = progressbar.NewOptions64(int64(segments),
		progressbar.OptionSetWriter(p.w),
		progressbar.OptionSetDescription("loading"),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionShowDescriptionAtLineEnd(),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(p.w) }),
	)
}

// Done is safe from several workers: the bar has its own lock and start is
// written before the workers begin.
func (p *progressBar) Done(rows int64) {
	el := time.Since(p.start).Seconds()
	p.bar.Describe(fmt.Sprintf("%d rows, %.0f rows/s", rows, float64(rows)/max(el, 1e-3)))
	p.bar.Add(1)
}

func (p *progressBar) Finish() { p.bar.Finish() }
