package agent

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pofr/pofr/internal/testutil"
	"github.com/pofr/pofr/spool"
	"github.com/pofr/pofr/uplink"
)

// parseTextfile parses a textfile as node_exporter does.
func parseTextfile(t *testing.T, b []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("parse textfile: %v\n%s", err, b)
	}
	return mfs
}

// TestMetricsFile writes a snapshot with every metric and reads it back.
func TestMetricsFile(t *testing.T) {
	started := time.Unix(1700000000, 0)
	m := &Metrics{
		Started: started, Updated: started.Add(90 * time.Second),
		Sources: spool.Stats{
			Modes:    map[string]string{"proc": "netlink", "capture": "tracepoint", "file": "fanotify"},
			Counters: map[string]spool.Counter{"proc": {Seen: 100, Lost: 2}, "file": {Seen: 50, Lost: 0}},
		},
		SpoolSegments: 3, SpoolBytes: 4096,
		Upload: &uplink.PushStats{Uploaded: 7, Bytes: 70000, Failures: 1, Connected: true, LastError: "dial: refused"},
	}
	path := filepath.Join(t.TempDir(), "pofr.prom")
	if err := WriteMetricsFile(path, m); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	mfs := parseTextfile(t, b)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"pofr_collector_events_total", []string{"source", "proc"}, 100},
		{"pofr_collector_events_total", []string{"source", "file"}, 50},
		{"pofr_collector_events_lost_total", []string{"source", "proc"}, 2},
		{"pofr_collector_events_lost_total", []string{"source", "file"}, 0},
		{"pofr_collector_capture_mode", []string{"source", "proc", "mode", "netlink"}, 1},
		{"pofr_collector_capture_mode", []string{"source", "capture", "mode", "tracepoint"}, 1},
		{"pofr_collector_capture_mode", []string{"source", "file", "mode", "fanotify"}, 1},
		{"pofr_collector_spool_segments", nil, 3},
		{"pofr_collector_spool_bytes", nil, 4096},
		{"pofr_collector_standalone", nil, 0},
		{"pofr_collector_uploaded_segments_total", nil, 7},
		{"pofr_collector_uploaded_bytes_total", nil, 70000},
		{"pofr_collector_upload_failures_total", nil, 1},
		{"pofr_collector_upload_connected", nil, 1},
		{"pofr_collector_upload_error", nil, 1},
		{"pofr_collector_start_time_seconds", nil, 1700000000},
		{"pofr_collector_last_update_timestamp_seconds", nil, 1700000090},
	} {
		got, err := testutil.MetricSample(mfs, c.name, c.labels...)
		if err != nil || got != c.want {
			t.Errorf("%s%v = %v (%v), want %v", c.name, c.labels, got, err, c.want)
		}
	}
	// Rewriting replaces the file whole and leaves no temporary file.
	m.Upload = nil
	if err := WriteMetricsFile(path, m); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("textfile directory holds %d entries, want 1", len(ents))
	}
	b, _ = os.ReadFile(path)
	mfs = parseTextfile(t, b)
	if v, err := testutil.MetricSample(mfs, "pofr_collector_standalone"); v != 1 {
		t.Errorf("standalone after rewrite = %v (%v), want 1", v, err)
	}
	if _, ok := mfs["pofr_collector_upload_connected"]; ok {
		t.Error("upload metrics present without an uplink")
	}
}

// TestMetricsDocumented: every metric of the textfile is listed in
// docs/operations.md.
func TestMetricsDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := &Metrics{Sources: spool.Stats{Counters: map[string]spool.Counter{"proc": {}}, Modes: map[string]string{"proc": "netlink"}}, Upload: &uplink.PushStats{}}
	b, err := m.Text()
	if err != nil {
		t.Fatal(err)
	}
	mfs := parseTextfile(t, b)
	if len(mfs) < 13 {
		t.Fatalf("%d metric families: the check is broken", len(mfs))
	}
	for name := range mfs {
		if !bytes.Contains(doc, []byte("`"+name+"`")) {
			t.Errorf("docs/operations.md does not list %s", name)
		}
	}
}
