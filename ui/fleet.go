package ui

import (
	"strings"
	"time"

	"github.com/pofr/pofr/query"
)

// fleetHost is one row of the fleet page.
type fleetHost struct {
	ID, Name, Status, IPs    string
	URL                      string
	LastSeen                 time.Time
	Age                      string
	Silent, Never            bool
	Chain                    string
	Segments, Missing        int64
	Gaps, Quarantined        int64
	Gaps24, Quarantined24    int64
	Modes                    string
	Poll, CustodyOK, Revoked bool
}

type fleetPage struct {
	Hosts       []fleetHost
	SilentAfter string
	Now         time.Time
	Pager       pager
}

// fleet is the fleet page: every host with its last data, capture modes,
// custody, and gaps and quarantined segments of the last 24 hours.
func (s *Server) fleet(rq *req) (string, *view, error) {
	pg := newPager(rq.r, s.opt.Limits.Rows)
	q := rq.paged(pg.limit(), pg.Offset)
	hosts, err := q.Hosts(rq.ctx)
	if err != nil {
		return "", nil, err
	}
	now := s.opt.Now().UTC()
	recent, err := s.runSQL(rq, q, "fleet", query.Param{Name: "now", Value: now})
	if err != nil {
		return "", nil, err
	}
	byID := map[string]int{}
	for r := range recent.Rows {
		byID[text(recent, r, "host_id")] = r
	}
	p := &fleetPage{Now: now, SilentAfter: duration(s.opt.SilentAfter)}
	n := pg.take(len(hosts.Rows))
	for r := range n {
		h := fleetHost{
			ID:          text(hosts, r, "host_id"),
			Name:        text(hosts, r, "hostname"),
			Status:      text(hosts, r, "status"),
			IPs:         text(hosts, r, "ips"),
			LastSeen:    instant(hosts, r, "last_seen"),
			Chain:       text(hosts, r, "chain"),
			Segments:    num(hosts, r, "segments"),
			Missing:     num(hosts, r, "missing_segments"),
			Gaps:        num(hosts, r, "gaps"),
			Quarantined: num(hosts, r, "quarantined"),
		}
		h.URL = hostURL(string(raw(hosts, r, "host_id")), nil)
		h.Revoked = h.Status != "active"
		if i, ok := byID[h.ID]; ok {
			h.Modes = text(recent, i, "modes")
			h.Gaps24 = num(recent, i, "gaps_24h")
			h.Quarantined24 = num(recent, i, "quarantined_24h")
		}
		h.Poll = strings.Contains(h.Modes, "=poll")
		switch {
		case h.LastSeen.IsZero():
			h.Never, h.Silent, h.Age = true, true, "never"
		default:
			age := now.Sub(h.LastSeen)
			h.Age = duration(max(age, 0)) + " ago"
			h.Silent = age > s.opt.SilentAfter
		}
		h.CustodyOK = h.Chain == "ok" && h.Missing == 0
		p.Hosts = append(p.Hosts, h)
	}
	return "fleet", &view{Title: "Fleet", Nav: "fleet", Data: p}, nil
}
