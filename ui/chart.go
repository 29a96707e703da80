package ui

import (
	"fmt"
	"math"
	"net/url"
	"time"

	"github.com/pofr/pofr/query"
)

// The timeline chart: an SVG drawn on the server. Three lanes (processes,
// files, sockets) of bars, one per slice of the window, whose height grows
// with the log of the rows in it; every gap of the record crosses all lanes
// as a hatched band, and the time before the first and after the last
// loaded data is shaded as "no record", so that missing data never looks
// like a quiet host.
const (
	chartW       = 1000.0
	chartLeft    = 74.0
	laneH        = 34.0
	laneGap      = 6.0
	chartTop     = 6.0
	chartBuckets = 200
	minBandW     = 3.0 // a gap of a microsecond is still drawn
)

type bar struct {
	X, Y, W, H float64
	Title      string
	Href       string
}

type lane struct {
	Name  string
	Y     float64
	TextY float64
	Bars  []bar
	Total int64
}

type band struct {
	X, W  float64
	Title string
	Label string
	Href  string
}

type tick struct {
	X      float64
	Label  string
	Anchor string // SVG text-anchor: the end ticks stay inside the chart
}

type chart struct {
	W, H, Left   float64
	PlotW        float64
	Lanes        []lane
	Gaps         []band
	NoRecord     []band
	Ticks        []tick
	AtX          float64
	AtShown      bool
	BottomY      float64
	From, To     time.Time
	Buckets      int
	BucketLength string
}

// window is the timeline's time range.
type window struct{ From, To time.Time }

func (w window) span() time.Duration { return w.To.Sub(w.From) }

// x maps t to the chart's x coordinate, clamped to the plot.
func (c *chart) x(t time.Time) float64 {
	f := float64(t.Sub(c.From)) / float64(c.To.Sub(c.From))
	f = min(max(f, 0), 1)
	return c.Left + f*c.PlotW
}

// gapRow is one interval of gaps.sql.
type gapRow struct {
	From, To time.Time
	Source   string
	Lost     *int64
	Reason   string
}

func (g gapRow) title() string {
	s := fmt.Sprintf("gap %s – %s (%s): %s", g.From.UTC().Format(timeLayout), g.To.UTC().Format(timeLayout), g.Source, g.Reason)
	if g.Lost != nil {
		s += fmt.Sprintf(", %d lost", *g.Lost)
	}
	return s
}

func gapRows(t *query.Table) []gapRow {
	var out []gapRow
	for r := range t.Rows {
		out = append(out, gapRow{From: instant(t, r, "from_time"), To: instant(t, r, "to_time"),
			Source: text(t, r, "source"), Lost: optNum(t, r, "lost"), Reason: text(t, r, "reason")})
	}
	return out
}

// newChart draws density.sql's counts, the gaps and the record's span
// (first, last: zero when unknown) over w; zoom links keep the values q.
func newChart(host string, w window, at time.Time, density *query.Table, gaps []gapRow, first, last time.Time, q url.Values) *chart {
	c := &chart{W: chartW, Left: chartLeft, PlotW: chartW - chartLeft - 4, From: w.From, To: w.To, Buckets: chartBuckets}
	c.BucketLength = duration(w.span() / chartBuckets)
	names := []string{"proc", "file", "sock"}
	titles := map[string]string{"proc": "processes", "file": "files", "sock": "sockets"}
	counts := map[string][]int64{}
	for _, n := range names {
		counts[n] = make([]int64, chartBuckets)
	}
	for r := range density.Rows {
		k, b := text(density, r, "kind"), num(density, r, "bucket")
		if cs, ok := counts[k]; ok && b >= 0 && b < chartBuckets {
			cs[b] += num(density, r, "n")
		}
	}
	bw := c.PlotW / chartBuckets
	slice := w.span() / chartBuckets
	for i, n := range names {
		l := lane{Name: titles[n], Y: chartTop + float64(i)*(laneH+laneGap)}
		l.TextY = l.Y + laneH/2 + 4
		var peak int64 = 1
		for _, v := range counts[n] {
			peak = max(peak, v)
		}
		for b, v := range counts[n] {
			if v == 0 {
				continue
			}
			l.Total += v
			h := math.Max(2, laneH*math.Log1p(float64(v))/math.Log1p(float64(peak)))
			from := w.From.Add(time.Duration(b) * slice)
			zq := cloneValues(q)
			zq.Set("from", inputTime(from))
			zq.Set("to", inputTime(from.Add(slice)))
			l.Bars = append(l.Bars, bar{X: c.Left + float64(b)*bw, Y: l.Y + laneH - h, W: math.Max(bw-0.5, 0.5), H: h,
				Title: fmt.Sprintf("%d %s rows from %s (%s)", v, n, from.UTC().Format(timeLayout), duration(slice)),
				Href:  hostURL(host, zq)})
		}
		c.Lanes = append(c.Lanes, l)
	}
	c.BottomY = chartTop + 3*(laneH+laneGap)
	c.H = c.BottomY + 18
	for _, g := range gaps {
		if g.To.Before(w.From) || !g.From.Before(w.To) {
			continue
		}
		x0, x1 := c.x(g.From), c.x(g.To)
		width := math.Max(x1-x0, minBandW)
		c.Gaps = append(c.Gaps, band{X: x0, W: width, Title: g.title(), Label: "gap"})
	}
	if !first.IsZero() && first.After(w.From) {
		x1 := c.x(first)
		c.NoRecord = append(c.NoRecord, band{X: c.Left, W: x1 - c.Left, Title: "no record before " + first.UTC().Format(timeLayout), Label: "no record"})
	}
	if last.IsZero() || last.Before(w.To) {
		x0 := c.Left
		title := "no record loaded"
		if !last.IsZero() {
			x0 = c.x(last)
			title = "no record after " + last.UTC().Format(timeLayout) + " (the host's newest loaded data)"
		}
		if c.Left+c.PlotW-x0 > 0.5 {
			c.NoRecord = append(c.NoRecord, band{X: x0, W: c.Left + c.PlotW - x0, Title: title, Label: "no record"})
		}
	}
	for i := 0; i <= 4; i++ {
		t := w.From.Add(w.span() * time.Duration(i) / 4)
		layout := "15:04:05"
		if w.span() < 10*time.Second {
			layout = "15:04:05.000"
		}
		if w.span() > 48*time.Hour {
			layout = "01-02 15:04"
		}
		anchor := "middle"
		switch i {
		case 0:
			anchor = "start"
		case 4:
			anchor = "end"
		}
		c.Ticks = append(c.Ticks, tick{X: c.x(t), Label: t.UTC().Format(layout), Anchor: anchor})
	}
	if !at.Before(w.From) && at.Before(w.To) {
		c.AtShown, c.AtX = true, c.x(at)
	}
	return c
}

func cloneValues(q url.Values) url.Values {
	out := url.Values{}
	for k, v := range q {
		out[k] = append([]string{}, v...)
	}
	return out
}

// LostText is the lost count, "" when unknown.
func (g gapRow) LostText() string {
	if g.Lost == nil {
		return ""
	}
	return fmt.Sprint(*g.Lost)
}
