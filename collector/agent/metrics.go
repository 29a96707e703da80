package agent

import (
	"bytes"
	"fmt"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/pofr/pofr/internal/durable"
	"github.com/pofr/pofr/spool"
	"github.com/pofr/pofr/uplink"
)

// Metrics is one snapshot of the collector for its node_exporter textfile
// (Config.MetricsFile): what the sources saw and lost, the capture modes,
// the spool backlog and the upload state.
type Metrics struct {
	Started, Updated time.Time
	Sources          spool.Stats       // counters and modes per source
	SpoolSegments    int               // sealed segments waiting in the spool
	SpoolBytes       int64             // their size
	Upload           *uplink.PushStats // nil when standalone
}

func mdesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// The collector's metrics; docs/operations.md lists them.
var (
	cEvents    = mdesc("pofr_collector_events_total", "Events a source saw since the collector started.", "source")
	cLost      = mdesc("pofr_collector_events_lost_total", "Events a source lost since the collector started (overruns, queue drops).", "source")
	cMode      = mdesc("pofr_collector_capture_mode", "1 for the capture mode each source runs in (e.g. source=proc mode=netlink, source=capture mode=tracepoint).", "source", "mode")
	cSpoolSegs = mdesc("pofr_collector_spool_segments", "Sealed segments waiting in the spool (not yet uploaded).")
	cSpoolByte = mdesc("pofr_collector_spool_bytes", "Size of the segments waiting in the spool.")
	cStandal   = mdesc("pofr_collector_standalone", "1 if the collector keeps its segments (no upload), else 0.")
	cUploaded  = mdesc("pofr_collector_uploaded_segments_total", "Segments the server confirmed and the collector removed locally.")
	cUpBytes   = mdesc("pofr_collector_uploaded_bytes_total", "Bytes uploaded.")
	cUpFail    = mdesc("pofr_collector_upload_failures_total", "Failed upload attempts.")
	cConnected = mdesc("pofr_collector_upload_connected", "1 while the collector holds a connection to the server.")
	cUpError   = mdesc("pofr_collector_upload_error", "1 if the last upload attempt failed.")
	cStarted   = mdesc("pofr_collector_start_time_seconds", "When the collector started, Unix seconds.")
	cUpdated   = mdesc("pofr_collector_last_update_timestamp_seconds", "When this file was written, Unix seconds: a stale value means a dead collector.")
)

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	prometheus.DescribeByCollect(m, ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	c := func(d *prometheus.Desc, t prometheus.ValueType, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, t, v, l...)
	}
	for src, n := range m.Sources.Counters {
		c(cEvents, prometheus.CounterValue, float64(n.Seen), src)
		c(cLost, prometheus.CounterValue, float64(n.Lost), src)
	}
	for src, mode := range m.Sources.Modes {
		c(cMode, prometheus.GaugeValue, 1, src, mode)
	}
	c(cSpoolSegs, prometheus.GaugeValue, float64(m.SpoolSegments))
	c(cSpoolByte, prometheus.GaugeValue, float64(m.SpoolBytes))
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	c(cStandal, prometheus.GaugeValue, b(m.Upload == nil))
	if u := m.Upload; u != nil {
		c(cUploaded, prometheus.CounterValue, float64(u.Uploaded))
		c(cUpBytes, prometheus.CounterValue, float64(u.Bytes))
		c(cUpFail, prometheus.CounterValue, float64(u.Failures))
		c(cConnected, prometheus.GaugeValue, b(u.Connected))
		c(cUpError, prometheus.GaugeValue, b(u.LastError != ""))
	}
	c(cStarted, prometheus.GaugeValue, float64(m.Started.UnixNano())/1e9)
	c(cUpdated, prometheus.GaugeValue, float64(m.Updated.UnixNano())/1e9)
}

// Text renders m in the Prometheus text format, families sorted by name.
func (m *Metrics) Text() ([]byte, error) {
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(m); err != nil {
		return nil, err
	}
	mfs, err := reg.Gather()
	if err != nil {
		return nil, err
	}
	sort.Slice(mfs, func(i, j int) bool { return mfs[i].GetName() < mfs[j].GetName() })
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// WriteMetricsFile replaces the textfile at path with m: a temporary file
// in the same directory (node_exporter reads only *.prom, so it never sees
// it) renamed over path, so a scrape never reads half a file.
func WriteMetricsFile(path string, m *Metrics) error {
	b, err := m.Text()
	if err != nil {
		return fmt.Errorf("render metrics: %w", err)
	}
	return durable.ReplaceFile(path, b, 0o644)
}
