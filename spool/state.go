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
}

type stateGap struct {
	FromTS int64  `json:"from_ts"`
	ToTS   int64  `json:"to_ts"`
	Source string `json:"source"`
	Lost   *int64 `json:"lost"`
	Reason string `json:"reason"`
}

func toStateGaps(gs []event.Gap) []stateGap {
	out := make([]stateGap, len(gs))
	for i, g := range gs {
		out[i] = stateGap{FromTS: g.FromTS, ToTS: g.ToTS, Source: g.Source, Reason: g.Reason}
		if g.Lost.Valid {
			v := g.Lost.V
			out[i].Lost = &v
		}
	}
	return out
}

func fromStateGaps(gs []stateGap) []event.Gap {
	out := make([]event.Gap, len(gs))
	for i, g := range gs {
		out[i] = event.Gap{FromTS: g.FromTS, ToTS: g.ToTS, Source: g.Source, Reason: g.Reason}
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
	err = writeDurable(dir, StateName, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
	if err != nil {
		return fmt.Errorf("write spool state: %w", err)
	}
	return nil
}
