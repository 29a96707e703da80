package uplink_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/internal/testutil"
	"github.com/pofr/pofr/receiver"
	"github.com/pofr/pofr/uplink"
)

func TestMain(m *testing.M) {
	if state := os.Getenv(childEnv); state != "" {
		os.Exit(runChildReceiver(statedir.Dir(state)))
	}
	testutil.Main(m)
}

// testServer is a receiver serving on loopback in this process.
type testServer struct {
	srv   *receiver.Server
	state statedir.Dir
	addr  string
	stop  func()
}

// startReceiver runs a receiver on addr ("127.0.0.1:0" for any port) with
// state dir state ("" for a new one) until stop or the end of the test.
func startReceiver(t testing.TB, state statedir.Dir, addr string, mod func(*receiver.Options)) *testServer {
	t.Helper()
	if state == "" {
		state = statedir.Dir(t.TempDir())
	}
	o := receiver.Options{StateDir: state, RegistrationPassword: []byte("correct horse battery")}
	if mod != nil {
		mod(&o)
	}
	srv, err := receiver.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	for i := 0; ; i++ {
		ln, err = net.Listen("tcp", addr)
		if err == nil || i == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond) // the old listener of a restart may linger
	}
	if err != nil {
		t.Fatal(err)
	}
	stop := testutil.Go(t, "Serve", func(ctx context.Context) error { return srv.Serve(ctx, ln) })
	return &testServer{srv: srv, state: state, addr: ln.Addr().String(), stop: stop}
}

func (s *testServer) fingerprint() string {
	return sshFingerprint(s.srv.HostKey())
}

// testFacts are facts with a machine id of its own per call.
func testFacts(t testing.TB, hostname string) uplink.HostFacts {
	t.Helper()
	h := sha256.Sum256([]byte(t.Name() + hostname + time.Now().String()))
	return uplink.HostFacts{
		Hostname:  hostname,
		MachineID: fmt.Sprintf("%x", h[:16]),
		IPs:       []string{"192.0.2.7"},
		OS:        "Test OS",
		Kernel:    "6.18.0-test",
		Version:   "test",
	}
}

// dirQueue is a Queue over a directory of segment files; it records the
// order of removals.
type dirQueue struct {
	dir     string
	mu      sync.Mutex
	removed []string
	// onRemove, if set, runs before each removal (outside mu).
	onRemove func(name string)
}

func (q *dirQueue) Pending() ([]uplink.Item, error) {
	ents, err := os.ReadDir(q.dir)
	if err != nil {
		return nil, err
	}
	var out []uplink.Item
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".pofr") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, uplink.Item{Name: e.Name(), Path: filepath.Join(q.dir, e.Name()), Size: fi.Size()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (q *dirQueue) Remove(name string) error {
	if q.onRemove != nil {
		q.onRemove(name)
	}
	q.mu.Lock()
	q.removed = append(q.removed, name)
	q.mu.Unlock()
	return os.Remove(filepath.Join(q.dir, name))
}

func (q *dirQueue) Removed() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.removed)
}

// segName returns a segment name of host with sequence seq.
func segName(host string, seq int) string {
	h := sha256.Sum256([]byte(fmt.Sprint(host, seq)))
	return fmt.Sprintf("%s_%020d_%x.pofr", host, seq, h[:8])
}

// writeSegment writes a file of size bytes whose content depends on its name.
func writeSegment(t testing.TB, dir, name string, size int) []byte {
	t.Helper()
	b := make([]byte, size)
	seed := sha256.Sum256([]byte(name))
	for i := range b {
		b[i] = seed[i%32] ^ byte(i>>8)
	}
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
	return b
}

// runPusher runs p until the test ends.
func runPusher(t testing.TB, p *uplink.Pusher) (stop func()) {
	return testutil.Go(t, "Pusher.Run", p.Run)
}

// inboxNames lists the final segment names in dir.
func inboxNames(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}
