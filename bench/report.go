package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Report is the outcome of a run.
type Report struct {
	Results []Result
	Checks  []Check
	Notes   []string
	Machine string
	Failed  bool // a FAIL check (the seed's budget) or a collector that did not run
}

// Machine describes the machine the run measured: CPU model and count,
// memory, kernel and OS.
func Machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if _, v, ok := strings.Cut(strings.SplitN(string(b), "\n", 2)[0], ":"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			mem = fmt.Sprintf(", %.1f GiB RAM", float64(kb)/(1<<20))
		}
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = ", Linux " + strings.TrimSpace(string(b))
	}
	osName := ""
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				osName = ", " + strings.Trim(v, `"`)
			}
		}
	}
	return fmt.Sprintf("%s × %d%s%s%s, %s", model, runtime.NumCPU(), mem, kernel, osName, runtime.Version())
}

// busyClientRows is the row rate of a busy client for the loader's
// clients-per-core figure: 1000 exec/s, each a fork, an exec and an exit row.
const busyClientRows = 3000

// Conditions: who observes the workload.
const (
	condNone      = "none"
	condAuditd    = "auditd"
	condCollector = "collector"
	condPoller    = "poller"
	condFloor     = "cnproc-floor"
	// condCollectorCnproc is the collector with its process capture forced
	// to cn_proc (--no-proc-tracepoints): what collector, which captures
	// processes from tracepoint rings, replaced.
	condCollectorCnproc = "collector-cnproc"
	// condCollectorNoHash is the collector without executable hashes
	// (--no-exe-hash): the difference to condCollector is what hashing
	// costs per exec of an already hashed binary.
	condCollectorNoHash = "collector-nohash"
)

// median returns the median of unit over the repetitions of name, or NaN.
func median(sums []Summary, name, unit string) float64 {
	if s, ok := Find(sums, name, unit); ok {
		return s.Median
	}
	return math.NaN()
}

// extreme returns the minimum (or maximum) of unit over every result whose
// name has prefix and suffix, or NaN if there is none.
func extreme(results []Result, prefix, suffix, unit string, keep func(name string) bool, least bool) float64 {
	v := math.NaN()
	for _, r := range results {
		if !strings.HasPrefix(r.Name, prefix) || !strings.HasSuffix(r.Name, suffix) || keep != nil && !keep(r.Name) {
			continue
		}
		x, ok := r.Get(unit)
		if !ok {
			continue
		}
		if math.IsNaN(v) || least && x < v || !least && x > v {
			v = x
		}
	}
	return v
}

// Ratios returns the comparisons the report leads with, as results:
// collector ÷ auditd CPU per exec, and collector ÷ poller capture.
func Ratios(results []Result) []Result {
	sums := Aggregate(results)
	var out []Result
	for _, rate := range []string{"1000", "max"} {
		for _, peer := range []string{condAuditd, condFloor} {
			r := Result{Name: "Ratio/cpu-per-exec/rate=" + rate + "/collector÷" + peer, N: 1}
			r.Add(Ratio(median(sums, "Exec/rate="+rate+"/collector", "cpu-us/exec"), median(sums, "Exec/rate="+rate+"/"+peer, "cpu-us/exec")), "x")
			if len(r.Metrics) > 0 {
				out = append(out, r)
			}
		}
	}
	capture := func(prefix, unitC, unitP, what string) Result {
		var nc, np, n float64
		for _, r := range results {
			if !strings.HasPrefix(r.Name, prefix) {
				continue
			}
			if v, ok := r.Get(unitC); ok && strings.HasSuffix(r.Name, "/"+condCollector) {
				nc += v * float64(r.N) / 100
				n += float64(r.N)
			}
			if v, ok := r.Get(unitP); ok && strings.HasSuffix(r.Name, "/"+condPoller) {
				np += v * float64(r.N) / 100
			}
		}
		res := Result{Name: "Ratio/capture/" + strings.TrimSuffix(prefix, "/") + "-" + what + "/collector÷poller", N: int(n)}
		res.Add(Ratio(nc, np), "x")
		res.Add(Ratio(100*nc, n), "collector-%")
		res.Add(Ratio(100*np, n), "poller-%")
		return res
	}
	for _, r := range []Result{
		capture("Procs/", "argv-%", "argv-%", "argv"),
		capture("Conns/", "seen-%", "seen-%", "seen"),
		capture("Conns/", "owner-%", "owner-%", "owner"),
	} {
		if len(r.Metrics) > 0 {
			out = append(out, r)
		}
	}
	return out
}

// WriteMarkdown writes the report as markdown: the machine, the tables, the
// ratios, the checks and the notes.
func WriteMarkdown(w io.Writer, rep *Report, when time.Time, mode string) error {
	sums := Aggregate(rep.Results)
	var b strings.Builder
	fmt.Fprintf(&b, "Run %s (%s mode) on %s.\n\n", when.UTC().Format("2006-01-02 15:04 MST"), mode, rep.Machine)
	cell := func(name, unit string) string {
		if s, ok := Find(sums, name, unit); ok {
			return s.String()
		}
		return "–"
	}
	table := func(title string, rows [][2]string, cols [][2]string) {
		// A table of a section the run did not measure is left out.
		if !slices.ContainsFunc(rows, func(r [2]string) bool {
			return slices.ContainsFunc(cols, func(c [2]string) bool { return cell(r[0], c[0]) != "–" })
		}) {
			return
		}
		fmt.Fprintf(&b, "%s\n\n| |", title)
		for _, c := range cols {
			fmt.Fprintf(&b, " %s |", c[1])
		}
		b.WriteString("\n|---|")
		for range cols {
			b.WriteString("---:|")
		}
		b.WriteByte('\n')
		for _, r := range rows {
			fmt.Fprintf(&b, "| %s |", r[1])
			for _, c := range cols {
				fmt.Fprintf(&b, " %s |", cell(r[0], c[0]))
			}
			b.WriteByte('\n')
		}
		b.WriteByte('\n')
	}

	var execRows [][2]string
	for _, rate := range []string{"1000", "max"} {
		for _, cond := range []string{condNone, condAuditd, condFloor, condCollectorCnproc, condCollectorNoHash, condCollector} {
			execRows = append(execRows, [2]string{"Exec/rate=" + rate + "/" + cond, rate + " exec/s, " + cond})
		}
	}
	table("**Exec storm** (`/bin/true`, one child at a time; median [min–max] over repetitions)", execRows, [][2]string{
		{"exec/s", "exec/s"}, {"slowdown-%", "slowdown %"}, {"lat-p50-us", "fork→reap p50 µs"}, {"lat-slowdown-%", "p50 slowdown %"},
		{"wl-cpu-us/exec", "workload CPU µs/exec"}, {"cpu-us/exec", "observer CPU µs/exec"}, {"cpu-%core", "observer % core"},
		{"exec-%", "execs recorded %"}, {"argv-%", "argv %"}, {"exe-%", "exe %"}, {"rss-MB", "peak RSS MB"},
		{"spool-B/row", "spool B/row"}, {"log-B/exec", "audit log B/exec"},
	})

	if _, ok := Find(sums, "ExecAB/"+condNone, "us/exec"); ok {
		var abRows [][2]string
		for _, cond := range abConds {
			abRows = append(abRows, [2]string{"ExecAB/" + cond, cond})
		}
		table("**Exec A/B** (1 s blocks of fork → exec → reap of a static no-libc program that exits at once, as fast as possible, "+
			"the observer started before and stopped after each block, the order rotated each repetition; the spawner's own + its "+
			"children's CPU per exec; delta = block − the same repetition's none block, median and quartiles over repetitions)",
			abRows, [][2]string{{"us/exec", "CPU µs/exec"}, {"delta-us/exec", "delta µs/exec"}, {"delta-q1-us/exec", "delta Q1"},
				{"delta-q3-us/exec", "delta Q3"}, {"exec/s", "exec/s"}})
	}
	if _, ok := Find(sums, "Idle/"+condCollector, "cpu-%core"); ok {
		table("**Idle collector** (no workload; CPU from /proc/PID/stat over the window after its first seal and a warm-up; events "+
			"it recorded from the rest of the host in that window; the start-up's CPU, from the start to the window)",
			[][2]string{{"Idle/" + condCollector, "collector"}},
			[][2]string{{"cpu-%core", "% core"}, {"exec/s", "execs/s"}, {"file-events/s", "file events/s"}, {"rss-MB", "RSS MB"},
				{"startup-cpu-ms", "start-up CPU ms"}, {"startup-s", "start-up s"}})
	}

	var procRows, connRows, fileRows [][2]string
	seen := map[string]bool{}
	for _, s := range sums {
		bucket, _, _ := strings.Cut(s.Name[strings.IndexByte(s.Name, '/')+1:], "/"+condCollector)
		if seen[s.Name] || !strings.HasSuffix(s.Name, "/"+condCollector) {
			continue
		}
		seen[s.Name] = true
		stem := strings.TrimSuffix(s.Name, "/"+condCollector)
		switch {
		case strings.HasPrefix(s.Name, "Procs/"):
			procRows = append(procRows, [2]string{stem, strings.TrimPrefix(bucket, "life=")})
		case strings.HasPrefix(s.Name, "Conns/"):
			connRows = append(connRows, [2]string{stem, bucket})
		case strings.HasPrefix(s.Name, "Files/"):
			fileRows = append(fileRows, [2]string{s.Name, strings.TrimPrefix(bucket, "op=")})
		}
	}
	if len(procRows) > 0 {
		var rows [][2]string
		for _, r := range procRows {
			rows = append(rows, r)
		}
		b.WriteString("**Processes by lifetime** (static binary; lifetime 0 exits at once; collector and poller side by side on the same processes)\n\n")
		b.WriteString("| lifetime | collector exec % | collector argv % | collector exe % | poller argv % |\n|---|---:|---:|---:|---:|\n")
		for _, r := range rows {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", r[1], cell(r[0]+"/collector", "exec-%"), cell(r[0]+"/collector", "argv-%"),
				cell(r[0]+"/collector", "exe-%"), cell(r[0]+"/poller", "argv-%"))
		}
		b.WriteByte('\n')
	}
	if len(connRows) > 0 {
		b.WriteString("**Loopback connections by kind and lifetime** (client end; owner = attributed to the generating process)\n\n")
		b.WriteString("| connection | collector seen % | collector close % | collector owner % | poller seen open % | poller owner % |\n|---|---:|---:|---:|---:|---:|\n")
		for _, r := range connRows {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", r[1], cell(r[0]+"/collector", "seen-%"), cell(r[0]+"/collector", "close-%"),
				cell(r[0]+"/collector", "owner-%"), cell(r[0]+"/poller", "seen-%"), cell(r[0]+"/poller", "owner-%"))
		}
		b.WriteByte('\n')
	}
	if len(fileRows) > 0 {
		table("**File churn** (create, write, rename, read, unlink; cycles recorded per op)", fileRows, [][2]string{{"seen-%", "collector %"}})
	}
	table("**Costs**", [][2]string{
		{"Capture/collector", "collector, capture run"}, {"Capture/poller", "POFR-style poller, capture run"},
		{"Conn/collector", "collector, connections only"}, {"File/collector", "collector, file churn only"},
	}, [][2]string{{"cpu-%core", "% core"}, {"cpu-us/conn", "CPU µs/conn"}, {"cpu-us/conn-net", "net of background"},
		{"cpu-us/conn-stop", "of which the stop (seal)"}, {"cpu-us/event", "CPU µs/file event"},
		{"cpu-us/event-net", "net of background"}, {"cpu-us/event-stop", "of which the stop (seal)"}, {"bg-%core", "background % core"},
		{"rss-MB", "peak RSS MB"}, {"spool-B/row", "spool B/row"}, {"snap-kB/min", "snapshots kB/min"}})

	var loaderRows [][2]string
	rows := int64(0)
	for _, r := range rep.Results {
		if w, ok := strings.CutPrefix(r.Name, "Loader/workers="); ok && !seen[r.Name] {
			seen[r.Name] = true
			label := w + " workers"
			if w == "1" {
				label = "1 worker"
			}
			loaderRows = append(loaderRows, [2]string{r.Name, label})
			rows = int64(r.N)
		}
	}
	if len(loaderRows) > 0 {
		table(fmt.Sprintf("**Loader** (%d rows of a busy host's mix into a private MariaDB; the ceiling is a plain `LOAD DATA LOCAL` "+
			"of the same rows pre-rendered as text, same tables and indexes, same run; best of the rounds)", rows), loaderRows, [][2]string{
			{"rows/s", "loader rows/s"}, {"ceiling-rows/s", "plain LOAD DATA rows/s"}, {"ratio", "loader ÷ plain"},
			{"cpu-s/Mrows", "loader CPU s/Mrows"}, {"ceiling-cpu-s/Mrows", "plain LOAD DATA CPU s/Mrows"},
		})
		if cpu := median(sums, loaderRows[0][0], "cpu-s/Mrows"); cpu > 0 {
			perCore := 1e6 / cpu
			fmt.Fprintf(&b, "At %s CPU s per million rows (%s), one core of pofr-server load verifies, decodes and sends %s rows/s: "+
				"≈ %s busy clients at a sustained 1000 exec/s (%d process rows/s each, fork + exec + exit), MariaDB's own CPU not counted.\n\n",
				FormatValue(cpu), loaderRows[0][1], FormatValue(perCore),
				FormatValue(perCore/busyClientRows), busyClientRows)
		}
	}
	for _, r := range rep.Results {
		if r.Name == storageResult {
			table(fmt.Sprintf("**Database bytes per row** (%d rows of the busy-host mix loaded by the loader; on disk: the "+
				"tables' .ibd files' allocated blocks after FLUSH TABLES … FOR EXPORT; logical: DATA_LENGTH + INDEX_LENGTH)", r.N),
				[][2]string{{storageResult, "bytes per row"}}, [][2]string{
					{"db-B/row", "all, disk"}, {"db-logical-B/row", "all, logical"},
					{"proc-B/row", "proc, disk"}, {"proc-logical-B/row", "proc, logical"},
					{"file-B/row", "file, disk"}, {"file-logical-B/row", "file, logical"},
					{"sock-B/row", "sock, disk"}, {"sock-logical-B/row", "sock, logical"},
					{"spool-B/row", "spool"}, {"rows/s", "loader rows/s"},
				})
			break
		}
	}
	for _, r := range rep.Results {
		if r.Name == latencyResult {
			num := func(unit string) string {
				if v, ok := r.Get(unit); ok {
					return FormatValue(v)
				}
				return "?"
			}
			table(fmt.Sprintf("**Exec → queryable** (%d marked execs spread over %s s, through pofr-server serve, pofr-collector run and "+
				"pofr-server load --watch on this host; the profile's segment age %s s and upload interval %s s, load every %s s)",
				r.N, num("window-s"), num("segment-age-s"), num("upload-s"), num("load-watch-s")),
				[][2]string{{latencyResult, "exec row visible in MariaDB"}}, [][2]string{
					{"queryable-%", "queryable %"}, {"p50-s", "p50 s"}, {"p99-s", "p99 s"}, {"max-s", "max s"},
				})
			break
		}
	}

	if rs := Ratios(rep.Results); len(rs) > 0 {
		b.WriteString("**Ratios**\n\n")
		for _, r := range rs {
			v, _ := r.Get("x")
			fmt.Fprintf(&b, "- %s: **%s×**", strings.TrimPrefix(r.Name, "Ratio/"), FormatValue(v))
			if c, ok := r.Get("collector-%"); ok {
				p, _ := r.Get("poller-%")
				fmt.Fprintf(&b, " (%s %% vs %s %% of %d)", FormatValue(c), FormatValue(p), r.N)
			}
			b.WriteByte('\n')
		}
		b.WriteByte('\n')
	}
	b.WriteString("**Thresholds**\n\n```\n")
	for _, c := range rep.Checks {
		b.WriteString(c.String() + "\n")
	}
	b.WriteString("```\n")
	if len(rep.Notes) > 0 {
		b.WriteString("\n**Notes**\n\n")
		for _, n := range rep.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
