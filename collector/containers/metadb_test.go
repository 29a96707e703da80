package containers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/testutil"
)

// metaCtr is a container record as containerd's metadata store writes it
// (core/metadata/containers.go writeContainer).
type metaCtr struct {
	ns, id, image string
	labels        map[string]string
	annotations   map[string]string // of the OCI spec, stored as a protobuf Any
}

// specAny encodes an OCI spec with annotations as containerd stores a
// container's spec: google.protobuf.Any{type_url, value = the spec's JSON}.
func specAny(ann map[string]string) []byte {
	spec := `{"ociVersion":"1.1.0","process":{"args":["/sleeper"]}`
	if ann != nil {
		spec += `,"annotations":{`
		sep := ""
		for k, v := range ann {
			spec += fmt.Sprintf("%s%q:%q", sep, k, v)
			sep = ","
		}
		spec += "}"
	}
	spec += "}"
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, "types.containerd.io/opencontainers/runtime-spec/1/Spec")
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	return protowire.AppendBytes(b, []byte(spec))
}

// putContainer writes c into db in containerd's layout:
// v1/NS/containers/ID with createdat, updatedat, spec, image, snapshotter,
// snapshotKey, runtime/name, sandboxid and labels.
func putContainer(db *bolt.DB, c metaCtr) error {
	return db.Update(func(tx *bolt.Tx) error {
		v1, err := tx.CreateBucketIfNotExists(keyV1)
		if err != nil {
			return err
		}
		if err := v1.Put([]byte("version"), protowire.AppendVarint(nil, 4)); err != nil {
			return err
		}
		nsb, err := v1.CreateBucketIfNotExists([]byte(c.ns))
		if err != nil {
			return err
		}
		cb, err := nsb.CreateBucketIfNotExists(keyContainers)
		if err != nil {
			return err
		}
		b, err := cb.CreateBucket([]byte(c.id))
		if err != nil {
			return err
		}
		ts, _ := time.Unix(1700000000, 5).MarshalBinary()
		for _, kv := range [][2]string{{"createdat", string(ts)}, {"updatedat", string(ts)}, {"spec", string(specAny(c.annotations))},
			{"image", c.image}, {"snapshotter", "overlayfs"}, {"snapshotKey", c.id}, {"sandboxid", ""}} {
			if err := b.Put([]byte(kv[0]), []byte(kv[1])); err != nil {
				return err
			}
		}
		rb, err := b.CreateBucket([]byte("runtime"))
		if err != nil {
			return err
		}
		if err := rb.Put([]byte("name"), []byte("io.containerd.runc.v2")); err != nil {
			return err
		}
		if len(c.labels) == 0 {
			return nil
		}
		lb, err := b.CreateBucket(keyLabels)
		if err != nil {
			return err
		}
		for k, v := range c.labels {
			if err := lb.Put([]byte(k), []byte(v)); err != nil {
				return err
			}
		}
		return nil
	})
}

// openMetaDB creates meta.db at path with the containers and returns it
// open read-write: bbolt holds an exclusive flock on the file, as
// containerd does while it runs. This is a stand-in for containerd's file
// (containerd_test.go runs the real one).
func openMetaDB(tb testing.TB, path string, ctrs ...metaCtr) *bolt.DB {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		tb.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 10 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	for _, c := range ctrs {
		if err := putContainer(db, c); err != nil {
			tb.Fatal(err)
		}
	}
	return db
}

// assertLocked fails unless another process's shared flock on path would
// be refused: the premise of reading meta.db while containerd runs.
func assertLocked(t testing.TB, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); !errors.Is(err, syscall.EWOULDBLOCK) {
		t.Fatalf("flock(LOCK_SH|LOCK_NB) on %s: %v, want EWOULDBLOCK (the file is not locked)", path, err)
	}
}

// lookupWithin runs the lookups of ids and fails if they take over 30 s
// (a read that waits for containerd's lock).
func lookupWithin(t *testing.T, r *Resolver, ids ...string) []event.Container {
	t.Helper()
	done := make(chan []event.Container, 1)
	go func() {
		var got []event.Container
		for _, id := range ids {
			got = append(got, r.Lookup(id))
		}
		done <- got
	}()
	select {
	case got := <-done:
		return got
	case <-time.After(30 * time.Second):
		t.Fatal("lookups blocked for 30 s (meta.db's lock?)")
		return nil
	}
}

const (
	idCtrRun  = "a000000000000000000000000000000000000000000000000000000000000001"
	idCRIMeta = "a000000000000000000000000000000000000000000000000000000000000002"
	idBundle  = "a000000000000000000000000000000000000000000000000000000000000003"
)

var metaPath = "var/lib/containerd/io.containerd.metadata.v1.bolt/meta.db"

// TestLookupMeta: containers known only to containerd's metadata (locked
// by its writer, as containerd locks it) get their name, image and pod from
// it, byte-exact; a running task's bundle that names the container wins,
// one that does not is completed from meta.db.
func TestLookupMeta(t *testing.T) {
	root := t.TempDir()
	writeState(t, root) // idCRI's bundle names it: "api", registry.example/api:v2
	meta := filepath.Join(root, metaPath)
	openMetaDB(t, meta,
		metaCtr{ns: "default", id: idCtrRun, image: "docker.io/library/alpine:3.20",
			labels: map[string]string{"nerdctl/name": "web\t\x00'\x1b[2J", "io.containerd.image.config.stop-signal": "SIGTERM"}},
		metaCtr{ns: "k8s.io", id: idCRIMeta, labels: map[string]string{"io.kubernetes.container.name": "label-name",
			"io.kubernetes.pod.name": "label-pod", "io.kubernetes.pod.namespace": "label-ns"},
			annotations: map[string]string{"io.kubernetes.cri.container-name": "api", "io.kubernetes.cri.image-name": "registry.example/api:v3",
				"io.kubernetes.cri.sandbox-name": "api-7d9f", "io.kubernetes.cri.sandbox-namespace": "prod"}},
		metaCtr{ns: "k8s.io", id: idCRI, image: "registry.example/api:OTHER", labels: map[string]string{"nerdctl/name": "OTHER"}},
		metaCtr{ns: "other", id: idBundle, image: "wrong-namespace"},
		metaCtr{ns: "default", id: idBundle, image: "docker.io/library/busybox:1"},
	)
	// idBundle runs: its bundle (ctr run's) has no annotations.
	bundle := filepath.Join(root, "run/containerd/io.containerd.runtime.v2.task/default", idBundle, "config.json")
	write(t, bundle, `{"ociVersion":"1.1.0","annotations":{"io.kubernetes.pod.namespace":"from-bundle"}}`)
	assertLocked(t, meta)

	r, err := New(Options{Sink: &event.MemSink{}, Roots: Roots{Prefix: root}})
	if err != nil {
		t.Fatal(err)
	}
	b := func(s string) []byte { return []byte(s) }
	want := []event.Container{
		{ID: b(idCtrRun), Runtime: event.RuntimeContainerd, Name: b("web\t\x00'\x1b[2J"), Image: b("docker.io/library/alpine:3.20"), Source: b(meta)},
		{ID: b(idCRIMeta), Runtime: event.RuntimeContainerd, Name: b("api"), Image: b("registry.example/api:v3"),
			Pod: b("api-7d9f"), Namespace: b("prod"), Source: b(meta)},
		{ID: b(idCRI), Runtime: event.RuntimeContainerd, Name: b("api"), Image: b("registry.example/api:v2"), Pod: b("api-7d9f"), Namespace: b("prod"),
			Source: b(filepath.Join(root, "run/containerd/io.containerd.runtime.v2.task/k8s.io", idCRI, "config.json"))},
		{ID: b(idBundle), Runtime: event.RuntimeContainerd, Image: b("docker.io/library/busybox:1"), Namespace: b("from-bundle"), Source: b(meta)},
		{ID: b(idNone), Error: event.CtrNotFound},
	}
	var ids []string
	for _, w := range want {
		ids = append(ids, string(w.ID))
	}
	if diff := cmp.Diff(want, lookupWithin(t, r, ids...)); diff != "" {
		t.Errorf("lookups (-want +got):\n%s", diff)
	}
}

// TestLookupMetaErrors: a meta.db over the limit, not a bolt file, too
// short or cut short gives a row with its error when no other state knows
// the id, and leaves a bundle's row alone when one does.
func TestLookupMetaErrors(t *testing.T) {
	root := t.TempDir()
	writeState(t, root)
	meta := filepath.Join(root, metaPath)
	db := openMetaDB(t, meta, metaCtr{ns: "default", id: idCtrRun, image: "x"})
	db.Close()
	good, err := os.ReadFile(meta)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Options{Sink: &event.MemSink{}, Roots: Roots{Prefix: root}, MaxMetaBytes: int64(len(good))})
	if err != nil {
		t.Fatal(err)
	}
	cut := append([]byte(nil), good[:len(good)/2]...)
	torn := append([]byte(nil), good...)
	for i := 4096; i < len(torn); i++ { // every page but the meta pages
		torn[i] = 0xff
	}
	for _, tc := range []struct {
		name    string
		content []byte
		want    string
	}{
		{"too large", append(append([]byte(nil), good...), 0), event.CtrTooLarge},
		{"not bolt", []byte(strings.Repeat("x", 8192)), event.CtrParseError},
		{"short", []byte("bolt"), event.CtrParseError},
		{"cut", cut, event.CtrParseError},
		{"torn", torn, event.CtrParseError},
	} {
		if err := os.WriteFile(meta, tc.content, 0o600); err != nil {
			t.Fatal(err)
		}
		got := r.Lookup(idCtrRun)
		if got.Error != tc.want || got.Runtime != event.RuntimeContainerd || string(got.Source) != meta || got.Image != nil {
			t.Errorf("%s: %+v, want error %s from %s", tc.name, got, tc.want, meta)
		}
		if got := r.Lookup(idCRI); got.Error != "" || string(got.Name) != "api" {
			t.Errorf("%s: the bundle's container: %+v, want its name", tc.name, got)
		}
		if got := r.Lookup(idPodman); got.Error != "" || got.Runtime != event.RuntimePodman {
			t.Errorf("%s: a Podman container: %+v, want it found", tc.name, got)
		}
	}
}

// TestMetaWhileWriting: lookups while the writer commits a container every
// few ms return the record's values or parse_error (a copy torn by three
// commits), never other values, and a snapshot is reused only while the file
// is unchanged.
func TestMetaWhileWriting(t *testing.T) {
	root := t.TempDir()
	meta := filepath.Join(root, metaPath)
	db := openMetaDB(t, meta, metaCtr{ns: "default", id: idCtrRun, image: "img:1", labels: map[string]string{"nerdctl/name": "n1"}})
	r, err := New(Options{Sink: &event.MemSink{}, Roots: Roots{Prefix: root}})
	if err != nil {
		t.Fatal(err)
	}
	var c metaCache
	defer c.close()
	first := r.lookup(idCtrRun, &c)
	firstDB := c.db
	if again := r.lookup(idCtrRun, &c); c.db != firstDB || !cmp.Equal(first, again) {
		t.Fatalf("unchanged file: snapshot %p then %p, rows %+v and %+v", firstDB, c.db, first, again)
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			id := fmt.Sprintf("b%063x", i)
			// Large labels: each commit rewrites many pages.
			if err := putContainer(db, metaCtr{ns: fmt.Sprintf("ns%d", i%5), id: id, image: strings.Repeat("i", 3000),
				labels: map[string]string{"nerdctl/name": strings.Repeat("n", 3000) + id}}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	var found, torn int
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		got := r.lookup(idCtrRun, &c)
		switch {
		case got.Error == event.CtrParseError:
			torn++
		case cmp.Equal(got, first):
			found++
		default:
			t.Fatalf("lookup during commits: %+v, want %+v", got, first)
		}
	}
	stop()
	wg.Wait()
	if found == 0 {
		t.Errorf("no lookup found the container during commits (%d torn)", torn)
	}
	t.Logf("during commits: %d lookups found the container, %d gave up on torn copies", found, torn)
	if c.db == firstDB {
		t.Error("the snapshot was not renewed after the file changed")
	}
}

// FuzzMetaRecord feeds arbitrary bytes as a container record's image, spec
// (a protobuf Any holding the OCI spec's JSON) and label values: applying
// it never panics and what it returns fits the columns.
func FuzzMetaRecord(f *testing.F) {
	testutil.AddSeeds(f, "testdata/meta/*")
	f.Add(specAny(map[string]string{"io.kubernetes.cri.container-name": "api", "nerdctl/name": "\x00"}))
	f.Add([]byte{0x12, 0x80, 0x80, 0x80, 0x80, 0x10})
	f.Add(append([]byte{0x0d}, make([]byte, 3)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		half := len(b) / 2
		rec := metaRecord{image: b[:half], spec: b, labels: map[string]string{"nerdctl/name": string(b[half:]), "io.kubernetes.pod.name": string(b)}}
		var row event.Container
		rec.apply(&row, 1<<16)
		if len(row.Name) > maxName || len(row.Pod) > maxName || len(row.Namespace) > maxName || len(row.Image) > maxImage {
			t.Fatalf("over a column limit: %d %d %d %d", len(row.Name), len(row.Pod), len(row.Namespace), len(row.Image))
		}
		if half > 0 && string(row.Image) != string(b[:min(half, maxImage)]) {
			t.Fatalf("image %q, want the record's %q", row.Image, b[:half])
		}
	})
}

// FuzzMetaFile overwrites bytes of a real meta.db at a fuzzed offset (a
// corrupt or torn file): a lookup never crashes the collector, and gives
// the record, not_found or parse_error.
func FuzzMetaFile(f *testing.F) {
	root := f.TempDir()
	meta := filepath.Join(root, metaPath)
	db := openMetaDB(f, meta, metaCtr{ns: "default", id: idCtrRun, image: "img", labels: map[string]string{"nerdctl/name": "n"}},
		metaCtr{ns: "k8s.io", id: idCRIMeta, annotations: map[string]string{"io.kubernetes.cri.container-name": "api"}})
	db.Close()
	good, err := os.ReadFile(meta)
	if err != nil {
		f.Fatal(err)
	}
	r, err := New(Options{Sink: &event.MemSink{}, Roots: Roots{Prefix: root}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint32(0), []byte{0})
	f.Add(uint32(16), []byte{0xff, 0xff})
	f.Add(uint32(4096+16), []byte{1, 2, 3, 4, 5, 6, 7, 8})
	f.Add(uint32(2*4096), []byte{0x10, 0, 0, 0})
	f.Fuzz(func(t *testing.T, off uint32, patch []byte) {
		b := append([]byte(nil), good...)
		if int(off%uint32(len(b))) < len(b) {
			copy(b[off%uint32(len(b)):], patch)
		}
		if err := os.WriteFile(meta, b, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{idCtrRun, idCRIMeta} {
			got := r.Lookup(id)
			switch got.Error {
			case "", event.CtrNotFound, event.CtrParseError:
			default:
				t.Fatalf("%s: error %q", id, got.Error)
			}
			if len(got.Name) > maxName || len(got.Image) > maxImage {
				t.Fatalf("over a column limit: %d %d", len(got.Name), len(got.Image))
			}
		}
	})
}

// BenchmarkLookupMeta is the cost of naming one new containerd container
// from a meta.db of 100 containers (of 2 namespaces, with CRI-like labels
// and spec): "cold" copies the file per lookup (a lone new container),
// "burst" reuses the worker's snapshot (new containers seen together).
func BenchmarkLookupMeta(b *testing.B) {
	root := b.TempDir()
	meta := filepath.Join(root, metaPath)
	var ctrs []metaCtr
	for i := range 100 {
		ann := map[string]string{"io.kubernetes.cri.container-name": fmt.Sprintf("c%d", i), "io.kubernetes.cri.sandbox-name": "pod",
			"io.kubernetes.cri.sandbox-namespace": "prod", "io.kubernetes.cri.image-name": "registry.example/app:v1"}
		ctrs = append(ctrs, metaCtr{ns: []string{"k8s.io", "default"}[i%2], id: fmt.Sprintf("c%063x", i), image: "registry.example/app:v1",
			labels: map[string]string{"io.kubernetes.container.name": fmt.Sprintf("c%d", i), "io.kubernetes.pod.name": "pod",
				"io.kubernetes.pod.namespace": "prod", "io.cri-containerd.kind": "container"}, annotations: ann})
	}
	openMetaDB(b, meta, ctrs...)
	st, err := os.Stat(meta)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("meta.db of %d containers: %d bytes", len(ctrs), st.Size())
	r, err := New(Options{Sink: &event.MemSink{}, Roots: Roots{Prefix: root}})
	if err != nil {
		b.Fatal(err)
	}
	id := ctrs[77].id
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			if row := r.Lookup(id); row.Error != "" {
				b.Fatal(row.Error)
			}
		}
	})
	b.Run("burst", func(b *testing.B) {
		var c metaCache
		defer c.close()
		for b.Loop() {
			if row := r.lookup(id, &c); row.Error != "" {
				b.Fatal(row.Error)
			}
		}
	})
}
