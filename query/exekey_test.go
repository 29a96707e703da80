package query

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/servertest"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/loader"
	"github.com/pofr/pofr/spool"
	"github.com/pofr/pofr/wire"
)

// TestExecJoinsItsFile: exec rows join the hash of the file they name
// (exe_key), in query ran --sha256, the processes view and export, where
// the join by path and time could not tell them apart: /usr/bin/tool run,
// replaced by another file and run again half a second later (the same
// path, both within the first one's time window); a dropper whose exe
// /proc showed as deleted. An exec row without a key (a collector before
// it) still joins by path and time.
func TestExecJoinsItsFile(t *testing.T) {
	db, _ := servertest.SchemaDB(t, OpenDB)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	state := statedir.Dir(t.TempDir())
	sum := func(s string) []byte { b := sha256.Sum256([]byte(s)); return b[:] }
	runs := []struct {
		pid   int32
		exe   string // as the exec row has it
		file  string // as fanotify resolved it (the exe row)
		ino   uint64
		keyed bool
		sha   string
	}{
		{10, "/usr/bin/tool", "/usr/bin/tool", 21, true, "tool v1"},
		{11, "/usr/bin/tool", "/usr/bin/tool", 22, true, "tool v2"},
		{12, "/tmp/drop (deleted)", "/tmp/drop", 23, true, "dropper"},
		{13, "/usr/bin/old", "/usr/bin/old", 24, false, "old"},
	}
	fill := func(s event.Sink) {
		for i, r := range runs {
			ts := at(time.Second + time.Duration(i)*500*time.Millisecond)
			p := event.Proc{TS: ts, Event: event.ProcExec, PID: r.pid, TID: r.pid, PPID: 1, ProcStart: int64(r.pid) * 1000,
				UID: 0, EUID: 0, GID: 0, EGID: 0, AUID: event.NoID, SessionID: event.NoID, Exe: []byte(r.exe),
				Argv: []byte(fmt.Sprintf("run%d\x00", r.pid))}
			if r.keyed {
				p.ExeKey = event.Some(event.ExeKey(2049, r.ino, 4096, 1, 2))
			}
			s.AppendProc(&p)
			s.(event.ExeSink).AppendExecutable(&event.Executable{TS: ts + 2e6, LastTS: ts + 2e6, Count: 1, PID: r.pid,
				Dev: 2049, Inode: r.ino, Size: 4096, MTimeNS: 1, CTimeNS: 2, SHA256: sum(r.sha), How: event.ExeByHandle,
				Path: []byte(r.file)})
		}
	}
	servertest.SpoolHost(t, state, "host-x", wire.Facts{Hostname: "x", MachineID: "m-x"}, t0.Add(-time.Hour),
		spool.Options{MaxSegmentAge: time.Hour, Quota: 1 << 30, Hostname: "x", Version: "test"}, fill)
	if s, err := loader.Once(ctx, loader.Options{DB: db, StateDir: state, Workers: 1}); err != nil || s.Loaded != 1 {
		t.Fatalf("load: %v, %v", s, err)
	}
	q := &Querier{DB: db}
	for _, r := range runs {
		tb, err := q.Ran(ctx, RanArgs{SHA256: hex.EncodeToString(sum(r.sha))})
		if err != nil {
			t.Fatal(err)
		}
		var pids []string
		for _, row := range jsonLines(t, render(t, tb, FormatJSON, false)) {
			pids = append(pids, fmt.Sprint(row["pid"]))
		}
		if diff := cmp.Diff([]string{fmt.Sprint(r.pid)}, pids); diff != "" {
			t.Errorf("ran --sha256 of %q (-want +got pids):\n%s", r.sha, diff)
		}
	}

	got := servertest.Lines(t, db, "SELECT pid, COALESCE(LOWER(HEX(exe_sha256)), '<nil>') FROM processes WHERE host_id = 'host-x' ORDER BY pid")
	var want []string
	for _, r := range runs {
		h := hex.EncodeToString(sum(r.sha))
		if !r.keyed {
			h = "<nil>"
		}
		want = append(want, fmt.Sprintf("%d %s", r.pid, h))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("processes view exe_sha256 (-want +got):\n%s", diff)
	}

	var b bytes.Buffer
	if _, err := q.Export(ctx, &b, ExportArgs{Table: "proc", Host: "host-x"}); err != nil {
		t.Fatal(err)
	}
	var exported []string
	for _, d := range jsonLines(t, b.String()) {
		exported = append(exported, fmt.Sprintf("%v %v", d["pid"], d["exe_sha256"]))
	}
	sort.Strings(exported)
	if diff := cmp.Diff(want, exported); diff != "" {
		t.Errorf("export proc exe_sha256 (-want +got):\n%s", diff)
	}
}
