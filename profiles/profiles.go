package profiles

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"time"
)

//go:embed *.json
var files embed.FS

// Duration is a time.Duration written as a string ("15s") in JSON.
type Duration time.Duration

// UnmarshalJSON parses a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Profile is one collection profile.
type Profile struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Spool       Spool  `json:"spool"`
	Proc        Proc   `json:"proc"`
	File        File   `json:"file"`
	Sock        Sock   `json:"sock"`
	Upload      Upload `json:"upload"`
}

// Spool sets segment sealing and the spool quota.
type Spool struct {
	SegmentBytes int64    `json:"segment_bytes"` // seal when a segment reaches this size
	SegmentAge   Duration `json:"segment_age"`   // seal when the oldest row is this old
	QuotaBytes   int64    `json:"quota_bytes"`   // evict oldest unsent segments beyond this
}

// Proc sets the process source.
type Proc struct {
	ArgvMax int `json:"argv_max"` // bytes of argv kept; longer is cut and flagged
	// Priority of the reader thread (tracepoint or cn_proc) and the exec
	// guard: "fifo" (SCHED_FIFO), "nice" (nice −20) or "normal". Falls back
	// down the list with a warning.
	Priority string `json:"priority"`
	// EnrichRate caps /proc reads per second on exec, so a fork bomb cannot
	// make a real-time reader starve the host; beyond it rows are flagged gone.
	EnrichRate int `json:"enrich_rate"`
	// ResyncInterval is how often a /proc scan checks the table (0: only at
	// start and after a loss).
	ResyncInterval Duration `json:"resync_interval"`
	// FullEnrich reads every /proc file at every exec (namespaces, loginuid,
	// session, tty) instead of inheriting what a fork cannot change from the
	// parent: exact for unshare/setns without a cgroup change, at about twice
	// the CPU per exec.
	FullEnrich bool `json:"full_enrich,omitempty"`
	// Tracepoint makes the kernel's tracepoint rings the primary capture of
	// forks and execs (cn_proc stays the fallback and carries exits and
	// credential changes). See the package documentation.
	Tracepoint bool `json:"tracepoint"`
	// RingBytes is the tracepoint ring of each CPU; the collector shrinks it
	// on hosts with many CPUs so that all rings together stay within
	// maxRingTotal.
	RingBytes int `json:"ring_bytes"`
	// StackBytes is the user-stack dump taken at each exec to read argv
	// from (4096 to 65528).
	StackBytes int `json:"stack_bytes"`
	// ExecGuard keeps today's cn_proc exec wakeup beside the rings: /proc
	// is read at once at every exec, so processes that exit at once keep
	// their argv when the stack dump misses it, at cn_proc's CPU cost.
	ExecGuard bool `json:"exec_guard,omitempty"`
}

// MaxRingTotal caps the memory of all tracepoint rings of a host together:
// RingPerCPU shrinks proc.ring_bytes on hosts with many CPUs.
const MaxRingTotal = 256 << 20

// RingPerCPU returns the ring size of each of ncpu CPUs: ring_bytes, halved
// until all rings fit MaxRingTotal, but not below 512 KiB.
func (p *Proc) RingPerCPU(ncpu int) int {
	r := p.RingBytes
	for r > 512<<10 && r*max(ncpu, 1) > MaxRingTotal {
		r /= 2
	}
	return r
}

// File sets the file source.
type File struct {
	Enabled bool     `json:"enabled"`
	Ops     []string `json:"ops"`    // open, exec, write, create, delete, rename
	Window  Duration `json:"window"` // aggregation window per (process, path, op)
	// Exclude lists path prefixes never recorded (besides the spool, which is
	// always excluded).
	Exclude []string `json:"exclude"`
	// QueueSize is the fanotify queue length (events) of the collector's
	// group; 0 keeps the kernel's (fs.fanotify.max_queued_events, 16384 by
	// default). See the package documentation for its cost.
	QueueSize int `json:"queue_size"`
}

// Sock sets the socket source.
type Sock struct {
	Enabled      bool     `json:"enabled"`
	DumpInterval Duration `json:"dump_interval"` // inet_diag dump cadence for owners and long-lived sockets
	UDP          bool     `json:"udp"`
	// HostNetnsOnly records only the collector's own network namespace;
	// otherwise every namespace in use by processes (containers) is.
	HostNetnsOnly bool `json:"host_netns_only"`
}

// Upload sets the push to the server.
type Upload struct {
	Interval     Duration `json:"interval"`      // how often to look for sealed segments
	MaxBackoff   Duration `json:"max_backoff"`   // cap of the exponential backoff
	BandwidthBPS int64    `json:"bandwidth_bps"` // 0: unlimited
}

// Names returns the names of the embedded profiles.
func Names() []string {
	ents, _ := fs.ReadDir(files, ".")
	var out []string
	for _, e := range ents {
		out = append(out, strings.TrimSuffix(e.Name(), ".json"))
	}
	sort.Strings(out)
	return out
}

// Get returns the embedded profile name.
func Get(name string) (*Profile, error) {
	b, err := files.ReadFile(name + ".json")
	if err != nil {
		return nil, fmt.Errorf("profile %q: not found (have %s)", name, strings.Join(Names(), ", "))
	}
	return Parse(b)
}

// Load returns the embedded profile nameOrPath or, when it names a file (it
// contains a slash or ends in .json), the profile in that file: an operator's
// own profile, in the format of profiles/*.json.
func Load(nameOrPath string) (*Profile, error) {
	if !strings.Contains(nameOrPath, "/") && !strings.HasSuffix(nameOrPath, ".json") {
		return Get(nameOrPath)
	}
	b, err := os.ReadFile(nameOrPath)
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	p, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", nameOrPath, err)
	}
	return p, nil
}

// Parse reads a profile from JSON, refusing unknown fields, and validates it.
func Parse(b []byte) (*Profile, error) {
	var p Profile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("parse profile: %w", err)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// maxQueueSize bounds file.queue_size: about 200 MB of kernel memory at most.
const maxQueueSize = 1 << 20

var fileOps = map[string]bool{"open": true, "exec": true, "write": true, "create": true, "delete": true, "rename": true}

// Validate reports the first value out of range.
func (p *Profile) Validate() error {
	switch {
	case p.Spool.SegmentBytes < 64<<10:
		return fmt.Errorf("profile %s: spool.segment_bytes %d < 64 KiB", p.Name, p.Spool.SegmentBytes)
	case p.Spool.SegmentAge < Duration(time.Second):
		return fmt.Errorf("profile %s: spool.segment_age below 1s", p.Name)
	case p.Spool.QuotaBytes < 4*p.Spool.SegmentBytes:
		return fmt.Errorf("profile %s: spool.quota_bytes must hold at least 4 segments", p.Name)
	case p.Proc.ArgvMax < 256:
		return fmt.Errorf("profile %s: proc.argv_max %d < 256", p.Name, p.Proc.ArgvMax)
	case p.Proc.Priority != "fifo" && p.Proc.Priority != "nice" && p.Proc.Priority != "normal":
		return fmt.Errorf("profile %s: proc.priority %q: want fifo, nice or normal", p.Name, p.Proc.Priority)
	case p.Proc.Tracepoint && (p.Proc.RingBytes < 64<<10 || p.Proc.RingBytes > 1<<30):
		return fmt.Errorf("profile %s: proc.ring_bytes %d: want 64 KiB to 1 GiB", p.Name, p.Proc.RingBytes)
	case p.Proc.Tracepoint && (p.Proc.StackBytes < 4096 || p.Proc.StackBytes > 65528):
		return fmt.Errorf("profile %s: proc.stack_bytes %d: want 4096 to 65528", p.Name, p.Proc.StackBytes)
	case p.Proc.EnrichRate <= 0:
		return fmt.Errorf("profile %s: proc.enrich_rate must be positive", p.Name)
	case p.Sock.Enabled && p.Sock.DumpInterval < Duration(10*time.Millisecond):
		return fmt.Errorf("profile %s: sock.dump_interval below 10ms", p.Name)
	case p.File.QueueSize < 0 || p.File.QueueSize > maxQueueSize:
		return fmt.Errorf("profile %s: file.queue_size %d: want 0 (kernel default) to %d", p.Name, p.File.QueueSize, maxQueueSize)
	case p.File.Enabled && p.File.Window < Duration(10*time.Millisecond):
		return fmt.Errorf("profile %s: file.window below 10ms", p.Name)
	}
	for _, op := range p.File.Ops {
		if !fileOps[op] {
			return fmt.Errorf("profile %s: file.ops: unknown op %q", p.Name, op)
		}
	}
	return nil
}

// HasOp reports whether the file source records op.
func (f *File) HasOp(op string) bool {
	for _, o := range f.Ops {
		if o == op {
			return true
		}
	}
	return false
}
