package e2e

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pofr/pofr/internal/testutil"
)

// TestContainerName: a process moved into a real cgroup v2 directory named
// like a Docker container's (docker-ID.scope), with Docker's state file for
// that id under the collector's --container-root, gets the container's
// name, image and pod in MariaDB, joined to its exec row by container id.
func TestContainerName(t *testing.T) {
	p := newPipeline(t)
	mnt := cgroup2Mount(t)
	var raw [32]byte
	rand.Read(raw[:])
	id := hex.EncodeToString(raw[:])
	parent, err := os.MkdirTemp(mnt, "pofr-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	cg := filepath.Join(parent, "docker-"+id+".scope")
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The workload has exited: the cgroups are empty.
		for _, d := range []string{cg, parent} {
			if err := os.Remove(d); err != nil {
				t.Errorf("remove cgroup: %v", err)
			}
		}
	})
	root := t.TempDir()
	state := filepath.Join(root, "var/lib/docker/containers", id, "config.v2.json")
	if err := os.MkdirAll(filepath.Dir(state), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, state,
		`{"ID":"`+id+`","Name":"/e2e-web\t'","Config":{"Image":"nginx:1.25",`+
			`"Labels":{"io.kubernetes.pod.name":"web-5f7c","io.kubernetes.pod.namespace":"prod"}}}`)

	coll := p.startCollector("--segment-age", "1s", "--container-root", root)
	cmd := exec.Command("/bin/sh", "-c", `echo $$ >"$1/cgroup.procs" && exec sleep 1.5`, "e2e-ctr", cg)
	cmd.Stderr = os.Stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	testutil.Await(t, done, 30*time.Second, "workload", func() { cmd.Process.Kill() })
	time.Sleep(2 * time.Second)
	p.stopCollector(coll)
	p.load()

	got := p.containerOfExec(cmd.Process.Pid, "%sleep")
	want := ctrRow{Exe: got.Exe, ContainerID: id, Runtime: "docker", Name: strings.ToUpper(hex.EncodeToString([]byte("e2e-web\t'"))),
		Image: "nginx:1.25", Pod: "web-5f7c", Namespace: "prod", Source: filepath.Join(root, "var/lib/docker/containers", id, "config.v2.json")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("container of the workload (-want +got):\n%s", diff)
	}
	var n int
	if err := p.db.QueryRow(`SELECT COUNT(*) FROM containers WHERE host_id = ? AND container_id = ?`, p.hostID, id).Scan(&n); err != nil || n != 1 {
		t.Errorf("%d container rows for the id (%v), want 1: looked up once", n, err)
	}
	out := p.run(30*time.Second, p.server, "query", "ran", "--container", "e2e-web\t'", "--dsn-file", p.dsnFile)
	if !strings.Contains(out, "sleep") {
		t.Errorf("query ran --container does not show the workload:\n%s", out)
	}
}

// ctrRow is an exec row's container as MariaDB has it (name in hex).
type ctrRow struct{ Exe, ContainerID, Runtime, Name, Image, Pod, Namespace, Source string }

// containerOfExec returns the container joined to pid's exec row of an exe
// LIKE exe.
func (p *pipeline) containerOfExec(pid int, exe string) ctrRow {
	p.t.Helper()
	var got ctrRow
	var pod, ns sql.NullString
	err := p.db.QueryRow(`SELECT pe.exe, pe.container_id, c.runtime, HEX(c.name), c.image, c.pod, c.namespace, c.source
		FROM proc_events pe JOIN containers c ON c.host_id = pe.host_id AND c.container_id = pe.container_id
		WHERE pe.host_id = ? AND pe.pid = ? AND pe.event = 'exec' AND pe.exe LIKE ? LIMIT 1`, p.hostID, pid, exe).
		Scan(&got.Exe, &got.ContainerID, &got.Runtime, &got.Name, &got.Image, &pod, &ns, &got.Source)
	if err != nil {
		p.t.Fatalf("exec row of pid %d joined to its container: %v", pid, err)
	}
	got.Pod, got.Namespace = pod.String, ns.String
	return got
}

// TestContainerdName: a container run by a real containerd (ctr run, its
// root and state under the collector's --container-root) gets its name and
// image from containerd's meta.db in MariaDB, joined to the exec row of its
// process, while containerd holds its lock on the file.
func TestContainerdName(t *testing.T) {
	p := newPipeline(t)
	root := t.TempDir()
	c := testutil.StartContainerd(t, root)
	const image = "docker.io/pofr/e2e-sleeper:1"
	c.ImportSleeper(image)
	var raw [32]byte
	rand.Read(raw[:])
	id := hex.EncodeToString(raw[:])

	coll := p.startCollector("--segment-age", "1s", "--container-root", root)
	pid := c.Run(id, image, "--label", "nerdctl/name=e2e-ctr\t'")
	time.Sleep(2 * time.Second)
	p.stopCollector(coll)
	p.load()

	got := p.containerOfExec(pid, "%sleeper")
	want := ctrRow{Exe: got.Exe, ContainerID: id, Runtime: "containerd", Name: strings.ToUpper(hex.EncodeToString([]byte("e2e-ctr\t'"))),
		Image: image, Source: filepath.Join(root, "var/lib/containerd/io.containerd.metadata.v1.bolt/meta.db")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("container of the workload (-want +got):\n%s", diff)
	}
	out := p.run(30*time.Second, p.server, "query", "ran", "--container", "e2e-ctr\t'", "--dsn-file", p.dsnFile)
	if !strings.Contains(out, "sleeper") {
		t.Errorf("query ran --container does not show the container's process:\n%s", out)
	}
}

// cgroup2Mount returns where the cgroup v2 hierarchy is mounted: the path of
// the "0::" line of /proc/PID/cgroup, which the collector reads
// (/sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host).
func cgroup2Mount(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[2] == "cgroup2" {
			return f[1]
		}
	}
	t.Fatal("no cgroup2 file system is mounted")
	return ""
}
