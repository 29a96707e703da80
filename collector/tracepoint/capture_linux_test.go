package tracepoint

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/pofr/pofr/internal/testutil"
)

var update = flag.Bool("update", false, "capture formats and samples from this kernel into testdata/")

// captureEvents are the tracepoints whose formats are kept in testdata.
var captureEvents = [][2]string{
	{"sched", "sched_process_exec"}, {"sched", "sched_process_exit"}, {"sched", "sched_process_fork"},
	{"task", "task_newtask"}, {"sock", "inet_sock_set_state"}, {"syscalls", "sys_enter_exit_group"},
}

// TestPrivCaptureFormats reads the formats of this kernel through OpenFS;
// with -update it writes them to testdata/format/.
func TestPrivCaptureFormats(t *testing.T) {
	testutil.RequireRoot(t)
	fs, err := OpenFS()
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	t.Logf("tracefs: %s", fs.Where)
	for _, e := range captureEvents {
		b, err := fs.ReadFormat(e[0], e[1])
		if err != nil {
			t.Fatal(err)
		}
		f, err := ParseFormat(b)
		if err != nil {
			t.Fatalf("%s:%s: %v", e[0], e[1], err)
		}
		if f.Name != e[1] || f.ID == 0 {
			t.Errorf("%s:%s parsed as %s id %d", e[0], e[1], f.Name, f.ID)
		}
		if *update {
			if err := os.WriteFile(filepath.Join("testdata", "format", e[0]+"_"+e[1]), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
