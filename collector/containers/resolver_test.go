package containers

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

const (
	idDocker = "1111111111111111111111111111111111111111111111111111111111111111"
	idCRI    = "2222222222222222222222222222222222222222222222222222222222222222"
	idPodman = "3333333333333333333333333333333333333333333333333333333333333333"
	idNone   = "4444444444444444444444444444444444444444444444444444444444444444"
)

func write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// newStateResolver returns a resolver of the state files writeState wrote
// under the returned root.
func newStateResolver(tb testing.TB) (string, *Resolver) {
	tb.Helper()
	root := tb.TempDir()
	writeState(tb, root)
	r, err := New(Options{Sink: &event.MemSink{}, Roots: Roots{Prefix: root}})
	if err != nil {
		tb.Fatal(err)
	}
	return root, r
}

// writeState writes the three runtimes' state files under root as the
// runtimes do, for idDocker, idCRI and idPodman.
func writeState(t testing.TB, root string) {
	write(t, filepath.Join(root, "var/lib/docker/containers", idDocker, "config.v2.json"),
		`{"ID":"`+idDocker+`","Name":"/web\t\u0000'x","Config":{"Image":"nginx:1.25","Labels":{"a":"b"}},"Image":"sha256:00"}`)
	write(t, filepath.Join(root, "run/containerd/io.containerd.runtime.v2.task/k8s.io", idCRI, "config.json"),
		`{"ociVersion":"1.1.0","annotations":{"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.container-name":"api",
		"io.kubernetes.cri.image-name":"registry.example/api:v2","io.kubernetes.cri.sandbox-name":"api-7d9f","io.kubernetes.cri.sandbox-namespace":"prod"}}`)
	write(t, filepath.Join(root, "var/lib/containers/storage/overlay-containers/containers.json"),
		`[{"id":"`+strings.Repeat("5", 64)+`","names":["other"]},{"id":"`+idPodman+`","names":["db","alias"],"image":"abc",`+
			`"metadata":"{\"image-name\":\"docker.io/library/postgres:16\",\"name\":\"db\"}"}]`)
	write(t, filepath.Join(root, "var/lib/containers/storage/overlay-containers", idPodman, "userdata/config.json"),
		`{"annotations":{"io.kubernetes.pod.name":"dbpod","io.kubernetes.pod.namespace":"default"}}`)
}

func TestLookup(t *testing.T) {
	root, r := newStateResolver(t)
	b := func(s string) []byte { return []byte(s) }
	want := []event.Container{
		{ID: b(idDocker), Runtime: event.RuntimeDocker, Name: b("web\t\x00'x"), Image: b("nginx:1.25"),
			Source: b(filepath.Join(root, "var/lib/docker/containers", idDocker, "config.v2.json"))},
		{ID: b(idCRI), Runtime: event.RuntimeContainerd, Name: b("api"), Image: b("registry.example/api:v2"), Pod: b("api-7d9f"), Namespace: b("prod"),
			Source: b(filepath.Join(root, "run/containerd/io.containerd.runtime.v2.task/k8s.io", idCRI, "config.json"))},
		{ID: b(idPodman), Runtime: event.RuntimePodman, Name: b("db"), Image: b("docker.io/library/postgres:16"), Pod: b("dbpod"), Namespace: b("default"),
			Source: b(filepath.Join(root, "var/lib/containers/storage/overlay-containers/containers.json"))},
		{ID: b(idNone), Error: event.CtrNotFound},
		{ID: b("../../etc"), Error: event.CtrNotFound},
	}
	var got []event.Container
	for _, w := range want {
		got = append(got, r.Lookup(string(w.ID)))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lookups (-want +got):\n%s", diff)
	}
}

// TestLookupHostile: a state file over the limit, one that is not JSON and
// names longer than their columns give rows with an error or cut names.
func TestLookupHostile(t *testing.T) {
	root := t.TempDir()
	cfg := filepath.Join(root, "var/lib/docker/containers", idDocker, "config.v2.json")
	r, err := New(Options{Sink: &event.MemSink{}, Roots: Roots{Prefix: root}, MaxStateBytes: 8 << 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		content string
		want    string
	}{
		{`{"Name":"/` + strings.Repeat("x", 9<<10) + `"}`, event.CtrTooLarge},
		{`{"Name": [`, event.CtrParseError},
		{`{"Name": 7}`, event.CtrParseError},
		{`[]`, event.CtrParseError},
	} {
		write(t, cfg, tc.content)
		if got := r.Lookup(idDocker); got.Error != tc.want || got.Runtime != event.RuntimeDocker || got.Name != nil {
			t.Errorf("%.20q: error %q runtime %q name %q, want error %q", tc.content, got.Error, got.Runtime, got.Name, tc.want)
		}
	}
	write(t, cfg, `{"Name":"/`+strings.Repeat("n", 2000)+`","Config":{"Image":"`+strings.Repeat("i", 5000)+`"}}`)
	if got := r.Lookup(idDocker); got.Error != "" || len(got.Name) != maxName || len(got.Image) != maxImage {
		t.Errorf("long names: error %q, name %d bytes, image %d, want %d and %d", got.Error, len(got.Name), len(got.Image), maxName, maxImage)
	}
}

// TestObserve: each new id is looked up once, in the worker, with the time
// and pid of the row that first carried it; a non-hex id is not looked up.
func TestObserve(t *testing.T) {
	root := t.TempDir()
	writeState(t, root)
	sink := &event.MemSink{}
	r, err := New(Options{Sink: sink, Roots: Roots{Prefix: root}, CacheSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	w := Watch(sink, r)
	for i, id := range []string{idDocker, idDocker, "lxcname", idCRI, idCRI, idDocker} {
		w.AppendProc(&event.Proc{TS: int64(100 + i), PID: int32(i), ContainerID: []byte(id)})
	}
	w.AppendProc(&event.Proc{TS: 200, PID: 9})
	deadline := time.Now().Add(10 * time.Second)
	for len(sink.Containers()) < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	var got []string
	for _, c := range sink.Containers() {
		got = append(got, string(c.ID[:4])+" "+string(c.Name)+" "+string(rune('0'+c.PID)))
	}
	// The cache holds 2: lxcname and idCRI pushed idDocker out, so its
	// third row is looked up again.
	want := []string{"1111 web\t\x00'x 0", "2222 api 3", "1111 web\t\x00'x 5"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ctr rows (-want +got):\n%s", diff)
	}
	if n := len(sink.Procs()); n != 7 {
		t.Errorf("%d proc rows passed on, want 7", n)
	}
	st := r.Stats()
	if st.Seen != 4 || st.Found != 3 || st.Unsupported != 1 {
		t.Errorf("stats %+v, want seen 4, found 3, unsupported 1", st)
	}
}

// FuzzLookup feeds arbitrary bytes to every runtime's state file: a lookup
// never panics, and what it returns fits the columns.
func FuzzLookup(f *testing.F) {
	testutil.AddSeeds(f, "testdata/*.json")
	f.Add([]byte(`{"Name":"\ud800","Config":{"Labels":{"io.kubernetes.pod.name":"\u0000"}}}`))
	root := f.TempDir()
	r, err := New(Options{Sink: &event.MemSink{}, Roots: Roots{Prefix: root}, MaxStateBytes: 1 << 16})
	if err != nil {
		f.Fatal(err)
	}
	// Each file with the content it has while another is fuzzed, and the id
	// looked up when it is.
	files := []struct{ path, base, id string }{
		{filepath.Join(root, "var/lib/docker/containers", idDocker, "config.v2.json"), "{}", idDocker},
		{filepath.Join(root, "run/containerd/io.containerd.runtime.v2.task/default", idCRI, "config.json"), "{}", idCRI},
		{filepath.Join(root, "var/lib/containers/storage/overlay-containers/containers.json"),
			`[{"id":"` + idCRIO + `","metadata":"{\"pod-name\":\"p\",\"pod-id\":\"x\"}"}]`, idPodman},
		{filepath.Join(root, "run/containers/storage/overlay-containers", idCRIO, "userdata/config.json"), "{}", idCRIO},
		{filepath.Join(root, "home/alice/.local/share/containers/storage/overlay-containers/containers.json"), "[]", idRootless},
	}
	for _, fl := range files {
		write(f, fl.path, fl.base)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, fl := range files {
			p := fl.path
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			got := r.Lookup(fl.id)
			if len(got.Name) > maxName || len(got.Pod) > maxName || len(got.Namespace) > maxName || len(got.Image) > maxImage {
				t.Fatalf("%s: over a column limit: %d %d %d %d", p, len(got.Name), len(got.Pod), len(got.Namespace), len(got.Image))
			}
			if got.Error == "" && got.Runtime == "" {
				t.Fatalf("%s: no error and no runtime", p)
			}
			os.WriteFile(p, []byte(fl.base), 0o644)
		}
	})
}

// BenchmarkLookup is the cost of naming one new container, per runtime: the
// state file read and parsed (the collector pays it once per container id).
func BenchmarkLookup(b *testing.B) {
	root, r := newStateResolver(b)
	writeStorageState(b, root)
	writeState(b, root) // the system containers.json: Podman's, not CRI-O's
	for _, id := range []struct{ name, id string }{{"docker", idDocker}, {"containerd", idCRI}, {"podman", idPodman},
		{"rootless", idRootless}, {"rootless_run_user", idRunUser}, {"not_found", idNone}} {
		b.Run(id.name, func(b *testing.B) {
			for b.Loop() {
				if row := r.Lookup(id.id); row.Runtime == "" && id.name != "not_found" {
					b.Fatal(row.Error)
				}
			}
		})
	}
}

// BenchmarkObserveKnown is the cost on the process source's path of a proc
// row whose container id is already known (a map lookup under a mutex).
func BenchmarkObserveKnown(b *testing.B) {
	r, err := New(Options{Sink: &event.MemSink{}})
	if err != nil {
		b.Fatal(err)
	}
	id := []byte(idDocker)
	r.Observe(id, 1, 1)
	for b.Loop() {
		r.Observe(id, 1, 1)
	}
}

const (
	idCRIO     = "6666666666666666666666666666666666666666666666666666666666666666"
	idSandbox  = "7777777777777777777777777777777777777777777777777777777777777777"
	idRootless = "8888888888888888888888888888888888888888888888888888888888888888"
	idRunUser  = "9999999999999999999999999999999999999999999999999999999999999999"
)

// writeStorageState writes under root what CRI-O and two rootless Podman
// users leave on disk, in the runtimes' own formats: containers/storage's
// containers.json (id, names, metadata), CRI-O's RuntimeContainerMetadata
// in an entry's metadata (pod-name, pod-id, image-name, name,
// metadata-name, and namespace on the pod's infrastructure container), its
// OCI bundle in the run root; alice's storage under /home, bob's under the
// home passwd gives uid 1001, which has a /run/user directory.
func writeStorageState(t testing.TB, root string) {
	md := func(v map[string]any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := json.Marshal(string(b))
		return string(s)
	}
	write(t, filepath.Join(root, "var/lib/containers/storage/overlay-containers/containers.json"),
		`[{"id":"`+idSandbox+`","names":["k8s_POD_web-0_shop_u1_0","web-0"],"metadata":`+md(map[string]any{"pod": true,
			"pod-name": "web-0", "pod-id": idSandbox, "name": "k8s_POD_web-0_shop_u1_0", "metadata-name": "web-0",
			"namespace": "shop\t\x00\x1b[2J", "uid": "u1", "image-name": "registry.k8s.io/pause:3.9"})+`},`+
			`{"id":"`+idCRIO+`","names":["k8s_nginx_web-0_shop_u1_0"],"image":"abc","metadata":`+md(map[string]any{
			"pod-name": "web-0", "pod-id": idSandbox, "image-name": "docker.io/library/nginx:1.25", "name": "k8s_nginx_web-0_shop_u1_0",
			"metadata-name": "nginx\x1b[31m\"'<", "created-at": 1700000000})+`}]`)
	write(t, filepath.Join(root, "run/containers/storage/overlay-containers", idCRIO, "userdata/config.json"),
		`{"ociVersion":"1.0.2-dev","annotations":{"io.kubernetes.cri-o.ContainerType":"container","io.kubernetes.pod.name":"web-0",`+
			`"io.kubernetes.pod.namespace":"shop\t\u0000\u001b[2J","io.kubernetes.cri-o.ImageName":"docker.io/library/nginx:1.25"}}`)
	write(t, filepath.Join(root, "home/alice/.local/share/containers/storage/overlay-containers/containers.json"),
		`[{"id":"`+idRootless+`","names":["toolbox"],"metadata":"{\"image-name\":\"registry.fedoraproject.org/fedora-toolbox:40\",\"name\":\"toolbox\"}"}]`)
	write(t, filepath.Join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/bash\nbob:x:1001:1001::/srv/bob:/bin/sh\nevil:x:1002:1002::/../../etc:/bin/sh\n")
	if err := os.MkdirAll(filepath.Join(root, "run/user/1001"), 0o700); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(root, "srv/bob/.local/share/containers/storage/overlay-containers/containers.json"),
		`[{"id":"`+idRunUser+`","names":["bob's <db>"],"metadata":"{\"image-name\":\"postgres:16\"}"}]`)
}

// TestLookupStorage: CRI-O containers get their CRI name, image, pod and the
// pod's namespace (byte-exact); rootless Podman containers are found in the
// storage of a user under /home and of a user with a /run/user directory;
// a FIFO in a user's storage neither blocks the lookup nor hides another
// user's container.
func TestLookupStorage(t *testing.T) {
	root := t.TempDir()
	writeStorageState(t, root)
	// carol's containers.json is a FIFO: opened without blocking, refused.
	fifo := filepath.Join(root, "home/carol/.local/share/containers/storage/overlay-containers/containers.json")
	if err := os.MkdirAll(filepath.Dir(fifo), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := New(Options{Sink: &event.MemSink{}, Roots: Roots{Prefix: root}})
	if err != nil {
		t.Fatal(err)
	}
	b := func(s string) []byte { return []byte(s) }
	sysJSON := b(filepath.Join(root, "var/lib/containers/storage/overlay-containers/containers.json"))
	want := []event.Container{
		{ID: b(idCRIO), Runtime: event.RuntimeCRIO, Name: b("nginx\x1b[31m\"'<"), Image: b("docker.io/library/nginx:1.25"),
			Pod: b("web-0"), Namespace: b("shop\t\x00\x1b[2J"), Source: sysJSON},
		{ID: b(idSandbox), Runtime: event.RuntimeCRIO, Name: b("web-0"), Image: b("registry.k8s.io/pause:3.9"),
			Pod: b("web-0"), Namespace: b("shop\t\x00\x1b[2J"), Source: sysJSON},
		{ID: b(idRootless), Runtime: event.RuntimePodman, Name: b("toolbox"), Image: b("registry.fedoraproject.org/fedora-toolbox:40"),
			Source: b(filepath.Join(root, "home/alice/.local/share/containers/storage/overlay-containers/containers.json"))},
		{ID: b(idRunUser), Runtime: event.RuntimePodman, Name: b("bob's <db>"), Image: b("postgres:16"),
			Source: b(filepath.Join(root, "srv/bob/.local/share/containers/storage/overlay-containers/containers.json"))},
		{ID: b(idNone), Runtime: event.RuntimePodman, Error: event.CtrReadError, Source: b(fifo)},
	}
	done := make(chan []event.Container)
	go func() {
		var got []event.Container
		for _, w := range want {
			got = append(got, r.Lookup(string(w.ID)))
		}
		done <- got
	}()
	select {
	case got := <-done:
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("lookups (-want +got):\n%s", diff)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("lookups blocked for 30 s (the FIFO?)")
	}
}

func TestParsePasswdHomes(t *testing.T) {
	got := parsePasswdHomes([]byte("root:x:0:0:root:/root:/bin/bash\n" +
		"bob:x:1001:1001::/srv/bob:/bin/sh\n" +
		"dup:x:1001:1001::/other:/bin/sh\n" +
		"rel:x:1003:1::home/rel:/bin/sh\n" +
		"dots:x:1004:1::/home/../etc:/bin/sh\n" +
		"neg:x:-1:1::/x:/bin/sh\n" +
		"short:x:1005\n" +
		"big:x:99999999999:1::/x:/bin/sh\n"))
	want := map[string]string{"0": "/root", "1001": "/srv/bob"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("homes (-want +got):\n%s", diff)
	}
}
