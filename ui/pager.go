package ui

import (
	"net/http"
	"net/url"
	"strconv"
)

// pager pages a table of rows: page N (from 1) shows rows (N-1)*Size ..
// N*Size-1. It asks the database for one row more than it shows, to know
// whether there is a next page.
type pager struct {
	Param  string // the query parameter ("page")
	Page   int
	Size   int
	Offset int
	More   bool
	// Prev and Next are the links to the neighbouring pages ("" for none).
	Prev, Next string
	r          *http.Request
}

// maxPage bounds the page number: OFFSET is not free.
const maxPage = 10000

func newPager(r *http.Request, size int) pager {
	return newPagerParam(r, "page", size)
}

func newPagerParam(r *http.Request, param string, size int) pager {
	p := pager{Param: param, Page: 1, Size: size, r: r}
	if n, err := strconv.Atoi(r.URL.Query().Get(param)); err == nil && n > 1 {
		p.Page = min(n, maxPage)
	}
	p.Offset = (p.Page - 1) * size
	return p
}

// limit is the LIMIT to ask for.
func (p *pager) limit() int { return p.Size + 1 }

// take records how many rows came back and returns how many to show.
func (p *pager) take(n int) int {
	p.More = n > p.Size
	if p.Page > 1 {
		p.Prev = p.link(p.Page - 1)
	}
	if p.More {
		p.Next = p.link(p.Page + 1)
		return p.Size
	}
	return n
}

func (p *pager) link(n int) string {
	q := p.r.URL.Query()
	if n <= 1 {
		q.Del(p.Param)
	} else {
		q.Set(p.Param, strconv.Itoa(n))
	}
	u := url.URL{Path: p.r.URL.Path, RawQuery: q.Encode()}
	return u.String()
}
