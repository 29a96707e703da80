package spool

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pofr/pofr/internal/event"
	"github.com/pofr/pofr/internal/testutil"
)

// TestBatchLargerThanFreeSpace: on a file system with less free space than
// one batch, the writer seals what fits, records what it had to drop as a
// gap row with its reason and count, and newer rows are sealed at once
// instead of waiting behind the batch forever.
func TestBatchLargerThanFreeSpace(t *testing.T) {
	testutil.RequireTier(t, testutil.TierPriv)
	testutil.RequireRoot(t)
	dir := filepath.Join(t.TempDir(), "spool")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=512k,mode=0700"); err != nil {
		t.Skipf("mount a small tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })

	c := newClock()
	opts := testOptions(c)
	opts.MaxSegmentBytes = 8 << 20 // one batch of about 2 MiB: four times the file system
	w := openWriter(t, dir, opts)
	const big = 512
	for i := range big {
		p := make([]byte, 4096) // random: it does not compress
		rand.Read(p)
		w.AppendFile(&event.File{TS: c.Now().UnixNano() + int64(i), LastTS: c.Now().UnixNano() + int64(i), Op: event.FileWrite, Path: p})
	}
	done := make(chan error, 1)
	go func() { done <- w.Seal() }()
	testutil.Await(t, done, 60*time.Second, "Seal of a batch larger than the free space (want what fits sealed, the rest dropped)")
	st := w.Stats()
	if st.NoSpaceLost == 0 || st.NoSpaceLost >= big || st.Lost < st.NoSpaceLost {
		t.Errorf("stats %+v: want some but not all of %d rows lost for lack of space", st, big)
	}
	// What was sealed is read and then removed, as the uplink would once
	// the server has it; that frees the space again.
	var kept, newer, dropped int64
	count := func() {
		t.Helper()
		infos, err := List(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range infos {
			seg, err := VerifyFile(in.Path, VerifyOptions{PublicKey: testPub, HostID: testHost})
			if err != nil {
				t.Fatalf("verify %s: %v", in.Name, err)
			}
			files, err := seg.Files()
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				if string(f.Path) == "/after" {
					newer++
				} else {
					kept++
				}
			}
			gs, err := seg.Gaps()
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range gs {
				if strings.HasPrefix(g.Reason, "no space left for the spool: ") && g.Source == event.SourceSpool && g.Lost.Valid {
					dropped += g.Lost.V
				}
			}
			seg.Release()
			if err := Remove(dir, in.Name); err != nil {
				t.Fatal(err)
			}
		}
	}
	count()
	// Newer rows are sealed, with the gap rows of the drop: nothing waits
	// behind the batch that did not fit.
	c.Add(time.Second)
	w.AppendFile(&event.File{TS: c.Now().UnixNano(), LastTS: c.Now().UnixNano(), Op: event.FileWrite, Path: []byte("/after")})
	if err := w.Seal(); err != nil {
		t.Fatalf("Seal of a small newer batch: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	count()
	if newer != 1 {
		t.Errorf("the newer row was sealed %d times, want 1", newer)
	}
	if dropped != int64(st.NoSpaceLost) {
		t.Errorf("gap rows name %d rows dropped for lack of space, stats %d", dropped, st.NoSpaceLost)
	}
	if kept+dropped != big {
		t.Errorf("kept %d + dropped %d of %d rows", kept, dropped, big)
	}
	t.Logf("%d rows of 4 KiB on a 512 KiB file system: %d sealed, %d dropped with a gap row", big, kept, dropped)
}
