package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pofr/pofr/fleet"
	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/servertest"
	"github.com/pofr/pofr/internal/testutil"
	"github.com/pofr/pofr/ui"
)

// newRoutedFleet is two hosts with busy records, h2 pinned to s2, loaded,
// under a Spider head; it returns the fixture and its shard map.
func newRoutedFleet(t *testing.T) (*fleetFixture, *fleet.Map) {
	t.Helper()
	x := newFleet(t, "h1", "h2")
	x.run(t, 0, "shards", "pin", "h2", "s2")
	for i, h := range []string{"h1", "h2"} {
		procs, files, socks := servertest.BusyRows(servertest.HostileBase()+int64(i)*1000, 300)
		x.f.Seal(h, func(s event.Sink) { event.AppendAll(s, procs, files, socks, nil, nil) })
	}
	x.run(t, 0, "load")
	x.applyHead(t)
	m, err := fleet.Load(x.mapf)
	if err != nil {
		t.Fatal(err)
	}
	return x, m
}

// TestFleetExportOnShard: export --host through the head with a shard map
// reads the host's shard (the log says so) and writes exactly what export
// on the shard writes.
func TestFleetExportOnShard(t *testing.T) {
	x, m := newRoutedFleet(t)
	export := func(dsnFile string, extra ...string) (string, string) {
		t.Helper()
		return runH2(t, append([]string{"export", "--host", "h2.example", "--bulk", "--dsn-file", dsnFile}, extra...)...)
	}
	for _, table := range []string{"proc", "file", "sock"} {
		onShard, _ := export(m.Shards[1].ReaderDSNFile, "--table", table)
		routed, logs := export(m.Head.ReaderDSNFile, "--table", table, "--shards", x.mapf)
		if !strings.Contains(logs, "per-host query on the host's shard") || !strings.Contains(logs, "shard=s2") {
			t.Errorf("export --table %s through the head with a map was not sent to s2:\n%s", table, logs)
		}
		if routed != onShard {
			t.Errorf("export --table %s of h2: routed %d bytes, on the shard %d; want the same bytes", table, len(routed), len(onShard))
		}
	}
}

// TestFleetPerHostQueryOnShard: given the head's DSN and the shard map, a
// per-host question runs on the host's shard (the log says so) and answers
// what the shard answers; with a map that names no reader DSN file for the
// shard it reads the head, with the same answer.
func TestFleetPerHostQueryOnShard(t *testing.T) {
	x, m := newRoutedFleet(t)
	ask := func(q, dsnFile string, extra ...string) (string, string) {
		t.Helper()
		args := append([]string{"query", q, "--host", "h2.example", "--json", "--dsn-file", dsnFile}, extra...)
		if q == "timeline" {
			args = append(args, "--since", "2d")
		}
		return runH2(t, args...)
	}
	onShard, _ := ask("timeline", m.Shards[1].ReaderDSNFile, "--shards", x.mapf)
	routed, logs := ask("timeline", m.Head.ReaderDSNFile, "--shards", x.mapf)
	if !strings.Contains(logs, "per-host query on the host's shard") || !strings.Contains(logs, "shard=s2") {
		t.Errorf("timeline through the head with a map was not sent to s2:\n%s", logs)
	}
	// A map without the shards' reader DSN files: the head answers.
	noReaders := *m
	noReaders.Shards = append([]fleet.Shard(nil), m.Shards...)
	for i := range noReaders.Shards {
		noReaders.Shards[i].ReaderDSNFile = ""
	}
	nf := filepath.Join(t.TempDir(), "shards.json")
	if err := noReaders.Save(nf); err != nil {
		t.Fatal(err)
	}
	if routed != onShard {
		t.Errorf("timeline of h2: routed %d bytes, on the shard %d; want the same", len(routed), len(onShard))
	}
	// Through the head itself (no reader DSN files in the map): the same
	// answer, the union of the shards' (h2's rows are all on s2).
	// timeline.sql has no correlated subquery, whose outer column Spider
	// would send to the shard (Error 1054).
	tlHead, logs := ask("timeline", m.Head.ReaderDSNFile, "--shards", nf)
	if strings.Contains(logs, "per-host query on the host's shard") {
		t.Errorf("timeline routed without a reader DSN file for the shard:\n%s", logs)
	}
	if tlHead != onShard {
		t.Errorf("timeline of h2: through the head %d bytes, on the shard %d; want the same", len(tlHead), len(onShard))
	}
	treeRouted, _ := ask("tree", m.Head.ReaderDSNFile, "--shards", x.mapf, "--at", "2100-01-01")
	treeHead, logs := ask("tree", m.Head.ReaderDSNFile, "--shards", nf, "--at", "2100-01-01")
	if strings.Contains(logs, "per-host query on the host's shard") {
		t.Errorf("routed without a reader DSN file for the shard:\n%s", logs)
	}
	if treeRouted != treeHead {
		t.Errorf("tree of h2: routed %q, through the head %q; want the same", treeRouted, treeHead)
	}
}

// runH2 runs a question about h2 (args) with debug logging and returns its
// output and its log; it fails the test unless it exits 0 with at least 10
// lines.
func runH2(t *testing.T, args ...string) (out, logs string) {
	t.Helper()
	args = append([]string{"--log-level", "debug"}, args...)
	code, out, logs := runApp(t, args...)
	if code != 0 || strings.Count(out, "\n") < 10 {
		t.Fatalf("%v: exit %d, %d lines\n%s", args, code, strings.Count(out, "\n"), logs)
	}
	return out, logs
}

// startUI runs the web interface on dsnFile (with the shard map in
// shardsFile unless "") until the test ends, and returns its URL and log.
func startUI(t *testing.T, dsnFile, shardsFile string) (string, *testutil.SyncBuffer) {
	t.Helper()
	logs := &testutil.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dsn, err := readDSNFile(dsnFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := ui.Config{Listen: "127.0.0.1:0", DSN: dsn}
	if shardsFile != "" {
		if cfg.Shard, err = uiShards(log, shardsFile); err != nil || cfg.Shard == nil {
			t.Fatalf("uiShards: %v", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- ui.Run(ctx, cfg, log, pw); pw.Close() }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("ui: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("ui did not stop within 30s")
		}
	})
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(pr).ReadString('\n')
		line <- l
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case l := <-line:
		u := regexp.MustCompile(`https?://\S+/`).FindString(l)
		if u == "" {
			t.Fatalf("ui did not start: %q\n%s", l, logs)
		}
		return strings.TrimSuffix(u, "/"), logs
	case <-time.After(60 * time.Second):
		t.Fatalf("ui did not listen within 60s:\n%s", logs)
	}
	return "", nil
}

func fetchPage(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Minute}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	return string(b)
}

// TestFleetUIPerHostPagesOnShard: started on the head with a shard map, the
// web interface serves a host's pages (host page with tree and timeline,
// process page) from the host's shard (the log says so): each page is the
// page the interface serves on the shard alone. The fleet page stays on
// the head.
func TestFleetUIPerHostPagesOnShard(t *testing.T) {
	x, m := newRoutedFleet(t)
	shardURL, _ := startUI(t, m.Shards[1].ReaderDSNFile, "")
	headURL, logs := startUI(t, m.Head.ReaderDSNFile, x.mapf)

	hostPage := fetchPage(t, shardURL+"/host/h2?tree=full")
	procLink := regexp.MustCompile(`/host/h2/proc/[0-9]+\?start=[0-9]+`).FindString(hostPage)
	if procLink == "" {
		t.Fatalf("the host page of h2 on the shard links no process:\n%s", hostPage)
	}
	for _, path := range []string{
		"/host/h2",
		"/host/h2?tree=full",
		procLink,
	} {
		want := fetchPage(t, shardURL+path)
		before := strings.Count(logs.String(), "per-host page on the host's shard")
		got := fetchPage(t, headURL+path)
		if n := strings.Count(logs.String(), "per-host page on the host's shard"); n != before+1 || !strings.Contains(logs.String(), "shard=s2") {
			t.Errorf("GET %s through the head with a map was not sent to s2:\n%s", path, logs)
		}
		// The host page's tree runs beside its timeline: the list of
		// statements run has them in either order.
		if got, want = sortedSQL(got), sortedSQL(want); got != want {
			t.Errorf("GET %s: through the head with a map %d bytes, on the shard %d; want the same page\n%s", path, len(got), len(want), firstDiff(got, want))
		}
	}
	before := strings.Count(logs.String(), "per-host page on the host's shard")
	fleetPage := fetchPage(t, headURL+"/")
	if !strings.Contains(fleetPage, "h1") || !strings.Contains(fleetPage, "h2") {
		t.Errorf("the fleet page through the head lacks h1 or h2:\n%s", fleetPage)
	}
	if strings.Count(logs.String(), "per-host page on the host's shard") != before {
		t.Errorf("the fleet page was routed to a shard:\n%s", logs)
	}
}

// TestFleetUIHostPageOnHead: started on the head without a shard map, the
// web interface serves a host's page through Spider (its timeline has no
// correlated subquery, which Spider cannot ship: Error 1054) and the page's
// timeline rows are the rows the interface shows on the shard alone.
func TestFleetUIHostPageOnHead(t *testing.T) {
	_, m := newRoutedFleet(t)
	shardURL, _ := startUI(t, m.Shards[1].ReaderDSNFile, "")
	headURL, _ := startUI(t, m.Head.ReaderDSNFile, "")
	want := timelineRows(t, fetchPage(t, shardURL+"/host/h2"))
	got := timelineRows(t, fetchPage(t, headURL+"/host/h2"))
	if !strings.Contains(want, `<tr class="k-`) {
		t.Fatalf("the host page of h2 on the shard shows no timeline row:\n%s", want)
	}
	if got != want {
		t.Errorf("timeline of h2 through the head %d bytes, on the shard %d; want the same rows\n%s", len(got), len(want), firstDiff(got, want))
	}
}

// timelineRows returns the timeline's list of rows on a host page.
func timelineRows(t *testing.T, page string) string {
	t.Helper()
	_, rest, ok := strings.Cut(page, `<details class="rows" id="events"`)
	if !ok {
		t.Fatalf("host page without a timeline list:\n%s", page)
	}
	rows, _, _ := strings.Cut(rest, "</details>")
	return rows
}

// sortedSQL returns page with the statements of its "SQL this page ran"
// list sorted.
func sortedSQL(page string) string {
	head, list, ok := strings.Cut(page, `<details class="sql"`)
	if !ok {
		return page
	}
	// The last statement is followed by the end of the list and of the
	// page, which must stay at the end whichever statement ran last.
	end := strings.LastIndex(list, "</details>")
	if end < 0 {
		return page
	}
	parts := strings.Split(list[:end], "<h3>")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	slices.Sort(parts[1:])
	return head + `<details class="sql"` + strings.Join(parts, "<h3>") + list[end:]
}

// firstDiff shows where a and b first differ.
func firstDiff(a, b string) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	lo := max(i-200, 0)
	return "got:  …" + a[lo:min(i+200, len(a))] + "\nwant: …" + b[lo:min(i+200, len(b))]
}
