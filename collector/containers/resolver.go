package containers

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pofr/pofr/internal/defaults"
	"github.com/pofr/pofr/internal/event"
)

// Defaults of Options.
const (
	DefaultMaxStateBytes = 16 << 20
	DefaultQueue         = 64
	DefaultCacheSize     = 4096
	// maxNamespaces bounds the containerd namespaces looked in.
	maxNamespaces = 64
)

// Column limits (the containers table's VARBINARY sizes).
const (
	maxName  = 1024
	maxImage = 4096
	maxPath  = 4096
)

// Roots are the runtimes' state directories. Empty fields take the default
// under Prefix.
type Roots struct {
	// Prefix is prepended to every default below ("" is /): a test, or a
	// collector in a container with the host's / mounted elsewhere.
	Prefix string
	// Docker is Docker's data root (/var/lib/docker); the state is
	// containers/ID/config.v2.json.
	Docker string
	// Containerd is the v2 runtime's task root
	// (/run/containerd/io.containerd.runtime.v2.task); the state is
	// NAMESPACE/ID/config.json, the OCI bundle config with CRI annotations.
	Containerd string
	// Podman is containers/storage's root (/var/lib/containers/storage);
	// the state is overlay-containers/containers.json and
	// overlay-containers/ID/userdata/config.json.
	Podman string
}

func (r Roots) withDefaults() Roots {
	def := func(v *string, p string) {
		if *v == "" {
			*v = filepath.Join("/", r.Prefix, p)
		}
	}
	def(&r.Docker, "var/lib/docker")
	def(&r.Containerd, "run/containerd/io.containerd.runtime.v2.task")
	def(&r.Podman, "var/lib/containers/storage")
	return r
}

// Options configures a Resolver.
type Options struct {
	// Sink receives the ctr rows. Required.
	Sink event.ContainerSink
	// Roots are the runtimes' state directories.
	Roots Roots
	// MaxStateBytes is the largest state file parsed (0:
	// DefaultMaxStateBytes); a larger one gives a row with error too_large.
	MaxStateBytes int64
	// Queue is how many new ids may wait for the worker (0: DefaultQueue).
	Queue int
	// CacheSize bounds the ids remembered (0: DefaultCacheSize); an id
	// forgotten and seen again is looked up again and gets another row.
	CacheSize int
	// Log receives start and stop lines; nil discards.
	Log *slog.Logger
}

// Stats are a Resolver's counters since it was created.
type Stats struct {
	Seen        uint64 // new container ids seen in process rows
	Found       uint64 // ids a runtime's state named
	NotFound    uint64 // ids no runtime's state named
	Errors      uint64 // state files too large, unreadable or not parsable
	Lost        uint64 // ids dropped because the queue was full (tried again when next seen)
	Unsupported uint64 // container ids that are not 64 hex digits (LXC names): not looked up
	LookupNanos uint64 // wall time spent in lookups
}

type job struct {
	id  string
	pid int32
	ts  int64
}

// Resolver looks container ids up in the runtimes' state and sends a ctr
// row per new id. Observe is safe for concurrent use; Run does the reads.
type Resolver struct {
	opts  Options
	queue chan job

	mu    sync.Mutex
	known map[string]struct{}
	order []string // ids in the order remembered, a ring of CacheSize
	next  int

	seen, found, notFound, errs, lost, unsupported, nanos atomic.Uint64
}

// New returns a Resolver; Run must run for ids to be looked up.
func New(opts Options) (*Resolver, error) {
	if opts.Sink == nil {
		return nil, errors.New("containers: Sink is required")
	}
	defaults.Positive(&opts.MaxStateBytes, DefaultMaxStateBytes)
	defaults.Positive(&opts.Queue, DefaultQueue)
	defaults.Positive(&opts.CacheSize, DefaultCacheSize)
	defaults.Zero(&opts.Log, slog.New(slog.DiscardHandler))
	opts.Roots = opts.Roots.withDefaults()
	return &Resolver{opts: opts, queue: make(chan job, opts.Queue), known: map[string]struct{}{},
		order: make([]string, 0, opts.CacheSize)}, nil
}

// Stats returns the counters.
func (r *Resolver) Stats() Stats {
	return Stats{Seen: r.seen.Load(), Found: r.found.Load(), NotFound: r.notFound.Load(), Errors: r.errs.Load(),
		Lost: r.lost.Load(), Unsupported: r.unsupported.Load(), LookupNanos: r.nanos.Load()}
}

// Observe is told of a process row's container id; a new one is queued for
// a lookup. It never blocks.
func (r *Resolver) Observe(id []byte, pid int32, ts int64) {
	r.mu.Lock()
	if _, ok := r.known[string(id)]; ok {
		r.mu.Unlock()
		return
	}
	s := string(id)
	r.remember(s)
	r.mu.Unlock()
	r.seen.Add(1)
	if !isHexID(id) {
		r.unsupported.Add(1)
		return
	}
	select {
	case r.queue <- job{id: s, pid: pid, ts: ts}:
	default:
		r.lost.Add(1)
		r.mu.Lock()
		delete(r.known, s)
		r.mu.Unlock()
	}
}

// remember adds id to the cache, forgetting the oldest when full (r.mu held).
func (r *Resolver) remember(id string) {
	if len(r.order) < cap(r.order) {
		r.order = append(r.order, id)
	} else {
		delete(r.known, r.order[r.next])
		r.order[r.next] = id
		r.next = (r.next + 1) % len(r.order)
	}
	r.known[id] = struct{}{}
}

// Run looks queued ids up until ctx ends.
func (r *Resolver) Run(ctx context.Context) error {
	r.opts.Log.Info("container names on", "docker", r.opts.Roots.Docker, "containerd", r.opts.Roots.Containerd, "podman", r.opts.Roots.Podman)
	for {
		select {
		case <-ctx.Done():
			return nil
		case j := <-r.queue:
			t0 := time.Now()
			row := r.Lookup(j.id)
			r.nanos.Add(uint64(time.Since(t0)))
			row.TS, row.PID = j.ts, j.pid
			switch row.Error {
			case "":
				r.found.Add(1)
			case event.CtrNotFound:
				r.notFound.Add(1)
			default:
				r.errs.Add(1)
			}
			r.opts.Sink.AppendContainer(&row)
		}
	}
}

// Lookup reads what the runtimes' state says of container id (64 hex
// digits): Docker first, then containerd, then Podman. TS and PID are left
// zero.
func (r *Resolver) Lookup(id string) event.Container {
	row := event.Container{ID: []byte(id)}
	if !isHexID([]byte(id)) {
		row.Error = event.CtrNotFound
		return row
	}
	for _, try := range []func(string, *event.Container) bool{r.docker, r.containerd, r.podman} {
		if try(id, &row) {
			return row
		}
	}
	row.Error = event.CtrNotFound
	return row
}

// readState reads a state file of at most MaxStateBytes into v. It returns
// false if the file does not exist; otherwise the row's source is set, and
// its error if the file could not be read or parsed.
func (r *Resolver) readState(path string, row *event.Container, v any) bool {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	row.Source = cut([]byte(path), maxPath)
	if err != nil {
		row.Error = event.CtrReadError
		return true
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, r.opts.MaxStateBytes+1))
	switch {
	case err != nil:
		row.Error = event.CtrReadError
	case int64(len(b)) > r.opts.MaxStateBytes:
		row.Error = event.CtrTooLarge
	case json.Unmarshal(b, v) != nil:
		row.Error = event.CtrParseError
	}
	return true
}

// dockerConfig is the part of Docker's config.v2.json read.
type dockerConfig struct {
	Name   string
	Config struct {
		Image  string
		Labels map[string]string
	}
}

func (r *Resolver) docker(id string, row *event.Container) bool {
	var c dockerConfig
	if !r.readState(filepath.Join(r.opts.Roots.Docker, "containers", id, "config.v2.json"), row, &c) {
		return false
	}
	row.Runtime = event.RuntimeDocker
	if row.Error != "" {
		return true
	}
	name := c.Name
	if len(name) > 0 && name[0] == '/' {
		name = name[1:]
	}
	row.Name = opt(name, maxName)
	row.Image = opt(c.Config.Image, maxImage)
	setPod(row, c.Config.Labels)
	// A Kubernetes container under dockershim/cri-dockerd: the CRI name is a label.
	if n := c.Config.Labels["io.kubernetes.container.name"]; n != "" {
		row.Name = opt(n, maxName)
	}
	return true
}

// ociConfig is the part of an OCI runtime bundle's config.json read.
type ociConfig struct {
	Annotations map[string]string
}

// Annotations naming a container, its image and its pod: CRI (containerd),
// CRI-O and Kubernetes, and nerdctl.
var (
	nameKeys  = []string{"io.kubernetes.cri.container-name", "io.kubernetes.container.name", "nerdctl/name"}
	imageKeys = []string{"io.kubernetes.cri.image-name", "io.kubernetes.cri-o.ImageName"}
	podKeys   = []string{"io.kubernetes.pod.name", "io.kubernetes.cri.sandbox-name"}
	nsKeys    = []string{"io.kubernetes.pod.namespace", "io.kubernetes.cri.sandbox-namespace"}
)

func first(m map[string]string, keys []string, n int) []byte {
	for _, k := range keys {
		if v := m[k]; v != "" {
			return opt(v, n)
		}
	}
	return nil
}

func setPod(row *event.Container, m map[string]string) {
	if p := first(m, podKeys, maxName); p != nil {
		row.Pod = p
	}
	if ns := first(m, nsKeys, maxName); ns != nil {
		row.Namespace = ns
	}
}

func (r *Resolver) containerd(id string, row *event.Container) bool {
	ents, err := os.ReadDir(r.opts.Roots.Containerd)
	if err != nil {
		return false
	}
	for i, e := range ents {
		if i == maxNamespaces {
			break
		}
		var c ociConfig
		if !r.readState(filepath.Join(r.opts.Roots.Containerd, e.Name(), id, "config.json"), row, &c) {
			continue
		}
		row.Runtime = event.RuntimeContainerd
		if row.Error == "" {
			row.Name = first(c.Annotations, nameKeys, maxName)
			row.Image = first(c.Annotations, imageKeys, maxImage)
			setPod(row, c.Annotations)
		}
		return true
	}
	return false
}

// podmanContainer is the part of a containers.json entry read.
type podmanContainer struct {
	ID       string   `json:"id"`
	Names    []string `json:"names"`
	Metadata string   `json:"metadata"` // JSON again: image-name, name
}

func (r *Resolver) podman(id string, row *event.Container) bool {
	var all []podmanContainer
	if !r.readState(filepath.Join(r.opts.Roots.Podman, "overlay-containers", "containers.json"), row, &all) {
		return false
	}
	if row.Error != "" {
		row.Runtime = event.RuntimePodman
		return true
	}
	for _, c := range all {
		if c.ID != id {
			continue
		}
		row.Runtime = event.RuntimePodman
		if len(c.Names) > 0 {
			row.Name = opt(c.Names[0], maxName)
		}
		var md struct {
			ImageName string `json:"image-name"`
		}
		if json.Unmarshal([]byte(c.Metadata), &md) == nil {
			row.Image = opt(md.ImageName, maxImage)
		}
		// A pod of podman kube play carries the Kubernetes annotations in
		// its OCI config; a missing or bad one only leaves the pod unknown.
		var oc ociConfig
		var scratch event.Container
		if r.readState(filepath.Join(r.opts.Roots.Podman, "overlay-containers", id, "userdata", "config.json"), &scratch, &oc) && scratch.Error == "" {
			setPod(row, oc.Annotations)
		}
		return true
	}
	row.Source = nil
	return false
}

// opt is s's bytes cut to n, or nil for "".
func opt(s string, n int) []byte {
	if s == "" {
		return nil
	}
	return cut([]byte(s), n)
}

func cut(b []byte, n int) []byte { return b[:min(len(b), n)] }

// isHexID reports whether id is 64 lower-case hex digits, the only ids
// looked up (they are safe as path elements).
func isHexID(id []byte) bool {
	if len(id) != 64 {
		return false
	}
	for _, c := range id {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// watchSink passes every row on to its Sink and tells the Resolver of each
// proc row's container id.
type watchSink struct {
	event.Sink
	r *Resolver
}

// Watch returns a Sink that passes every row to s and tells r of the
// container id of every proc row: give it to the process source.
func Watch(s event.Sink, r *Resolver) event.Sink { return watchSink{s, r} }

func (w watchSink) AppendProc(p *event.Proc) {
	w.Sink.AppendProc(p)
	if p.ContainerID != nil {
		w.r.Observe(p.ContainerID, p.PID, p.TS)
	}
}
