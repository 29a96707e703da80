package ui

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/pofr/pofr/query"
)

// overBudget reports a statement MariaDB interrupted at max_statement_time.
func overBudget(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1969
}

// hostInfo is host.sql's row.
type hostInfo struct {
	ID, Name, Status, IPs, OS, Kernel, Version, Modes string
	FirstData, LastData                               time.Time
}

// tlEvent is one row of the timeline list, or a gap between rows.
type tlEvent struct {
	Time                   time.Time
	Kind, Event, User, Exe string
	Detail, Argv           string
	PID                    int64
	PIDURL                 string
	Gap                    *gapRow
	GapTitle               string
}

type link struct{ Label, Href, Title string }

type hostPage struct {
	Host      hostInfo
	URL       string
	At        time.Time
	AtInput   string
	FromInput string
	ToInput   string
	Filter    string
	Tree      *tree
	// Full says the tree was asked for without the budget; Deferred is the
	// link that asks for it when the budget ran out.
	Full      bool
	Deferred  string
	Budget    string
	Truncated bool
	Chart     *chart
	Gaps      []gapRow
	Events    []tlEvent
	Pager     pager
	Zoom      []link
	Steps     []link
	Span      string
}

// host is the host page: the process tree at a moment and the timeline of
// a window around it.
func (s *Server) host(rq *req) (string, *view, error) {
	id := rq.r.PathValue("host")
	qv := rq.r.URL.Query()
	info, err := s.runSQL(rq, rq.paged(1, 0), "host", query.Param{Name: "host", Value: id})
	if err != nil {
		return "", nil, err
	}
	if len(info.Rows) == 0 {
		return "", nil, fmt.Errorf("%w: host %q is not registered", errNotFound, query.SafeString(id))
	}
	p := &hostPage{Host: hostInfo{
		ID: text(info, 0, "host_id"), Name: text(info, 0, "hostname"), Status: text(info, 0, "status"),
		IPs: text(info, 0, "ips"), OS: text(info, 0, "os"), Kernel: text(info, 0, "kernel"),
		Version: text(info, 0, "version"), Modes: text(info, 0, "modes"),
		FirstData: instant(info, 0, "first_data"), LastData: instant(info, 0, "last_data"),
	}, URL: hostURL(id, nil), Filter: qv.Get("q")}

	at := p.Host.LastData
	if at.IsZero() {
		at = s.opt.Now().UTC()
	}
	if v := qv.Get("at"); v != "" {
		if at, err = query.ParseTime(v); err != nil {
			return "", nil, badRequest{fmt.Errorf("at: %w", err)}
		}
	}
	p.At, p.AtInput = at, inputTime(at)
	w := window{From: at.Add(-15 * time.Minute), To: at.Add(5 * time.Minute)}
	if v := qv.Get("from"); v != "" {
		if w.From, err = query.ParseTime(v); err != nil {
			return "", nil, badRequest{fmt.Errorf("from: %w", err)}
		}
	}
	if v := qv.Get("to"); v != "" {
		if w.To, err = query.ParseTime(v); err != nil {
			return "", nil, badRequest{fmt.Errorf("to: %w", err)}
		}
	}
	if !w.From.Before(w.To) {
		return "", nil, badRequest{fmt.Errorf("from %s is not before to %s", inputTime(w.From), inputTime(w.To))}
	}
	if w.span() > s.opt.Limits.Window {
		return "", nil, badRequest{fmt.Errorf("the timeline shows at most %s at once; zoom in", duration(s.opt.Limits.Window))}
	}
	if w.span() < 10*time.Microsecond {
		w.To = w.From.Add(10 * time.Microsecond)
	}
	p.FromInput, p.ToInput, p.Span = inputTime(w.From), inputTime(w.To), duration(w.span())

	// The tree at the moment, within the tree budget unless asked for in
	// full: an exact tree reads every process row of the boot up to the
	// moment.
	p.Full = qv.Get("tree") == "full"
	cost, err := s.runSQL(rq, rq.q, "treecost", query.Param{Name: "host", Value: id}, query.Param{Name: "at", Value: at})
	if err != nil {
		return "", nil, err
	}
	tq := rq.quick
	if p.Full || len(cost.Rows) == 1 && num(cost, 0, "proc_rows") <= int64(s.opt.Limits.SmallTree) {
		tq = rq.q
	}
	tq = withTrace(tq, rq)
	tq.Page = query.Page{Limit: s.opt.Limits.TreeNodes + 1}
	// The tree runs beside the timeline's queries, on its own connection:
	// the page takes the longer of the two, not their sum.
	type result struct {
		t   *query.Table
		err error
	}
	treeDone := make(chan result, 1)
	go func() {
		t, err := tq.Tree(rq.ctx, id, at)
		treeDone <- result{t, err}
	}()
	defer func() {
		select {
		case <-treeDone: // an early return waits for the query's end
		case <-rq.ctx.Done():
		}
	}()

	// The timeline: density chart, gaps, and a page of rows.
	density, err := s.runSQL(rq, rq.q, "density", query.Param{Name: "host", Value: id},
		query.Param{Name: "from", Value: w.From}, query.Param{Name: "to", Value: w.To},
		query.Param{Name: "buckets", Value: int64(chartBuckets)})
	if err != nil {
		return "", nil, err
	}
	gt, err := rq.paged(s.opt.Limits.Rows, 0).Gaps(rq.ctx, id, query.Range{From: w.From, To: w.To})
	if err != nil {
		return "", nil, err
	}
	p.Gaps = gapRows(gt)
	keep := url.Values{}
	for _, k := range []string{"at", "q"} {
		if v := qv.Get(k); v != "" {
			keep.Set(k, v)
		}
	}
	p.Chart = newChart(id, w, at, density, p.Gaps, p.Host.FirstData, p.Host.LastData, keep)

	p.Pager = newPagerParam(rq.r, "tpage", s.opt.Limits.Rows)
	tl, err := rq.paged(p.Pager.limit(), p.Pager.Offset).Run(rq.ctx, "timeline", query.Param{Name: "host", Value: id},
		query.Param{Name: "pid"}, query.Param{Name: "from", Value: w.From}, query.Param{Name: "to", Value: w.To})
	if err != nil {
		return "", nil, err
	}
	n := p.Pager.take(len(tl.Rows))
	gaps := p.Gaps
	if p.Pager.Page > 1 && n > 0 { // gaps before this page were shown on earlier pages
		first := instant(tl, 0, "time")
		for len(gaps) > 0 && gaps[0].From.Before(first) {
			gaps = gaps[1:]
		}
	}
	for r := range n {
		t := instant(tl, r, "time")
		for len(gaps) > 0 && !gaps[0].From.After(t) {
			p.Events = append(p.Events, tlEvent{Time: gaps[0].From, Gap: &gaps[0], GapTitle: gaps[0].title()})
			gaps = gaps[1:]
		}
		e := tlEvent{Time: t, Kind: text(tl, r, "kind"), Event: text(tl, r, "event"), User: text(tl, r, "user"),
			Exe: text(tl, r, "exe"), Detail: text(tl, r, "detail"), PID: num(tl, r, "pid")}
		if a := raw(tl, r, "argv"); len(a) > 0 {
			e.Argv = query.FormatArgv(a)
		}
		if e.PID > 0 {
			e.PIDURL = procURL(id, e.PID, 0)
		}
		p.Events = append(p.Events, e)
	}
	if !p.Pager.More {
		for i := range gaps {
			p.Events = append(p.Events, tlEvent{Time: gaps[i].From, Gap: &gaps[i], GapTitle: gaps[i].title()})
		}
	}

	tr := <-treeDone
	treeDone <- tr // for the deferred wait
	tt, err := tr.t, tr.err
	switch {
	case err == nil:
		if len(tt.Rows) > s.opt.Limits.TreeNodes {
			p.Truncated = true
			tt.Rows = tt.Rows[:s.opt.Limits.TreeNodes]
		}
		p.Tree = buildTree(id, tt)
		p.Tree.filter(p.Filter)
	case overBudget(err) && !p.Full:
		v := cloneValues(qv)
		v.Set("tree", "full")
		p.Tree = &tree{}
		p.Deferred = hostURL(id, v) + "#tree-section"
		p.Budget = duration(s.opt.TreeBudget)
	default:
		return "", nil, err
	}

	// Zoom and pan keep the moment and the filter; the steps keep the window.
	mk := func(label, title string, f, t time.Time) link {
		v := cloneValues(keep)
		v.Set("from", inputTime(f))
		v.Set("to", inputTime(t))
		return link{Label: label, Title: title, Href: hostURL(id, v)}
	}
	span := w.span()
	mid := w.From.Add(span / 2)
	p.Zoom = []link{
		mk("◀ earlier", "pan left by half the window", w.From.Add(-span/2), w.To.Add(-span/2)),
		mk("zoom in", "half the window, same centre", mid.Add(-span/4), mid.Add(span/4)),
		mk("zoom out", "twice the window, same centre", mid.Add(-span), mid.Add(span)),
		mk("later ▶", "pan right by half the window", w.From.Add(span/2), w.To.Add(span/2)),
		mk("around the moment", "the window centred on the tree's moment", at.Add(-span/2), at.Add(span/2)),
	}
	step := func(label string, d time.Duration) link {
		v := url.Values{}
		v.Set("at", inputTime(at.Add(d)))
		v.Set("from", p.FromInput)
		v.Set("to", p.ToInput)
		if p.Filter != "" {
			v.Set("q", p.Filter)
		}
		return link{Label: label, Title: "move the tree's moment by " + label, Href: hostURL(id, v)}
	}
	p.Steps = []link{step("−1m", -time.Minute), step("−10s", -10*time.Second), step("−1s", -time.Second),
		step("+1s", time.Second), step("+10s", 10*time.Second), step("+1m", time.Minute)}
	title := p.Host.Name
	if title == "" {
		title = p.Host.ID
	}
	return "host", &view{Title: title, Nav: "fleet", Data: p}, nil
}
