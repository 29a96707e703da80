package testutil_test

import (
	"os/exec"
	"testing"
	"time"

	"github.com/pofr/pofr/internal/testutil"
)

func TestBin(t *testing.T) {
	testutil.RequireTier(t, testutil.TierE2E)
	p := testutil.Bin(t, "internal/testutil/testdata/echoargs")
	if p2 := testutil.Bin(t, "github.com/pofr/pofr/internal/testutil/testdata/echoargs"); p2 != p {
		t.Errorf("second Bin of the same package = %s, want the first build %s", p2, p)
	}
	out, err := exec.CommandContext(testutil.Deadline(t, 10*time.Second), p, "a b", "c").Output()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), "a b\nc\n"; got != want {
		t.Errorf("built command printed %q, want %q", got, want)
	}
}
