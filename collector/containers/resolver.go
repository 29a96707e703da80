package containers

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pofr/pofr/internal/defaults"
	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/procfs"
)

// Defaults of Options.
const (
	DefaultMaxStateBytes = 16 << 20
	DefaultQueue         = 64
	DefaultCacheSize     = 4096
	// maxNamespaces bounds the containerd namespaces looked in.
	maxNamespaces = 64
	// maxUsers bounds the users whose rootless storage is looked in.
	maxUsers = 256
	// maxPasswd bounds the bytes of the passwd file read.
	maxPasswd = 4 << 20
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
	// ContainerdMeta is containerd's metadata database
	// (/var/lib/containerd/io.containerd.metadata.v1.bolt/meta.db): every
	// container's image and labels, running or not, bucket
	// v1/NAMESPACE/containers/ID.
	ContainerdMeta string
	// Podman is containers/storage's root (/var/lib/containers/storage),
	// shared by Podman and CRI-O; the state is
	// overlay-containers/containers.json and
	// overlay-containers/ID/userdata/config.json.
	Podman string
	// StorageRun is containers/storage's run root (/run/containers/storage),
	// where CRI-O keeps a container's OCI bundle:
	// overlay-containers/ID/userdata/config.json.
	StorageRun string
	// Home holds the users' home directories (/home): a rootless Podman's
	// storage is HOME/.local/share/containers/storage.
	Home string
	// RunUser holds the logged-in users' runtime directories (/run/user/UID);
	// their homes come from Passwd (/etc/passwd).
	RunUser, Passwd string
}

func (r Roots) withDefaults() Roots {
	def := func(v *string, p string) {
		if *v == "" {
			*v = filepath.Join("/", r.Prefix, p)
		}
	}
	def(&r.Docker, "var/lib/docker")
	def(&r.Containerd, "run/containerd/io.containerd.runtime.v2.task")
	def(&r.ContainerdMeta, "var/lib/containerd/io.containerd.metadata.v1.bolt/meta.db")
	def(&r.Podman, "var/lib/containers/storage")
	def(&r.StorageRun, "run/containers/storage")
	def(&r.Home, "home")
	def(&r.RunUser, "run/user")
	def(&r.Passwd, "etc/passwd")
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
	// MaxMetaBytes is the largest containerd meta.db read (0:
	// DefaultMaxMetaBytes); it is copied into memory for each lookup (once
	// for a burst of them), and a larger one is not read (too_large).
	MaxMetaBytes int64
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
	defaults.Positive(&opts.MaxMetaBytes, DefaultMaxMetaBytes)
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
	if !procfs.IsHexID(id) {
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
	r.opts.Log.Info("container names on", "docker", r.opts.Roots.Docker, "containerd", r.opts.Roots.Containerd, "containerd_meta", r.opts.Roots.ContainerdMeta,
		"containers_storage", r.opts.Roots.Podman, "storage_run", r.opts.Roots.StorageRun, "rootless_homes", r.opts.Roots.Home, "run_user", r.opts.Roots.RunUser)
	var meta metaCache
	defer meta.close()
	for {
		select {
		case <-ctx.Done():
			return nil
		case j := <-r.queue:
			t0 := time.Now()
			row := r.lookup(j.id, &meta)
			if len(r.queue) == 0 {
				meta.close() // the burst is over: free the copy of meta.db
			}
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
// digits): Docker first, then containerd (its task bundle, then its
// metadata), then containers/storage (Podman or CRI-O), then each user's
// rootless Podman storage. TS and PID are left zero.
func (r *Resolver) Lookup(id string) event.Container { return r.lookup(id, nil) }

// lookup is Lookup with a cache of containerd's metadata (nil: none).
func (r *Resolver) lookup(id string, meta *metaCache) event.Container {
	row := event.Container{ID: []byte(id)}
	if !procfs.IsHexID([]byte(id)) {
		row.Error = event.CtrNotFound
		return row
	}
	var metaErr event.Container
	containerd := func(id string, row *event.Container) bool { return r.containerd(id, row, meta, &metaErr) }
	for _, try := range []func(string, *event.Container) bool{r.docker, containerd, r.podman, r.rootless} {
		if try(id, &row) {
			return row
		}
	}
	if metaErr.Error != "" {
		// containerd's metadata could not be read and no other runtime
		// knows the id: say so rather than not_found.
		return metaErr
	}
	row.Error = event.CtrNotFound
	return row
}

// readState reads a state file of at most MaxStateBytes into v. It returns
// false if the file does not exist; otherwise the row's source is set, and
// its error if the file could not be read or parsed.
func (r *Resolver) readState(path string, row *event.Container, v any) bool {
	// Non-blocking, and regular files only: a user's rootless storage is
	// theirs to fill, and a FIFO there must not stall the worker.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	row.Source = cut([]byte(path), maxPath)
	if err != nil {
		row.Error = event.CtrReadError
		return true
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		row.Error = event.CtrReadError
		return true
	}
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

// containerd looks id up in containerd's task bundles and its metadata.
// A bundle that names the container and its image is the row (the cheap
// read, and every CRI container's). Otherwise meta.db is read: a row of it
// alone if there is no readable bundle, else the bundle's row with the
// fields it lacks taken from meta.db (source: meta.db). A meta.db that
// cannot be read leaves the bundle's row, or, without one, is put in
// metaErr for Lookup to return if no later runtime knows the id.
func (r *Resolver) containerd(id string, row *event.Container, c *metaCache, metaErr *event.Container) bool {
	ns, found := r.containerdTask(id, row)
	if found && row.Error == "" && row.Name != nil && row.Image != nil {
		return true
	}
	m := event.Container{ID: row.ID}
	if !r.containerdMeta(id, ns, &m, c) {
		return found
	}
	switch {
	case m.Error != "" && found:
	case m.Error != "":
		*metaErr = m
		return false
	case !found || row.Error != "":
		*row = m
	default:
		filled := false
		for _, f := range []struct{ dst, src *[]byte }{{&row.Name, &m.Name}, {&row.Image, &m.Image}, {&row.Pod, &m.Pod}, {&row.Namespace, &m.Namespace}} {
			if *f.dst == nil && *f.src != nil {
				*f.dst, filled = *f.src, true
			}
		}
		if filled {
			row.Source = m.Source
		}
	}
	return true
}

// containerdTask looks id up in the running tasks' bundles and returns the
// namespace it was found in.
func (r *Resolver) containerdTask(id string, row *event.Container) (string, bool) {
	ents, err := os.ReadDir(r.opts.Roots.Containerd)
	if err != nil {
		return "", false
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
		return e.Name(), true
	}
	return "", false
}

// podmanContainer is the part of a containers.json entry read
// (containers/storage's Container: id, names, metadata).
type podmanContainer struct {
	ID       string   `json:"id"`
	Names    []string `json:"names"`
	Metadata string   `json:"metadata"` // JSON again: storageMetadata
}

// storageMetadata is the part of a containers.json entry's metadata read.
// Podman writes image-name and name; CRI-O (its RuntimeContainerMetadata)
// also pod-name and pod-id, the CRI name as metadata-name, and, on a pod's
// infrastructure container (pod true), the pod's namespace.
type storageMetadata struct {
	ImageName    string `json:"image-name"`
	Name         string `json:"name"`
	PodName      string `json:"pod-name"`
	PodID        string `json:"pod-id"`
	MetadataName string `json:"metadata-name"`
	Namespace    string `json:"namespace"`
	Pod          bool   `json:"pod"`
}

func (r *Resolver) podman(id string, row *event.Container) bool {
	return r.storage(r.opts.Roots.Podman, r.opts.Roots.StorageRun, event.RuntimePodman, id, row)
}

// storage looks id up in the containers/storage at root (its run root
// runRoot, "" if none): a Podman container, or a CRI-O one when its
// metadata names a pod. podman is the runtime a Podman container gets.
func (r *Resolver) storage(root, runRoot, podman, id string, row *event.Container) bool {
	var all []podmanContainer
	if !r.readState(filepath.Join(root, "overlay-containers", "containers.json"), row, &all) {
		return false
	}
	if row.Error != "" {
		row.Runtime = podman
		return true
	}
	for _, c := range all {
		if c.ID != id {
			continue
		}
		var md storageMetadata
		mdOK := json.Unmarshal([]byte(c.Metadata), &md) == nil
		row.Runtime = podman
		if len(c.Names) > 0 {
			row.Name = opt(c.Names[0], maxName)
		}
		if mdOK {
			row.Image = opt(md.ImageName, maxImage)
		}
		if mdOK && md.PodName != "" && md.PodID != "" {
			// CRI-O: the CRI container name, the pod, and the pod's
			// namespace from its infrastructure container's entry.
			row.Runtime = event.RuntimeCRIO
			if n := cmp.Or(md.MetadataName, md.Name); n != "" {
				row.Name = opt(n, maxName)
			}
			row.Pod = opt(md.PodName, maxName)
			row.Namespace = opt(md.Namespace, maxName)
			for _, s := range all {
				var smd storageMetadata
				if s.ID == md.PodID && json.Unmarshal([]byte(s.Metadata), &smd) == nil && smd.Namespace != "" {
					row.Namespace = opt(smd.Namespace, maxName)
				}
			}
		}
		// The OCI bundle's annotations (a pod of podman kube play; CRI-O's
		// Kubernetes annotations) name the pod when present; a missing or
		// bad one only leaves what containers.json said.
		for _, dir := range []string{root, runRoot} {
			var oc ociConfig
			var scratch event.Container
			if dir != "" && r.readState(filepath.Join(dir, "overlay-containers", id, "userdata", "config.json"), &scratch, &oc) && scratch.Error == "" {
				setPod(row, oc.Annotations)
				break
			}
		}
		return true
	}
	row.Source = nil
	return false
}

// rootless looks id up in the rootless Podman storage of each user with a
// home under Home, or a runtime directory under RunUser (its home from
// Passwd), at most maxUsers of each.
//
// A user's storage that cannot be read or parsed does not end the search
// (the user owns it): the first such error is the row only if no other
// user's storage names the id.
func (r *Resolver) rootless(id string, row *event.Container) bool {
	var failed *event.Container
	for _, home := range r.homes() {
		runRoot := ""
		if home.uid != "" {
			runRoot = filepath.Join(r.opts.Roots.RunUser, home.uid, "containers")
		}
		try := event.Container{ID: row.ID}
		if !r.storage(filepath.Join(home.dir, ".local/share/containers/storage"), runRoot, event.RuntimePodman, id, &try) {
			continue
		}
		if try.Error == "" {
			*row = try
			return true
		}
		if failed == nil {
			failed = &try
		}
	}
	if failed != nil {
		*row = *failed
		return true
	}
	return false
}

type userHome struct{ dir, uid string }

// homes returns the home directories to look in: every directory under
// Home, then the home of each uid under RunUser that passwd names (under
// Prefix), without repeats.
func (r *Resolver) homes() []userHome {
	var out []userHome
	seen := map[string]bool{}
	add := func(h userHome) {
		if !seen[h.dir] {
			seen[h.dir] = true
			out = append(out, h)
		}
	}
	if ents, err := os.ReadDir(r.opts.Roots.Home); err == nil {
		for i, e := range ents {
			if i == maxUsers {
				break
			}
			if e.IsDir() {
				add(userHome{dir: filepath.Join(r.opts.Roots.Home, e.Name())})
			}
		}
	}
	ents, err := os.ReadDir(r.opts.Roots.RunUser)
	if err != nil || len(ents) == 0 {
		return out
	}
	pw := r.passwdHomes()
	for i, e := range ents {
		if i == maxUsers {
			break
		}
		if dir, ok := pw[e.Name()]; ok {
			add(userHome{dir: filepath.Join("/", r.opts.Roots.Prefix, dir), uid: e.Name()})
		}
	}
	return out
}

// passwdHomes maps uid to home directory from the passwd file (name:pw:uid:
// gid:gecos:home:shell), at most maxPasswd bytes of it; homes that are not
// absolute or hold ".." are left out.
func (r *Resolver) passwdHomes() map[string]string {
	f, err := os.Open(r.opts.Roots.Passwd)
	if err != nil {
		return nil
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, maxPasswd))
	return parsePasswdHomes(b)
}

func parsePasswdHomes(b []byte) map[string]string {
	out := map[string]string{}
	for _, line := range bytes.Split(b, []byte("\n")) {
		f := bytes.Split(line, []byte(":"))
		if len(f) < 7 || len(f[2]) == 0 || len(f[2]) > 10 {
			continue
		}
		uid, home := string(f[2]), string(f[5])
		if strings.Trim(uid, "0123456789") != "" || !filepath.IsAbs(home) || slices.Contains(strings.Split(home, "/"), "..") {
			continue
		}
		if _, ok := out[uid]; !ok {
			out[uid] = home
		}
	}
	return out
}

// opt is s's bytes cut to n, or nil for "".
func opt(s string, n int) []byte {
	if s == "" {
		return nil
	}
	return cut([]byte(s), n)
}

func cut(b []byte, n int) []byte { return b[:min(len(b), n)] }

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
