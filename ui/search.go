package ui

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/pofr/pofr/query"
)

// field is one input of a search form.
type field struct {
	Name, Label, Value, Hint string
	Options                  []string // a select when set
}

type tab struct {
	Name, Title, Question string
	URL                   string
	Current               bool
	fields                []field // the question's own form fields
}

// grid is a query table for a page: columns, and cells of safe text with
// links to host and process pages.
type grid struct {
	Cols []string
	Rows [][]gridCell
}

type gridCell struct {
	Text  string
	Href  string
	Class string
}

type searchPage struct {
	Tabs      []tab
	Tab       string
	Question  string
	Fields    []field
	Asked     bool
	Permalink string
	Result    *grid
	Pager     pager
}

// searchTabs are the questions, each with its form's own fields (after
// searchCommon's).
var searchTabs = []tab{
	{Name: "ran", Title: "ran", Question: "What ran: by user, program or command line (pofr-server query ran)", fields: []field{
		{Name: "user", Label: "user", Hint: "name or uid (real, effective or login)"},
		{Name: "exe", Label: "exe", Hint: "path, or a base name"},
		{Name: "argv", Label: "argv like", Hint: "SQL LIKE on the command line: %nmap%"},
	}},
	{Name: "touched", Title: "touched", Question: "Who touched a path, or anything under a directory (pofr-server query touched)", fields: []field{
		{Name: "path", Label: "path", Hint: "exact path, or a directory ending in /"},
		{Name: "op", Label: "op", Options: []string{"", "open", "exec", "write", "create", "delete", "rename", "moved_from", "moved_to", "fd"}},
		{Name: "exe", Label: "exe", Hint: "path, or a base name"},
	}},
	{Name: "conns", Title: "conns", Question: "Who talked to an address, a network or a port (pofr-server query conns)", fields: []field{
		{Name: "remote", Label: "remote", Hint: "address or CIDR: 203.0.113.0/24"},
		{Name: "port", Label: "port", Hint: "local or remote port; several: 22,443"},
		{Name: "listening", Label: "sockets", Options: []string{"", "only", "all"}, Hint: "empty: connected; only: listeners; all: both"},
		{Name: "user", Label: "user", Hint: "name or uid"},
		{Name: "exe", Label: "exe", Hint: "path, or a base name"},
		{Name: "hours", Label: "hours", Hint: "time of day on the host: 22-04"},
	}},
	{Name: "peers", Title: "peers", Question: "Which monitored hosts talk to each other, process to process (pofr-server query peers)", fields: []field{
		{Name: "slack", Label: "slack", Hint: "clock skew allowed between hosts: 5s"},
	}},
}

// searchCommon are the fields every question's form starts with.
var searchCommon = []field{
	{Name: "host", Label: "host", Hint: "host id or hostname; empty: every host"},
	{Name: "since", Label: "since", Hint: "90m, 2h, 3d, 1w; or from/to"},
	{Name: "from", Label: "from", Hint: "YYYY-MM-DD HH:MM[:SS] UTC or RFC 3339"},
	{Name: "to", Label: "to", Hint: "excluded"},
}

// search is the search page: the query questions as forms whose answers
// have permalinks (the form is a GET).
func (s *Server) search(rq *req) (string, *view, error) {
	qv := rq.r.URL.Query()
	name := qv.Get("q")
	if name == "" {
		name = "ran"
	}
	p := &searchPage{Tab: name}
	for _, t := range searchTabs {
		t.URL = "/search?q=" + t.Name
		if t.Name == name {
			t.Current = true
			p.Question = t.Question
			p.Fields = append(slices.Clone(searchCommon), t.fields...)
		}
		p.Tabs = append(p.Tabs, t)
	}
	if p.Question == "" {
		return "", nil, badRequest{fmt.Errorf("no question %q (ran, touched, conns, peers)", query.SafeString(name))}
	}
	get := func(k string) string { return strings.TrimSpace(qv.Get(k)) }
	since := get("since")
	if _, set := qv["since"]; !set && get("from") == "" && get("to") == "" {
		since = "24h"
	}
	for i, f := range p.Fields {
		if f.Name == "since" {
			p.Fields[i].Value = since
		} else {
			p.Fields[i].Value = get(f.Name)
		}
	}
	p.Asked = get("go") != ""
	if !p.Asked {
		return "search", &view{Title: "Search", Nav: "search", Data: p}, nil
	}
	r, err := query.ParseRange(since, get("from"), get("to"), s.opt.Now())
	if err != nil {
		return "", nil, badRequest{err}
	}
	p.Permalink = rq.r.URL.RequestURI()
	p.Pager = newPager(rq.r, s.opt.Limits.Rows)
	q := rq.paged(p.Pager.limit(), p.Pager.Offset)
	var t *query.Table
	switch name {
	case "ran":
		t, err = q.Ran(rq.ctx, query.RanArgs{Host: get("host"), Range: r, User: get("user"), Exe: get("exe"), ArgvLike: get("argv")})
	case "touched":
		if get("path") == "" {
			return "", nil, badRequest{fmt.Errorf("touched needs a path")}
		}
		t, err = q.Touched(rq.ctx, query.TouchedArgs{Path: qv.Get("path"), Host: get("host"), Range: r, Op: get("op"), Exe: get("exe")})
	case "conns":
		a := query.ConnsArgs{Host: get("host"), Range: r, Remote: get("remote"), Listening: query.Listening(get("listening")),
			User: get("user"), Exe: get("exe"), Hours: get("hours")}
		for f := range strings.SplitSeq(get("port"), ",") {
			if f = strings.TrimSpace(f); f == "" {
				continue
			}
			n, perr := strconv.Atoi(f)
			if perr != nil || n < 0 || n > 65535 {
				return "", nil, badRequest{fmt.Errorf("port %q: want 0-65535", query.SafeString(f))}
			}
			a.Ports = append(a.Ports, n)
		}
		t, err = q.Conns(rq.ctx, a)
	case "peers":
		a := query.PeersArgs{Host: get("host"), Range: r}
		if v := get("slack"); v != "" {
			if a.Slack, err = query.ParseSince(v); err != nil {
				return "", nil, badRequest{err}
			}
		}
		t, err = q.Peers(rq.ctx, a)
	}
	if err != nil {
		if isUsage(err) {
			return "", nil, badRequest{err}
		}
		return "", nil, err
	}
	n := p.Pager.take(len(t.Rows))
	t.Rows = t.Rows[:n]
	p.Result = newGrid(t)
	return "search", &view{Title: "Search: " + name, Nav: "search", Data: p}, nil
}

// isUsage reports errors in what the analyst typed (bad CIDR, hours, …),
// as opposed to the database's.
func isUsage(err error) bool {
	s := err.Error()
	return strings.HasPrefix(s, "--") || strings.Contains(s, "conns --country")
}

// newGrid turns a query table into a grid: every value as safe text, host
// columns linked to host pages and pid columns to process pages.
func newGrid(t *query.Table) *grid {
	g := &grid{}
	var idx []int
	for i, c := range t.Columns {
		if c.Show == query.ShowNone || c.Show == query.ShowJSON {
			continue
		}
		g.Cols = append(g.Cols, c.Name)
		idx = append(idx, i)
	}
	for r, row := range t.Rows {
		cells := make([]gridCell, len(idx))
		for j, i := range idx {
			c := t.Columns[i]
			cells[j] = gridCell{Text: query.Output{}.Text(c, row[i])}
			switch c.Kind {
			case query.Argv:
				cells[j].Class = "argv"
			case query.Int:
				cells[j].Class = "num"
			case query.Time:
				cells[j].Class = "time"
			}
			if row[i] == nil {
				continue
			}
			switch c.Name {
			case "host", "client_host", "server_host":
				cells[j].Href = hostURL(string(raw(t, r, c.Name)), nil)
			case "pid", "client_pid", "server_pid":
				hostCol := strings.TrimSuffix(c.Name, "pid") + "host"
				if c.Name == "pid" {
					hostCol = "host"
				}
				if h := raw(t, r, hostCol); h != nil {
					var st int64
					if c.Name == "pid" {
						st = num(t, r, "proc_start")
					}
					cells[j].Href = procURL(string(h), num(t, r, c.Name), st)
				}
			}
		}
		g.Rows = append(g.Rows, cells)
	}
	return g
}

// searchURL is the permalink of a question with values.
func searchURL(name string, v url.Values) string {
	v.Set("q", name)
	v.Set("go", "1")
	return "/search?" + v.Encode()
}
