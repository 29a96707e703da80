package query

import (
	"strings"
	"testing"
	"time"
)

// BenchmarkTimelineDNSName times query conns on one synthetic host
// (newFleet: 2,000 process lives, a socket row and a DNS answer for its
// remote address per life) with the DNS name looked up in dns_names
// against the scan of dns_events it replaced, interleaved.
func BenchmarkTimelineDNSName(b *testing.B) {
	db := newFleet(b, 1, 2000)
	cn, err := SQL("conns")
	if err != nil {
		b.Fatal(err)
	}
	i := strings.Index(cn, "    CASE WHEN k.remote_port <> 0 THEN")
	j := strings.Index(cn, "END AS dns_name,")
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
	}{{"conns", cn, scan}} {
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
