package ui

import (
	"strconv"
	"strings"
	"time"

	"github.com/pofr/pofr/query"
)

// node is one process of a tree.
type node struct {
	PID, Start int64
	URL        string
	User       string
	Login      string
	Exe        string
	Argv       string // shell words, escaped (query.FormatArgv)
	Started    time.Time
	// Search is the lower-case text the filter matches: pid, user, exe, argv.
	Search   string
	Match    bool
	Children []*node
}

// tree is a process tree built from tree.sql's rows as query.Tree orders
// them (depth first, with a depth column).
type tree struct {
	Roots []*node
	Count int
	// Shown is the number of nodes left after the filter.
	Shown int
}

// buildTree nests t's rows by their depth column.
func buildTree(host string, t *query.Table) *tree {
	tr := &tree{}
	var stack []*node
	for r := range t.Rows {
		depth := int(num(t, r, "depth"))
		n := &node{
			PID:     num(t, r, "pid"),
			Start:   num(t, r, "proc_start"),
			User:    text(t, r, "user"),
			Login:   text(t, r, "login"),
			Exe:     text(t, r, "exe"),
			Started: instant(t, r, "started"),
		}
		if a := raw(t, r, "argv"); len(a) > 0 {
			n.Argv = query.FormatArgv(a)
		}
		if n.User == "" {
			n.User = text(t, r, "uid")
		}
		n.URL = procURL(host, n.PID, n.Start)
		n.Search = strings.ToLower(strconv.FormatInt(n.PID, 10) + " " + n.User + " " + n.Exe + " " + n.Argv)
		tr.Count++
		if depth > len(stack) {
			depth = len(stack)
		}
		stack = stack[:depth]
		if depth == 0 {
			tr.Roots = append(tr.Roots, n)
		} else {
			p := stack[depth-1]
			p.Children = append(p.Children, n)
		}
		stack = append(stack, n)
	}
	tr.Shown = tr.Count
	return tr
}

// filter keeps the processes whose pid, user, exe or argv contain f (any
// case) and their ancestors; it marks the matches.
func (tr *tree) filter(f string) {
	f = strings.ToLower(strings.TrimSpace(f))
	if f == "" {
		return
	}
	tr.Shown = 0
	var keep func(ns []*node) []*node
	keep = func(ns []*node) []*node {
		var out []*node
		for _, n := range ns {
			n.Children = keep(n.Children)
			n.Match = strings.Contains(n.Search, f)
			if n.Match || len(n.Children) > 0 {
				out = append(out, n)
				tr.Shown++
			}
		}
		return out
	}
	tr.Roots = keep(tr.Roots)
}
