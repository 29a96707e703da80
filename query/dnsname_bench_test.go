package query

import (
	"strings"
	"testing"
	"time"
)

// BenchmarkTimelineDNSName times the whole timeline of one synthetic host
// (newFleet: 2,000 process lives, a socket row and a DNS answer for its
// remote address per life) with the DNS name of socket rows looked up in
// dns_names and without it (the CASE replaced by the bare detail),
// interleaved, and conns with dns_names against conns with the scan of
// dns_events it replaced. The bar: the name costs the timeline ≤ 1.5×.
func BenchmarkTimelineDNSName(b *testing.B) {
	db := newFleet(b, 1, 2000)
	tl, err := SQL("timeline")
	if err != nil {
		b.Fatal(err)
	}
	i := strings.Index(tl, "  CASE WHEN t.kind = 'sock' AND t._remote_port <> 0 THEN")
	j := strings.Index(tl, "ELSE t.detail END AS detail,")
	if i < 0 || j < 0 {
		b.Fatal("timeline.sql: no DNS name CASE")
	}
	noName := tl[:i] + "  t.detail," + tl[j+len("ELSE t.detail END AS detail,"):]
	cn, err := SQL("conns")
	if err != nil {
		b.Fatal(err)
	}
	i = strings.Index(cn, "    CASE WHEN k.remote_port <> 0 THEN")
	j = strings.Index(cn, "END AS dns_name,")
	if i < 0 || j < 0 {
		b.Fatal("conns.sql: no dns_name lookup")
	}
	scan := cn[:i] + `    (SELECT d.qname FROM dns_events d
      WHERE d.host_id = k.host AND d.event = 'response' AND k.remote_port <> 0
        AND d.ts <= k.first_seen + INTERVAL 5 SECOND AND d.ts > k.first_seen - INTERVAL 1 DAY
        AND LOCATE(CONCAT(',', HEX(k.remote_addr), ','), d.answer_addrs) > 0
      ORDER BY (d.boot_id = k._boot_id AND d.pid <=> k.pid AND d.proc_start <=> k.proc_start) DESC, d.ts DESC
      LIMIT 1) AS dns_name,` + cn[j+len("END AS dns_name,"):]
	var nulls []Param
	for _, n := range []string{"pid", "from", "to", "remote", "lo4", "hi4", "lo6", "hi6", "ports", "listening",
		"hour_from", "hour_to", "user", "uid", "exe", "container"} {
		nulls = append(nulls, Param{n, nil})
	}
	for _, c := range []struct {
		name     string
		new, old string
	}{{"timeline", tl, noName}, {"conns", cn, scan}} {
		b.Run(c.name, func(b *testing.B) {
			var tNew, tOld time.Duration
			var rows int
			for b.Loop() {
				for _, r := range []struct {
					text string
					d    *time.Duration
				}{{c.new, &tNew}, {c.old, &tOld}} {
					start := time.Now()
					rows = runCountParams(b, db, r.text, nulls)
					*r.d += time.Since(start)
				}
			}
			b.ReportMetric(float64(rows), "rows")
			b.ReportMetric(float64(tNew.Microseconds())/1e3/float64(b.N), "new-ms/op")
			b.ReportMetric(float64(tOld.Microseconds())/1e3/float64(b.N), "old-ms/op")
			b.ReportMetric(float64(tNew)/float64(tOld), "new/old")
		})
	}
}
