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
		err = durable.WriteFile(path, append(b, '\n'), 0o644)
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
