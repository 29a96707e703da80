package loader

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/spool"
)

// memSegment builds a segment in memory (no file, no signature) from
// records, for tests of the database side alone.
func memSegment(host string, seq uint64, prev string, procs []event.Proc, files []event.File, socks []event.Sock, gaps []event.Gap, accts []event.Account) *segment {
	recs := map[string]arrow.RecordBatch{}
	m := &spool.Manifest{Format: spool.FormatName, Version: spool.Version, HostID: host, BootID: "boot-1", Seq: seq, PrevDigest: prev,
		Created: time.Now().UTC(), MinTS: 1, MaxTS: 2, TZOffset: 3600, Modes: map[string]string{"proc": "netlink"},
		Counters: map[string]spool.Counter{"proc": {Seen: 1}}}
	add := func(table string, rec arrow.RecordBatch) {
		if rec.NumRows() > 0 {
			recs[table] = rec
			m.Members = append(m.Members, spool.Member{Name: table + ".arrow", Table: table, Rows: rec.NumRows()})
		}
	}
	add(event.TableProc, build(event.ProcTable, procs))
	add(event.TableFile, build(event.FileTable, files))
	add(event.TableSock, build(event.SockTable, socks))
	add(event.TableGap, build(event.GapTable, gaps))
	add(event.TableAcct, build(event.AcctTable, accts))
	d := sha256.Sum256(fmt.Appendf(nil, "%s/%d/%s", host, seq, prev))
	return &segment{manifest: m, digest: hex.EncodeToString(d[:]),
		record: func(table string) (arrow.RecordBatch, error) { return recs[table], nil },
		release: func() {
			for _, r := range recs {
				r.Release()
			}
		}}
}

func build[R any](t *event.Table[R], rows []R) arrow.RecordBatch {
	b := t.NewBuilder(nil)
	defer b.Release()
	for i := range rows {
		b.Append(&rows[i])
	}
	return b.NewRecord()
}
