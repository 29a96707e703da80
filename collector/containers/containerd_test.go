package containers

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/procfs"
	"github.com/pofr/pofr/internal/testutil"
)

// TestRealContainerd runs a private containerd (its root, state and socket
// under a prefix), imports an image built here (one static binary), runs a
// container of it with ctr and creates a second without a task, and checks
// that the resolver, given the running container's id as its cgroup path
// names it, reads their image and names from containerd's meta.db while
// containerd holds its lock on the file.
func TestRealContainerd(t *testing.T) {
	root := t.TempDir()
	c := testutil.StartContainerd(t, root)
	const image = "docker.io/pofr/sleeper:test"
	c.ImportSleeper(image)
	var raw [2][32]byte
	rand.Read(raw[0][:])
	rand.Read(raw[1][:])
	running, created := hex.EncodeToString(raw[0][:]), hex.EncodeToString(raw[1][:])
	name := "pofr web\t'\"<x>"
	pid := c.Run(running, image, "--label", "nerdctl/name="+name)
	c.Ctr("container", "create", "--label", "io.kubernetes.pod.name=web-0", "--label", "io.kubernetes.pod.namespace=shop", image, created)
	t.Cleanup(func() { c.Ctr("container", "delete", created) })

	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	cgID := procfs.ContainerID(procfs.ParseCgroup(cg))
	if string(cgID) != running {
		t.Fatalf("container id from the task's cgroup %q: %q, want %s", cg, cgID, running)
	}
	meta := filepath.Join(root, metaPath)
	assertLocked(t, meta)
	bundle := filepath.Join(root, "run/containerd/io.containerd.runtime.v2.task/default", running, "config.json")
	if _, err := os.Stat(bundle); err != nil {
		t.Fatalf("the running task's bundle: %v", err)
	}

	// The worker, told of a proc row of the container's process.
	sink := &event.MemSink{}
	r, err := New(Options{Sink: sink, Roots: Roots{Prefix: root}})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Go(t, "resolver", r.Run)
	w := Watch(sink, r)
	w.AppendProc(&event.Proc{TS: 1, PID: int32(pid), ContainerID: cgID})
	w.AppendProc(&event.Proc{TS: 2, PID: 1, ContainerID: []byte(created)})
	testutil.WaitFor(t, 30*time.Second, "two ctr rows", func() bool { return len(sink.Containers()) == 2 })
	b := func(s string) []byte { return []byte(s) }
	want := []event.Container{
		{TS: 1, PID: int32(pid), ID: b(running), Runtime: event.RuntimeContainerd, Name: b(name), Image: b(image), Source: b(meta)},
		{TS: 2, PID: 1, ID: b(created), Runtime: event.RuntimeContainerd, Image: b(image), Pod: b("web-0"), Namespace: b("shop"), Source: b(meta)},
	}
	if diff := cmp.Diff(want, sink.Containers()); diff != "" {
		t.Errorf("ctr rows (-want +got):\n%s", diff)
	}
	assertLocked(t, meta) // containerd still holds its lock: the read did not take one
}
