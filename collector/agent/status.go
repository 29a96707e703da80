package agent

import (
	"encoding/json"
	"log/slog"
	"time"

	"github.com/pofr/pofr/internal/durable"
	"github.com/pofr/pofr/spool"
	"github.com/pofr/pofr/uplink"
)

// Status is what Run writes to STATE-DIR/status.json every few seconds
// and what pofr-collector status prints.
type Status struct {
	PID      int                        `json:"pid"`
	Started  time.Time                  `json:"started"`
	Updated  time.Time                  `json:"updated"`
	HostID   string                     `json:"host_id"`
	Profile  string                     `json:"profile"`
	Sources  map[string]json.RawMessage `json:"sources"`
	Uplink   json.RawMessage            `json:"uplink,omitempty"`
	Segments int                        `json:"spool_segments"`
	Bytes    int64                      `json:"spool_bytes"`
	// Summary is what an admin reads first: rates over the last minute,
	// losses, the uplink's last upload.
	Summary Summary `json:"summary"`
}

// RateWindow is the span the status's rates cover.
const RateWindow = time.Minute

// Summary is the status for people: per source its mode, totals and the
// rate over the last RateWindow (or since the start, when younger).
type Summary struct {
	// Capture is how processes are captured: tracepoint or cn_proc.
	Capture string `json:"capture,omitempty"`
	// Window is the span in seconds the per-second rates cover.
	Window  float64                  `json:"window_s"`
	Sources map[string]SourceSummary `json:"sources"`
	Spool   SpoolSummary             `json:"spool"`
	// Uplink is nil for a standalone collector.
	Uplink *UplinkSummary `json:"uplink,omitempty"`
}

// SourceSummary is one event source's line of the summary.
type SourceSummary struct {
	Mode      string  `json:"mode"`
	Seen      uint64  `json:"seen"`
	Lost      uint64  `json:"lost"`
	PerSecond float64 `json:"per_second"`
	// LostInWindow is how many of Lost fell in the window.
	LostInWindow uint64 `json:"lost_in_window"`
}

// SpoolSummary counts the spool's rows and segments since the start.
type SpoolSummary struct {
	Rows    uint64 `json:"rows"`
	Lost    uint64 `json:"rows_lost"`
	Sealed  uint64 `json:"segments_sealed"`
	Evicted uint64 `json:"segments_evicted"`
}

// UplinkSummary is the uplink's state.
type UplinkSummary struct {
	Connected  bool       `json:"connected"`
	Uploaded   int64      `json:"segments_uploaded"`
	Bytes      int64      `json:"bytes_uploaded"`
	Failures   int64      `json:"failures"`
	LastUpload *time.Time `json:"last_upload,omitempty"`
	LastError  string     `json:"last_error,omitempty"`
}

// counterSample is the sources' counters at one moment.
type counterSample struct {
	at time.Time
	c  map[string]spool.Counter
}

// rateWindow keeps the counter samples of the last RateWindow, and the
// newest one before it, to compute rates over a sliding minute.
type rateWindow struct {
	samples []counterSample
}

// add records the counters at now and returns the oldest sample the rates
// should be taken from: the newest at least RateWindow old, else the first.
func (w *rateWindow) add(now time.Time, c map[string]spool.Counter) counterSample {
	w.samples = append(w.samples, counterSample{now, c})
	i := 0
	for i+1 < len(w.samples) && !w.samples[i+1].at.After(now.Add(-RateWindow)) {
		i++
	}
	w.samples = w.samples[i:]
	return w.samples[0]
}

// Backlog returns the number and total size of the segments waiting in the
// spool directory dir.
func Backlog(dir string) (int, int64) {
	infos, err := spool.List(dir)
	if err != nil {
		return 0, 0
	}
	var n int64
	for _, in := range infos {
		n += in.Size
	}
	return len(infos), n
}

// WriteStatus replaces the status file at path with st, stamped now;
// failures are logged.
func WriteStatus(path string, st *Status, log *slog.Logger) {
	st.Updated = time.Now().UTC()
	b, err := json.MarshalIndent(st, "", "  ")
	if err == nil {
		err = durable.ReplaceFile(path, append(b, '\n'), 0o644)
	}
	if err != nil {
		log.Warn("write status file", "err", err)
	}
}

// SpoolQueue is a spool directory as the uplink's queue.
type SpoolQueue string

func (q SpoolQueue) Pending() ([]uplink.Item, error) {
	infos, err := spool.List(string(q))
	if err != nil {
		return nil, err
	}
	items := make([]uplink.Item, len(infos))
	for i, in := range infos {
		items[i] = uplink.Item{Name: in.Name, Path: in.Path, Size: in.Size}
	}
	return items, nil
}

func (q SpoolQueue) Remove(name string) error { return spool.Remove(string(q), name) }
