package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/spool"
)

// markerPrefix starts every marker of [RunProcs].
var markerPrefix = []byte("pofrbench-")

// ProcRow is the part of a proc row the harness matches on.
type ProcRow struct {
	TS        int64
	Event     string
	PID, PPID int32
	HasArgv   bool
	HasExe    bool
	Marker    string // argv[1] when it is a marker, else ""
	Flags     uint32
}

// SockRow is the part of a sock row the harness matches on.
type SockRow struct {
	TS    int64
	Event string
	Key   SockKey
	PID   int32 // 0 when the owner is unknown
	Flags uint32
}

// FileRow is the part of a file row (one that names a churn file) the
// harness matches on.
type FileRow struct {
	TS        int64
	Op        string
	PID       int32
	Name      string // base name of the path
	NewName   string // base name of the new path of a rename
	Aggregate uint32 // the row's count
}

// TSCount is a row's time (ns since the Unix epoch) and the events it
// stands for.
type TSCount struct {
	TS int64
	N  uint32
}

// SpoolRows is what a collector's spool directory holds, reduced to what the
// harness needs.
type SpoolRows struct {
	Segments int
	Bytes    int64 // on-disk size of all segments
	Rows     int64 // rows of all tables
	Procs    []ProcRow
	Socks    []SockRow
	Files    []FileRow // only rows naming a churn file
	// FileEvents is every file row's time and count, churn or not: what
	// woke the collector on a host the harness thought idle.
	FileEvents []TSCount
	Gaps       []event.Gap
	Counters   map[string]spool.Counter // summed over segments
}

// ReadSpool verifies and reads every sealed segment in dir (format and
// digests; no signature or chain check: the harness trusts its own spool).
func ReadSpool(dir string) (*SpoolRows, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read spool: %w", err)
	}
	out := &SpoolRows{Counters: map[string]spool.Counter{}}
	for _, e := range ents {
		if _, _, _, ok := spool.ParseName(e.Name()); !ok || !e.Type().IsRegular() {
			continue
		}
		if err := out.add(filepath.Join(dir, e.Name())); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *SpoolRows) add(path string) error {
	seg, err := spool.VerifyFile(path, spool.VerifyOptions{})
	if err != nil {
		return fmt.Errorf("verify segment %s: %w", path, err)
	}
	defer seg.Release()
	s.Segments++
	s.Bytes += seg.Size
	s.Rows += seg.Manifest.Rows()
	for k, c := range seg.Manifest.Counters {
		t := s.Counters[k]
		t.Seen += c.Seen
		t.Lost += c.Lost
		s.Counters[k] = t
	}
	procs, err := seg.Procs()
	if err != nil {
		return fmt.Errorf("read segment %s: %w", path, err)
	}
	for i := range procs {
		p := &procs[i]
		r := ProcRow{TS: p.TS, Event: p.Event, PID: p.PID, PPID: p.PPID, HasArgv: len(p.Argv) > 0, HasExe: len(p.Exe) > 0, Flags: p.Flags}
		if args := bytes.Split(p.Argv, []byte{0}); len(args) > 1 && bytes.HasPrefix(args[1], markerPrefix) {
			r.Marker = string(args[1])
		}
		s.Procs = append(s.Procs, r)
	}
	socks, err := seg.Socks()
	if err != nil {
		return fmt.Errorf("read segment %s: %w", path, err)
	}
	for i := range socks {
		k := &socks[i]
		r := SockRow{TS: k.TS, Event: k.Event, Flags: k.Flags,
			Key: SockKey{Proto: k.Proto, Family: k.Family, LocalPort: k.LocalPort, RemotePort: k.RemotePort}}
		if k.PID.Valid {
			r.PID = k.PID.V
		}
		s.Socks = append(s.Socks, r)
	}
	files, err := seg.Files()
	if err != nil {
		return fmt.Errorf("read segment %s: %w", path, err)
	}
	for i := range files {
		f := &files[i]
		s.FileEvents = append(s.FileEvents, TSCount{TS: f.TS, N: max(f.Count, 1)})
		if !bytes.Contains(f.Path, []byte("churn-")) && !bytes.Contains(f.NewPath, []byte("churn-")) {
			continue
		}
		s.Files = append(s.Files, FileRow{TS: f.TS, Op: f.Op, PID: f.PID, Aggregate: f.Count,
			Name: baseName(f.Path), NewName: baseName(f.NewPath)})
	}
	gaps, err := seg.Gaps()
	if err != nil {
		return fmt.Errorf("read segment %s: %w", path, err)
	}
	s.Gaps = append(s.Gaps, gaps...)
	return nil
}

// baseName returns the last element of a path, "" for an empty one.
func baseName(p []byte) string {
	if len(p) == 0 {
		return ""
	}
	return filepath.Base(string(p))
}
