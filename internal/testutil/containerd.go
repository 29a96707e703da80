package testutil

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Containerd is a private containerd started by [StartContainerd].
type Containerd struct {
	t    testing.TB
	root string
}

// ctrEnv is the environment of containerd and ctr: runc and the shim on
// PATH whatever the test's is, and ctr's snapshotter the native one (plain
// copies: no overlay mount, which a test directory on an overlay or an
// unusual file system would refuse).
func ctrEnv() []string {
	return append(os.Environ(), "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "CONTAINERD_SNAPSHOTTER=native")
}

// StartContainerd starts containerd (Debian's containerd and runc
// packages; a priv test) with its root, state and socket where a host has
// them but under root (root/var/lib/containerd, root/run/containerd), without
// the CRI plugin, and stops it by pid when the test ends. ctr and the shim
// still make /run/containerd/{fifo,runc,s} on the host (hashed names, shared
// with any other containerd); the empty ones are removed if the test made
// /run/containerd.
func StartContainerd(t testing.TB, root string) *Containerd {
	t.Helper()
	RequireRoot(t)
	for _, bin := range []string{"containerd", "ctr", "runc", "containerd-shim-runc-v2"} {
		if _, err := exec.LookPath(bin); err != nil {
			if _, err2 := os.Stat(filepath.Join("/usr/sbin", bin)); err2 != nil {
				Skip(t, TierPriv, fmt.Sprintf("%s not found (apt-get install containerd runc): %v", bin, err))
			}
		}
	}
	if _, err := os.Stat("/run/containerd"); os.IsNotExist(err) {
		t.Cleanup(func() {
			for _, d := range []string{"fifo", "runc/default", "runc", "s", ""} {
				os.Remove(filepath.Join("/run/containerd", d)) // only if empty
			}
		})
	}
	state := filepath.Join(root, "run/containerd")
	for _, d := range []string{filepath.Join(root, "var/lib/containerd"), state} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	config := filepath.Join(root, "containerd.toml")
	if err := os.WriteFile(config, []byte("version = 2\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(t.TempDir(), "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("containerd", "--config", config, "--root", filepath.Join(root, "var/lib/containerd"),
		"--state", state, "--address", filepath.Join(state, "containerd.sock"))
	cmd.Env = ctrEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	StartCmd(t, cmd, func() {
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("containerd log:\n%s", b)
		}
	})
	c := &Containerd{t: t, root: root}
	WaitFor(t, 60*time.Second, "containerd to answer", func() bool {
		_, err := c.CtrOut("version")
		return err == nil
	})
	return c
}

// CtrOut runs ctr (namespace default) against c, with a deadline of 60 s.
func (c *Containerd) CtrOut(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"-a", filepath.Join(c.root, "run/containerd/containerd.sock"), "-n", "default"}, args...)...)
	cmd.Env = ctrEnv()
	return cmd.CombinedOutput()
}

// Ctr runs ctr against c and fails the test on error.
func (c *Containerd) Ctr(args ...string) string {
	c.t.Helper()
	out, err := c.CtrOut(args...)
	if err != nil {
		c.t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Run runs container id of image detached (ctr run -d, with ctr run's extra
// options before the image), returns its task's pid, and kills and deletes
// it when the test ends.
func (c *Containerd) Run(id, image string, opts ...string) int {
	c.t.Helper()
	c.Ctr(append(append([]string{"run", "-d"}, opts...), image, id)...)
	c.t.Cleanup(func() {
		c.CtrOut("task", "kill", "-s", "SIGKILL", id)
		deadline := time.Now().Add(30 * time.Second)
		for {
			out, err := c.CtrOut("task", "delete", id)
			if err == nil || time.Now().After(deadline) {
				if err != nil {
					c.t.Errorf("ctr task delete %s: %v: %s", id, err, out)
				}
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		c.Ctr("container", "delete", id)
	})
	var pid int
	WaitFor(c.t, 60*time.Second, "the task to run", func() bool {
		out, _ := c.CtrOut("task", "ls")
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) == 3 && f[0] == id && f[2] == "RUNNING" {
				pid, _ = strconv.Atoi(f[1])
			}
		}
		return pid > 0
	})
	return pid
}

// ImportSleeper imports the image of [WriteSleeperImage] into c as ref.
func (c *Containerd) ImportSleeper(ref string) {
	c.t.Helper()
	archive := filepath.Join(c.t.TempDir(), "sleeper.tar")
	WriteSleeperImage(c.t, archive, ref)
	c.Ctr("image", "import", archive)
}

// WriteSleeperImage writes an OCI image layout tarball (what ctr image
// import takes) of one image named ref (the io.containerd.image.name
// annotation), whose only layer holds a static program that sleeps for an
// hour as /sleeper, its entrypoint (built from testdata/sleeper).
func WriteSleeperImage(t testing.TB, path, ref string) {
	t.Helper()
	prog, err := os.ReadFile(Bin(t, "internal/testutil/testdata/sleeper"))
	if err != nil {
		t.Fatal(err)
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	addFile(t, tw, "sleeper", 0o755, prog)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	type desc struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Size        int               `json:"size"`
		Annotations map[string]string `json:"annotations,omitempty"`
		Platform    map[string]string `json:"platform,omitempty"`
	}
	files := map[string][]byte{"oci-layout": []byte(`{"imageLayoutVersion":"1.0.0"}`)}
	names := []string{"oci-layout"}
	blob := func(mediaType string, b []byte) desc {
		sum := sha256.Sum256(b)
		name := "blobs/sha256/" + hex.EncodeToString(sum[:])
		files[name] = b
		names = append(names, name)
		return desc{MediaType: mediaType, Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: len(b)}
	}
	js := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	l := blob("application/vnd.oci.image.layer.v1.tar", layer.Bytes())
	cfg := blob("application/vnd.oci.image.config.v1+json", js(map[string]any{
		"architecture": runtime.GOARCH, "os": "linux", "config": map[string]any{"Entrypoint": []string{"/sleeper"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{l.Digest}}}))
	man := blob("application/vnd.oci.image.manifest.v1+json", js(map[string]any{"schemaVersion": 2,
		"mediaType": "application/vnd.oci.image.manifest.v1+json", "config": cfg, "layers": []desc{l}}))
	man.Annotations = map[string]string{"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": "test"}
	man.Platform = map[string]string{"architecture": runtime.GOARCH, "os": "linux"}
	files["index.json"] = js(map[string]any{"schemaVersion": 2, "manifests": []desc{man}})
	names = append(names, "index.json")

	var archive bytes.Buffer
	aw := tar.NewWriter(&archive)
	for _, name := range names {
		addFile(t, aw, name, 0o644, files[name])
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, archive.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func addFile(t testing.TB, tw *tar.Writer, name string, mode int64, b []byte) {
	t.Helper()
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(b)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(b); err != nil {
		t.Fatal(err)
	}
}
