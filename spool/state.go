package spool

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/pofr/pofr/internal/event"
)

// state is the writer's persistent state, state.json in the spool. It is
// rewritten atomically (writeDurable) at Open, after every seal and at Close.
type state struct {
	Version int    `json:"version"`
	HostID  string `json:"host_id"`
	// NextSeq is the seq of the next segment; LastDigest the digest of the
	// last sealed one ("" before the first); LastSeal when it was sealed.
	NextSeq    uint64    `json:"next_seq"`
	LastDigest string    `json:"last_digest"`
	LastSeal   time.Time `json:"last_seal"`
	// Clean is true only between a Close and the next Open.
	Clean     bool      `json:"clean"`
	OpenedAt  time.Time `json:"opened_at"`
	StoppedAt time.Time `json:"stopped_at"`
	// EvictedThrough is the highest seq evicted by the quota; a segment file
	// with a seq up to it that is still present (the writer stopped between
	// recording the eviction and deleting) is deleted at Open.
	EvictedThrough uint64 `json:"evicted_through"`
	// Pending are gap rows that must go into the next segment: quota
	// evictions and stops, recorded here before anything is deleted.
	Pending []stateGap `json:"pending_gaps"`
	// Carried are gap rows of Pending already sealed, each with the seq of
	// the segment holding it, kept until that segment leaves the spool.
	// Uploaded, it is dropped; evicted by the quota before upload, it goes
	// back to Pending, so that no eviction or stop is ever unexplained.
	Carried []stateGap `json:"carried_gaps,omitempty"`
}

// stateGap is a gap row in the state. An eviction's row also keeps the seq
// range it names and the bytes evicted, so that adjacent evictions can be
// merged into one row when both must be recorded again.
type stateGap struct {
	FromTS int64  `json:"from_ts"`
	ToTS   int64  `json:"to_ts"`
	Source string `json:"source"`
	Lost   *int64 `json:"lost"`
	Reason string `json:"reason"`
	// FirstSeq..LastSeq and Bytes describe a quota eviction (0: not one).
	FirstSeq uint64 `json:"first_seq,omitempty"`
	LastSeq  uint64 `json:"last_seq,omitempty"`
	Bytes    int64  `json:"bytes,omitempty"`
	// In is the seq of the segment that holds the row (Carried only).
	In uint64 `json:"in,omitempty"`
}

// spoolGap is a gap row the writer itself records (a stop or a quota
// eviction), with what it needs to carry the row until it is uploaded.
type spoolGap struct {
	event.Gap
	first, last uint64 // evicted seqs, 0 for a stop
	bytes       int64
	in          uint64 // seq of the segment holding it, once sealed
}

func toStateGaps(gs []spoolGap) []stateGap {
	out := make([]stateGap, len(gs))
	for i, g := range gs {
		out[i] = stateGap{FromTS: g.FromTS, ToTS: g.ToTS, Source: g.Source, Reason: g.Reason,
			FirstSeq: g.first, LastSeq: g.last, Bytes: g.bytes, In: g.in}
		if g.Lost.Valid {
			v := g.Lost.V
			out[i].Lost = &v
		}
	}
	return out
}

func fromStateGaps(gs []stateGap) []spoolGap {
	out := make([]spoolGap, len(gs))
	for i, g := range gs {
		out[i] = spoolGap{Gap: event.Gap{FromTS: g.FromTS, ToTS: g.ToTS, Source: g.Source, Reason: g.Reason},
			first: g.FirstSeq, last: g.LastSeq, bytes: g.Bytes, in: g.In}
		if g.Lost != nil {
			out[i].Lost = event.Some(*g.Lost)
		}
	}
	return out
}

// readState returns the state in dir, or nil if there is none yet.
func readState(dir string) (*state, error) {
	b, err := os.ReadFile(filepath.Join(dir, StateName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read spool state: %w", err)
	}
	st := new(state)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(st); err != nil {
		return nil, fmt.Errorf("read spool state %s: %w", filepath.Join(dir, StateName), err)
	}
	if st.Version != 1 {
		return nil, fmt.Errorf("read spool state %s: version %d", filepath.Join(dir, StateName), st.Version)
	}
	return st, nil
}

func writeState(dir string, st *state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("write spool state: %w", err)
	}
	b = append(b, '\n')
	err = writeDurable(dir, StateName, int64(len(b)), func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
	if err != nil {
		return fmt.Errorf("write spool state: %w", err)
	}
	return nil
}
