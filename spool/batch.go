package spool

import (
	"math"
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/pofr/pofr/internal/event"
)

// Estimated in-memory bytes of a row without its variable-length fields.
const (
	procRowBytes  = 144
	fileRowBytes  = 72
	sockRowBytes  = 112
	gapRowBytes   = 48
	acctRowBytes  = 24
	exeRowBytes   = 120
	dnsRowBytes   = 96
	loginRowBytes = 80
	ctrRowBytes   = 96
)

// batch is the rows of one future segment.
type batch struct {
	proc    *event.Builder[event.Proc]
	file    *event.Builder[event.File]
	sock    *event.Builder[event.Sock]
	acct    *event.Builder[event.Account]
	exe     *event.Builder[event.Executable]
	dns     *event.Builder[event.DNS]
	login   *event.Builder[event.Login]
	ctr     *event.Builder[event.Container]
	gaps    []event.Gap
	n       [8]int64 // rows of proc, file, sock, acct, exe, dns, login, ctr
	rows    int64    // all rows, gaps included
	est     int64    // estimated bytes
	lo, hi  int64    // time range of the rows
	started time.Time
	recs    map[string]arrow.RecordBatch // built by finish
}

func newBatch() *batch { return &batch{lo: math.MaxInt64, hi: math.MinInt64} }

// finish turns the builders into record batches (once).
func (b *batch) finish() {
	if b.recs != nil {
		return
	}
	b.recs = map[string]arrow.RecordBatch{}
	seal(b.recs, event.TableProc, &b.proc)
	seal(b.recs, event.TableFile, &b.file)
	seal(b.recs, event.TableSock, &b.sock)
	seal(b.recs, event.TableAcct, &b.acct)
	seal(b.recs, event.TableExe, &b.exe)
	seal(b.recs, event.TableDNS, &b.dns)
	seal(b.recs, event.TableLogin, &b.login)
	seal(b.recs, event.TableCtr, &b.ctr)
}

// seal turns the builder *bp, if any, into the record of table and drops it.
func seal[R any](recs map[string]arrow.RecordBatch, table string, bp **event.Builder[R]) {
	if *bp != nil {
		recs[table] = (*bp).NewRecord()
		(*bp).Release()
		*bp = nil
	}
}

func (b *batch) release() {
	b.finish()
	for k, r := range b.recs {
		r.Release()
		delete(b.recs, k)
	}
}

// splitFunc rebuilds a record's rows before h and from h as two records. A
// slice would not do: it keeps the whole dictionaries, so neither half
// would be smaller on disk.
type splitFunc func(rec arrow.RecordBatch, h int64) (arrow.RecordBatch, arrow.RecordBatch)

// splitters are the splitFuncs of the tables a batch holds records of.
var splitters = map[string]splitFunc{
	event.TableProc:  splitIn(event.ProcTable),
	event.TableFile:  splitIn(event.FileTable),
	event.TableSock:  splitIn(event.SockTable),
	event.TableAcct:  splitIn(event.AcctTable),
	event.TableExe:   splitIn(event.ExeTable),
	event.TableLogin: splitIn(event.LoginTable),
	event.TableCtr:   splitIn(event.CtrTable),
	event.TableDNS:   splitIn(event.DNSTable),
}

// splitIn returns the splitFunc of t's records.
func splitIn[R any](t *event.Table[R]) splitFunc {
	return func(rec arrow.RecordBatch, h int64) (arrow.RecordBatch, arrow.RecordBatch) {
		bx, by := t.NewBuilder(nil), t.NewBuilder(nil)
		defer bx.Release()
		defer by.Release()
		for i := range rec.NumRows() {
			var r R
			t.Row(rec, int(i), &r)
			if i < h {
				bx.Append(&r)
			} else {
				by.Append(&r)
			}
		}
		return bx.NewRecord(), by.NewRecord()
	}
}

// split divides a finished batch into two of about half its rows each,
// every table and the gap rows halved, with exact time ranges.
func (b *batch) split() (*batch, *batch) {
	b.finish()
	x, y := newBatch(), newBatch()
	x.recs, y.recs = map[string]arrow.RecordBatch{}, map[string]arrow.RecordBatch{}
	for table, rec := range b.recs {
		n := rec.NumRows()
		h := (n + 1) / 2
		split := splitters[table]
		if split == nil {
			panic("spool: split of unknown table " + table)
		}
		rx, ry := split(rec, h)
		x.recs[table], x.rows = rx, x.rows+rx.NumRows()
		if ry.NumRows() > 0 {
			y.recs[table], y.rows = ry, y.rows+ry.NumRows()
		} else {
			ry.Release()
		}
	}
	h := (len(b.gaps) + 1) / 2
	x.gaps, y.gaps = slices.Clone(b.gaps[:h]), slices.Clone(b.gaps[h:])
	for _, p := range []*batch{x, y} {
		p.rows += int64(len(p.gaps))
		p.started = b.started
		if b.rows > 0 {
			p.est = b.est * p.rows / b.rows
		}
		for _, rec := range p.recs {
			tsRange(rec, &p.lo, &p.hi)
		}
		for _, g := range p.gaps {
			p.lo, p.hi = min(p.lo, g.FromTS, g.ToTS), max(p.hi, g.FromTS, g.ToTS)
		}
	}
	return x, y
}
