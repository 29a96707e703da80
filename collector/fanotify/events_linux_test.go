package fanotify

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pofr/pofr/collector"
	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/profiles"
)

// TestEventRules feeds decoded-buffer bytes to a source without a fanotify
// group (no root needed): exec-opens reach the ExecObserver and become
// aggregated rows with the process's key, the collector's own events are
// dropped, and a queue overflow writes a gap row from the previous read and
// forgets the cached directories, so the next event's directory is
// unresolved.
func TestEventRules(t *testing.T) {
	sink := &event.MemSink{}
	execs := &execRecorder{}
	now := time.Unix(1_000, 0)
	src, err := New(Options{Sink: sink, Procs: collector.ProcMap{1234: {Start: 5000, EUID: 1000}}, Exec: execs,
		Profile: profiles.File{Enabled: true, Ops: []string{"exec", "write"}}, SelfPID: 77,
		ForceFallback: true, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	fs := [2]int32{7, -9}
	dirH := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	src.cache.put(&fanFID{FSID: fs, Type: 1, Handle: dirH}, "/usr/bin")
	exec := fanMeta(fanOpenExec, 1234, fanRecord(fanInfoDFIDName, fs, 1, dirH, []byte("true")))
	self := fanMeta(fanCloseWrite, 77, fanRecord(fanInfoDFIDName, fs, 1, dirH, []byte("spool")))

	src.process(append(append(append([]byte(nil), exec...), exec...), self...))
	first := now.UnixNano()
	now = now.Add(time.Second)
	src.process(append(fanMeta(fanQOverflow, 0), exec...))
	src.flush()

	if got := execs.get(1234); !cmp.Equal(got, []string{"/usr/bin/true", "/usr/bin/true"}) {
		t.Errorf("exec-opens observed %q, want /usr/bin/true twice (the third was unresolved)", got)
	}
	type row struct {
		Op, Path string
		Count    uint32
		Start    event.Opt[int64]
		UID      uint32
		Flags    uint32
	}
	var rows []row
	for _, r := range sink.Files() {
		rows = append(rows, row{r.Op, string(r.Path), r.Count, r.ProcStart, r.UID, r.Flags})
	}
	want := []row{
		{event.FileExec, "/usr/bin/true", 2, event.Some[int64](5000), 1000, 0},
		{event.FileExec, "true", 1, event.Some[int64](5000), 1000, event.FileFlagUnresolved},
	}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	gaps := sink.Gaps()
	if len(gaps) != 1 || gaps[0].FromTS != first || gaps[0].ToTS != now.UnixNano() || gaps[0].Source != event.SourceFile {
		t.Errorf("gap rows %+v, want one file gap from %d to %d", gaps, first, now.UnixNano())
	}
	st := src.Stats()
	if st.Overflows != 1 || st.Self != 1 || st.ExecObserved != 2 || st.Unresolved != 1 {
		t.Errorf("stats %+v: want 1 overflow, 1 self, 2 exec-opens observed, 1 unresolved", st)
	}
}
