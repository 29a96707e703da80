package testutil

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// EnvRequire names the environment variable that turns skips into failures:
// "all", or a comma-separated list of tiers.
const EnvRequire = "POFR_TEST_REQUIRE"

// The tiers whose tests can skip. Unit and fuzz tests never skip.
const (
	// TierPriv tests need root or capabilities to use kernel interfaces.
	TierPriv = "priv"
	// TierService tests need a private MariaDB or OpenSSH sshd.
	TierService = "service"
	// TierE2E tests run the built commands against the whole pipeline.
	TierE2E = "e2e"
)

var tiers = []string{TierPriv, TierService, TierE2E}

// required reports whether the environment makes a skip of tier a failure.
// It returns an error when tier or an entry of the variable names no tier.
func required(tier string) (bool, error) {
	if !slices.Contains(tiers, tier) {
		return false, fmt.Errorf("testutil: unknown tier %q (want one of %s)", tier, strings.Join(tiers, ", "))
	}
	return parseRequire(os.Getenv(EnvRequire), tier)
}

// parseRequire interprets the value of POFR_TEST_REQUIRE for tier.
func parseRequire(env, tier string) (bool, error) {
	found := false
	for f := range strings.SplitSeq(env, ",") {
		f = strings.TrimSpace(f)
		switch {
		case f == "":
		case f == "all" || f == tier:
			found = true
		case !slices.Contains(tiers, f):
			return false, fmt.Errorf("testutil: %s=%q: unknown tier %q (want all or a list of %s)",
				EnvRequire, env, f, strings.Join(tiers, ", "))
		}
	}
	return found, nil
}

// Skip skips the test because the machine cannot run a test of tier, and says
// why. When POFR_TEST_REQUIRE requires tier, it fails the test with the same
// reason instead. Every gate of this package ends here.
func Skip(t testing.TB, tier, reason string) {
	t.Helper()
	req, err := required(tier)
	if err != nil {
		t.Fatal(err)
	}
	if req {
		t.Fatalf("%s test cannot run, and %s=%s requires it: %s", tier, EnvRequire, os.Getenv(EnvRequire), reason)
	}
	t.Skipf("%s test skipped: %s", tier, reason)
}

// RequireTier marks the test as one of tier: go test -short skips it.
func RequireTier(t testing.TB, tier string) {
	t.Helper()
	if _, err := required(tier); err != nil {
		t.Fatal(err)
	}
	if testing.Short() {
		Skip(t, tier, "-short runs unit tests only")
	}
}

// RequireRoot skips a priv test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	RequireTier(t, TierPriv)
	if euid := os.Geteuid(); euid != 0 {
		Skip(t, TierPriv, fmt.Sprintf("needs root, running as euid %d; run make test as root", euid))
	}
}

// RequireCap skips a priv test unless c is in the effective capability set of
// the test process (CapEff in /proc/self/status).
func RequireCap(t testing.TB, c Cap) {
	t.Helper()
	RequireTier(t, TierPriv)
	ok, err := HasCap(c)
	if err != nil {
		Skip(t, TierPriv, fmt.Sprintf("needs %s: %v", c, err))
	}
	if !ok {
		Skip(t, TierPriv, fmt.Sprintf("needs %s in the effective capability set; run make test as root outside a restricted container", c))
	}
}

// Deadline returns a context that ends after d or when the test ends,
// whichever comes first.
func Deadline(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}
