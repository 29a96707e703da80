package collector

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/testutil"
)

func TestParseAccounts(t *testing.T) {
	in := "root:x:0:0:root:/root:/bin/bash\n# comment\n\n+nis\nbad:x:notanumber:0\nal\xffice:x:1000:1000::/home/a:/bin/sh\nshort\n"
	got := ParseAccounts([]byte(in))
	want := []IDName{{0, []byte("root")}, {1000, []byte("al\xffice")}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseAccounts (-want +got):\n%s", diff)
	}
}

func TestAccountSourceResendsOnChange(t *testing.T) {
	root := t.TempDir()
	etc := filepath.Join(root, "etc")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(passwd string, mtime time.Time) {
		p := filepath.Join(etc, "passwd")
		if err := os.WriteFile(p, []byte(passwd), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(etc, "group"), []byte("wheel:x:10:\n"), 0o644)
	write("root:x:0:0::/:/bin/sh\n", time.Unix(1000, 0))

	var sink event.MemSink
	s := &AccountSource{Sink: &sink, Root: root, Poll: 5 * time.Millisecond}
	stop := testutil.Go(t, "AccountSource.Run", s.Run)
	rows := func(n int) func() bool { return func() bool { return len(sink.Accounts()) >= n } }
	testutil.WaitFor(t, 5*time.Second, "2 account rows (root, wheel)", rows(2))
	write("root:x:0:0::/:/bin/sh\nbob:x:1001:1001::/:/bin/sh\n", time.Unix(2000, 0))
	testutil.WaitFor(t, 5*time.Second, "5 account rows (root, bob, wheel again)", rows(5))
	stop()
	var bob bool
	for _, a := range sink.Accounts() {
		if a.Kind == event.AcctUser && a.ID == 1001 && string(a.Name) == "bob" {
			bob = true
		}
	}
	if !bob {
		t.Errorf("no row for bob after /etc/passwd changed: %+v", sink.Accounts())
	}
}
