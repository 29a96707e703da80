package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pofr/pofr/collector/agent"
	"github.com/pofr/pofr/internal/cli"
)

// TestPrintStatus: the status for people gives state and uptime, per source
// the mode, events per second and losses, the backlog and the last upload,
// each with its unit and age.
func TestPrintStatus(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	up := now.Add(-8 * time.Second)
	st := &agent.Status{
		PID: 4242, Started: now.Add(-(3*time.Hour + 2*time.Minute)), Updated: now.Add(-2 * time.Second),
		HostID: "web1", Profile: "default", Segments: 3, Bytes: 3 << 20,
		Summary: agent.Summary{
			Capture: "tracepoint", Window: 60,
			Sources: map[string]agent.SourceSummary{
				"proc": {Mode: "netlink", Seen: 120000, Lost: 7, PerSecond: 12.5, LostInWindow: 2},
				"file": {Mode: "fanotify", Seen: 50, PerSecond: 0.8},
				"exe":  {Seen: 3},
			},
			Spool:  agent.SpoolSummary{Rows: 130000, Sealed: 40},
			Uplink: &agent.UplinkSummary{Connected: true, Uploaded: 37, Bytes: 5 << 20, LastUpload: &up},
		},
	}
	var out bytes.Buffer
	printStatus(&cli.Env{Stdout: &out}, true, st, now)
	got := out.String()
	for _, want := range []string{
		"collector: running, pid 4242, up 3h 2m (since 2026-12-03 06:58:00 UTC)",
		"host: web1, profile: default, process capture: tracepoint",
		"rates over the last 1m 0s",
		"EVENTS/S",
		"proc    netlink   12.5",
		"file    fanotify  0.8",
		"exe     -         0.0       3",
		"spool: 3 segments (3.0 MiB) waiting for upload",
		"uplink: connected, 37 segments uploaded (5.0 MiB), 0 failed attempts, last upload 8s ago (2026-12-03 09:59:52 UTC)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("status lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "warning") {
		t.Errorf("a fresh status file gives a warning:\n%s", got)
	}

	// Stopped: the age of the last status; a stuck collector: a warning.
	out.Reset()
	printStatus(&cli.Env{Stdout: &out}, false, st, now.Add(2*24*time.Hour))
	if got := out.String(); !strings.Contains(got, "collector: not running (last status 2d 0h ago, pid 4242)") {
		t.Errorf("stopped collector:\n%s", got)
	}
	out.Reset()
	old := &agent.Status{PID: 1, Started: now, Updated: now, Sources: map[string]json.RawMessage{"proc": []byte(`{"Seen":1}`)}}
	printStatus(&cli.Env{Stdout: &out}, true, old, now)
	if got := out.String(); !strings.Contains(got, "predates the rates") {
		t.Errorf("status file of an older collector:\n%s", got)
	}
	out.Reset()
	printStatus(&cli.Env{Stdout: &out}, true, st, now.Add(time.Minute))
	if got := out.String(); !strings.Contains(got, "warning: status file 1m 2s old") {
		t.Errorf("stale status file:\n%s", got)
	}
}

func TestAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second: "0s", 0: "0s", 1499 * time.Millisecond: "1s", 59 * time.Second: "59s", 61 * time.Second: "1m 1s",
		3*time.Hour + 59*time.Minute + 59*time.Second: "3h 59m", 49 * time.Hour: "2d 1h",
	} {
		if got := age(d); got != want {
			t.Errorf("age(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestStatusCutFile: the status file is not fsynced, so a crash can leave it
// empty or cut; status then warns, prints what the lock and the spool say
// and exits as for a stopped collector, instead of failing.
func TestStatusCutFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "status.json"), []byte(`{"pid": 42, "started": "2026-`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runApp(t, "status", "--state-dir", dir)
	if code != exitNotRunning {
		t.Errorf("exit code %d, want %d (not running); stderr:\n%s", code, exitNotRunning, stderr)
	}
	if !strings.Contains(stderr, "status.json is unreadable") {
		t.Errorf("no warning about the cut file; stderr:\n%s", stderr)
	}
	if !strings.Contains(stdout, "collector: not running") {
		t.Errorf("stdout:\n%s", stdout)
	}
}
