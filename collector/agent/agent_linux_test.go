package agent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	dto "github.com/prometheus/client_model/go"

	"github.com/pofr/pofr/collector/tracepoint"
	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/testutil"
	"github.com/pofr/pofr/profiles"
	"github.com/pofr/pofr/spool"
)

func TestRunRefusesIncompleteConfig(t *testing.T) {
	if err := Run(t.Context(), Config{StateDir: t.TempDir()}); !errors.Is(err, ErrConfig) {
		t.Errorf("Run without a profile: %v, want ErrConfig", err)
	}
}

// startRun runs Run with cfg in the background until the returned stop,
// which cancels it and fails the test unless Run returns nil within 30 s.
func startRun(t *testing.T, cfg Config) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(testutil.Deadline(t, time.Minute))
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	return func() {
		t.Helper()
		cancel()
		testutil.Await(t, done, 30*time.Second, "Run after cancellation")
	}
}

// TestPrivRunStandalone runs the whole collector in standalone mode: it
// records a process spawned by the test, keeps status.json current, and at
// cancellation stops the sources and seals a segment that verifies with the
// host's key and holds the process's exec row.
func TestPrivRunStandalone(t *testing.T) {
	// The default profile captures processes from tracepoint rings;
	// NoProcTracepoint forces the cn_proc capture. Every segment says which.
	for _, tc := range []struct {
		name    string
		noTP    bool
		capture string
	}{{"tracepoint", false, "tracepoint"}, {"cn_proc", true, "cn_proc"}} {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.noTP {
				testutil.RequireRoot(t)
				fs, err := tracepoint.OpenFS()
				if err != nil {
					testutil.Skip(t, testutil.TierPriv, err.Error())
				}
				fs.Close()
			}
			runStandalone(t, tc.noTP, tc.capture)
		})
	}
}

// standaloneConfig is the Config of a standalone collector "agent-test"
// under dir: the default profile, a new signing key in configDir, and the
// state and spool directories made.
func standaloneConfig(t *testing.T, dir, configDir string) Config {
	t.Helper()
	if err := os.MkdirAll(configDir, 0o700); err != nil {
		t.Fatal(err)
	}
	key, err := spool.GenerateKey(filepath.Join(configDir, "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	prof, err := profiles.Get("default")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Profile: prof, StateDir: filepath.Join(dir, "state"), SpoolDir: filepath.Join(dir, "state", "spool"),
		ConfigDir: configDir, HostID: "agent-test", Key: key, Standalone: true, StatusInterval: time.Hour,
	}
	for _, d := range []string{cfg.StateDir, cfg.SpoolDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return cfg
}

func runStandalone(t *testing.T, noTP bool, capture string) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	cfg := standaloneConfig(t, dir, filepath.Join(dir, "config"))
	cfg.NoSock, cfg.NoSockTracepoints, cfg.NoProcTracepoint = true, true, noTP
	cfg.MetricsFile = filepath.Join(dir, "pofr.prom")
	stop := startRun(t, cfg)

	var st Status
	testutil.WaitFor(t, 20*time.Second, "status.json with the process source's mode", func() bool {
		var p struct{ Mode string }
		var ok bool
		st, ok = readStatus(cfg)
		return ok && json.Unmarshal(st.Sources[event.SourceProc], &p) == nil && p.Mode != ""
	})
	// The textfile is written with the status (just after status.json, so
	// wait for it to show what status.json showed): the capture mode and
	// the process source's counters.
	var b []byte
	var mfs map[string]*dto.MetricFamily
	testutil.WaitFor(t, 15*time.Second, "the metrics textfile with the capture mode", func() bool {
		var err error
		b, err = os.ReadFile(cfg.MetricsFile)
		if err != nil {
			return false
		}
		mfs = parseTextfile(t, b)
		v, _ := testutil.MetricSample(mfs, "pofr_collector_capture_mode", "source", "capture", "mode", capture)
		return v == 1
	})
	if _, err := testutil.MetricSample(mfs, "pofr_collector_events_total", "source", event.SourceProc); err != nil {
		t.Error(err)
	}
	if v, err := testutil.MetricSample(mfs, "pofr_collector_standalone"); v != 1 {
		t.Errorf("textfile standalone: %v (%v)", v, err)
	}
	if st.PID != os.Getpid() || st.HostID != "agent-test" || st.Profile != cfg.Profile.Name {
		t.Errorf("status: pid %d host %q profile %q, want %d agent-test %s", st.PID, st.HostID, st.Profile, os.Getpid(), cfg.Profile.Name)
	}

	marker := fmt.Sprintf("pofr-agent-test-%d", time.Now().UnixNano())
	// The shell runs until the collector has stopped, so its argv is in the
	// row whatever the capture and the load (an exec read after the
	// process ended has no argv).
	startHeld(t, "/bin/sh", "-c", "read x; exit 0", marker)
	time.Sleep(500 * time.Millisecond) // the reader and the table batch for a few ms
	stop()

	found := false
	n := eachSegment(t, cfg, func(name string, seg *spool.Segment) {
		found = found || hasArgv(t, seg, marker)
		if got := seg.Manifest.Modes["capture"]; got != capture {
			t.Errorf("segment %s: modes %v, want capture=%s", name, seg.Manifest.Modes, capture)
		}
	})
	if !found {
		t.Errorf("no proc row with argv %q in %d segments", marker, n)
	}
}

// eachSegment verifies each segment the collector of cfg left in its spool
// against cfg's key and calls f with its name and contents, oldest first;
// it fails the test if there is none. It returns how many there were.
func eachSegment(t *testing.T, cfg Config, f func(name string, seg *spool.Segment)) int {
	t.Helper()
	infos, err := spool.List(cfg.SpoolDir)
	if err != nil || len(infos) == 0 {
		t.Fatalf("spool after stop: %d segments, %v", len(infos), err)
	}
	for _, in := range infos {
		seg, err := spool.VerifyFile(in.Path, spool.VerifyOptions{PublicKey: cfg.Key.Public().(ed25519.PublicKey)})
		if err != nil {
			t.Fatalf("segment %s: %v", in.Name, err)
		}
		f(in.Name, seg)
		seg.Release()
	}
	return len(infos)
}

// hasArgv reports whether seg has a proc row whose argv contains marker.
func hasArgv(t *testing.T, seg *spool.Segment, marker string) bool {
	t.Helper()
	rec, err := seg.Record(event.TableProc)
	if err != nil {
		t.Fatal(err)
	}
	idx := rec.Schema().FieldIndices("argv")
	if len(idx) != 1 {
		t.Fatalf("proc schema has %d argv columns", len(idx))
	}
	col, ok := rec.Column(idx[0]).(*array.Binary)
	if !ok {
		t.Fatalf("argv column is %T", rec.Column(idx[0]))
	}
	for i := 0; i < col.Len(); i++ {
		if !col.IsNull(i) && bytes.Contains(col.Value(i), []byte(marker)) {
			return true
		}
	}
	return false
}
