package ui

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pofr/pofr/query"
)

// procRow is one row of proc.sql.
type procRow struct {
	Relation, Event, User, Exe, Detail string
	Time                               time.Time
	PID, Start                         int64
	URL                                string
	Argv                               string
}

// execArgv is the argv of one exec (or snapshot) of the process.
type execArgv struct {
	Time  time.Time
	Event string
	Exe   string
	Args  []string // each argument made safe text
	Shell string   // query.FormatArgv
	// Escaped says that an argument holds bytes shown as escapes.
	Escaped bool
}

type life struct {
	Start   int64
	Started time.Time
	Exe     string
	URL     string
	Current bool
}

type procPage struct {
	Host, HostName, HostURL string
	PID, Start              int64
	Exe, User               string
	Started, Exited         time.Time
	Exit                    string
	Execs                   []execArgv
	Ancestors               []procRow
	Events                  []procRow
	Children                []procRow
	Files                   []procRow
	Socks                   []procRow
	Lives                   []life
	Truncated               bool
	TreeURL                 string
	// Conns are the process's sockets as conns.sql sees them (one row per
	// socket, with reverse DNS and geolocation when configured).
	Conns *grid
}

// procRows is the most rows of proc.sql one page shows.
const procRows = 5000

// proc is the process page: one life of a pid on a host.
func (s *Server) proc(rq *req) (string, *view, error) {
	id := rq.r.PathValue("host")
	pid, err := strconv.ParseInt(rq.r.PathValue("pid"), 10, 32)
	if err != nil || pid <= 0 {
		return "", nil, badRequest{fmt.Errorf("pid %q: want a process id", query.SafeString(rq.r.PathValue("pid")))}
	}
	var start *int64
	if v := rq.r.URL.Query().Get("start"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return "", nil, badRequest{fmt.Errorf("start %q: want the proc_start number", query.SafeString(v))}
		}
		start = &n
	}
	lives, err := rq.paged(50, 0).Run(rq.ctx, "proc_lives", query.Param{Name: "host", Value: id},
		query.Param{Name: "pid", Value: pid}, query.Param{Name: "start", Value: nil})
	if err != nil {
		return "", nil, err
	}
	if len(lives.Rows) == 0 {
		return "", nil, fmt.Errorf("%w: pid %d on host %s", query.ErrNoProcess, pid, query.SafeString(id))
	}
	p := &procPage{Host: query.SafeString(id), HostURL: hostURL(id, nil), PID: pid}
	chosen := -1
	for r := range lives.Rows {
		st := num(lives, r, "proc_start")
		if start == nil && chosen < 0 || start != nil && *start == st {
			chosen = r
		}
		p.Lives = append(p.Lives, life{Start: st, Started: instant(lives, r, "start_ts"), Exe: text(lives, r, "exe"),
			URL: procURL(id, pid, st)})
	}
	if chosen < 0 {
		return "", nil, fmt.Errorf("%w: pid %d@%d on host %s", query.ErrNoProcess, pid, *start, query.SafeString(id))
	}
	p.Lives[chosen].Current = true
	if len(p.Lives) == 1 {
		p.Lives = nil
	}
	p.Start = num(lives, chosen, "proc_start")
	st := p.Start
	t, err := rq.paged(procRows+1, 0).Proc(rq.ctx, id, int(pid), &st)
	if err != nil {
		return "", nil, err
	}
	if len(t.Rows) > procRows {
		p.Truncated = true
		t.Rows = t.Rows[:procRows]
	}
	for r := range t.Rows {
		row := procRow{Relation: text(t, r, "relation"), Event: text(t, r, "event"), User: text(t, r, "user"),
			Exe: text(t, r, "exe"), Detail: text(t, r, "detail"), Time: instant(t, r, "time"),
			PID: num(t, r, "pid"), Start: num(t, r, "proc_start")}
		argv := raw(t, r, "argv")
		if len(argv) > 0 {
			row.Argv = query.FormatArgv(argv)
		}
		row.URL = procURL(id, row.PID, row.Start)
		switch rel := row.Relation; {
		case rel == "parent" || strings.HasPrefix(rel, "ancestor"):
			p.Ancestors = append(p.Ancestors, row)
		case rel == "self":
			p.Events = append(p.Events, row)
			if p.Started.IsZero() {
				p.Started = row.Time
			}
			if row.Exe != "" {
				p.Exe = row.Exe
			}
			if row.User != "" {
				p.User = row.User
			}
			if row.Event == "exit" {
				p.Exited, p.Exit = row.Time, row.Detail
			}
			if len(argv) > 0 {
				e := execArgv{Time: row.Time, Event: row.Event, Exe: row.Exe, Args: args(argv), Shell: row.Argv}
				for _, a := range query.SplitArgv(argv) {
					if query.Safe(a) != string(a) {
						e.Escaped = true
					}
				}
				p.Execs = append(p.Execs, e)
			}
		case rel == "child":
			p.Children = append(p.Children, row)
		case rel == "file":
			p.Files = append(p.Files, row)
		case rel == "sock":
			p.Socks = append(p.Socks, row)
		}
	}
	if len(p.Socks) > 0 {
		r := query.Range{From: p.Started}
		if !p.Exited.IsZero() {
			r.To = p.Exited.Add(time.Second)
		}
		ct, err := rq.paged(procRows, 0).Conns(rq.ctx, query.ConnsArgs{Host: id, Range: r, Listening: "all"})
		if err != nil {
			return "", nil, err
		}
		var mine [][]any
		for i, row := range ct.Rows {
			if num(ct, i, "pid") == pid && num(ct, i, "proc_start") == p.Start {
				mine = append(mine, row)
			}
		}
		ct.Rows = mine
		p.Conns = newGrid(ct)
	}
	v := map[string][]string{"at": {inputTime(p.Started.Add(time.Microsecond))}}
	p.TreeURL = hostURL(id, v)
	return "proc", &view{Title: fmt.Sprintf("pid %d on %s", pid, p.Host), Nav: "fleet", Data: p}, nil
}
