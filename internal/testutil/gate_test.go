package testutil

import (
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseRequire(t *testing.T) {
	tests := []struct {
		env, tier string
		want      bool
		wantErr   bool
	}{
		{"", TierPriv, false, false},
		{"all", TierPriv, true, false},
		{"all", TierE2E, true, false},
		{"service", TierService, true, false},
		{"service", TierPriv, false, false},
		{"priv, service", TierService, true, false},
		{"priv,,e2e", TierE2E, true, false},
		{"serivce", TierService, false, true},
		{"priv,bogus", TierPriv, false, true},
	}
	for _, tt := range tests {
		got, err := parseRequire(tt.env, tt.tier)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("parseRequire(%q, %q) = %v, %v; want %v, error %v", tt.env, tt.tier, got, err, tt.want, tt.wantErr)
		}
	}
}

// recorder is a testing.TB that records how a gate ended the test.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (r *recorder) Fatal(args ...any) {
	r.failed = fmt.Sprint(args...)
	runtime.Goexit()
}

// runGate runs gate against a recorder, as a test goroutine would.
func runGate(t *testing.T, gate func(testing.TB)) *recorder {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		gate(r)
	}()
	<-done
	return r
}

func TestSkip(t *testing.T) {
	tests := []struct {
		env, tier            string
		wantSkip, wantFailed bool
	}{
		{"", TierService, true, false},
		{"priv", TierService, true, false},
		{"service", TierService, false, true},
		{"all", TierPriv, false, true},
		{"typo", TierPriv, false, true},
		{"", "bogus", false, true},
	}
	for _, tt := range tests {
		t.Setenv(EnvRequire, tt.env)
		r := runGate(t, func(tb testing.TB) { Skip(tb, tt.tier, "the reason") })
		if (r.skipped != "") != tt.wantSkip || (r.failed != "") != tt.wantFailed {
			t.Errorf("%s=%q: Skip(%q) skipped %q, failed %q; want skip %v, fail %v",
				EnvRequire, tt.env, tt.tier, r.skipped, r.failed, tt.wantSkip, tt.wantFailed)
		}
		if msg := r.skipped + r.failed; tt.tier != "bogus" && tt.env != "typo" && !strings.Contains(msg, "the reason") {
			t.Errorf("%s=%q: message %q does not give the reason", EnvRequire, tt.env, msg)
		}
	}
}

func TestRequireCapCurrentProcess(t *testing.T) {
	// Whatever the process holds, a gate on a capability it has passes and
	// one on a capability it lacks skips; capability 63 exists nowhere.
	t.Setenv(EnvRequire, "")
	if r := runGate(t, func(tb testing.TB) { RequireCap(tb, Cap(63)) }); r.skipped == "" {
		t.Errorf("RequireCap(63) did not skip (failed %q)", r.failed)
	}
	t.Setenv(EnvRequire, "priv")
	if r := runGate(t, func(tb testing.TB) { RequireCap(tb, Cap(63)) }); r.failed == "" {
		t.Errorf("RequireCap(63) with %s=priv did not fail (skipped %q)", EnvRequire, r.skipped)
	}
}

func TestParseCapEff(t *testing.T) {
	status := "Name:\tcat\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t0000000000001004\nCapBnd:\t000001ffffffffff\n"
	got, err := parseCapEff(status)
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(1<<CapNetAdmin | 1<<CapDACReadSearch); got != want {
		t.Errorf("parseCapEff = %#x, want %#x", got, want)
	}
	if _, err := parseCapEff("Name:\tcat\n"); err == nil {
		t.Error("parseCapEff without a CapEff line: no error")
	}
	if _, err := parseCapEff("CapEff:\tzz\n"); err == nil {
		t.Error("parseCapEff with a malformed mask: no error")
	}
}

func TestCapString(t *testing.T) {
	if got, want := CapNetAdmin.String(), "CAP_NET_ADMIN"; got != want {
		t.Errorf("CapNetAdmin.String() = %q, want %q", got, want)
	}
	if got, want := Cap(60).String(), "capability 60"; got != want {
		t.Errorf("Cap(60).String() = %q, want %q", got, want)
	}
}

func TestDBName(t *testing.T) {
	if got, want := dbName(7, "TestLoad/quote's-case"), "t7_TestLoad_quote_s_case"; got != want {
		t.Errorf("dbName = %q, want %q", got, want)
	}
	if got := dbName(123, strings.Repeat("x", 200)); len(got) != 64 {
		t.Errorf("dbName of a long test name has %d bytes, want 64", len(got))
	}
}

func TestRelPackage(t *testing.T) {
	const mod = "github.com/pofr/pofr"
	for _, tt := range []struct{ in, want string }{
		{"cmd/pofr-server", "./cmd/pofr-server"},
		{"./cmd/pofr-server", "./cmd/pofr-server"},
		{"github.com/pofr/pofr/cmd/pofr-collector", "./cmd/pofr-collector"},
		{"../elsewhere", ""},
		{"./cmd/...", ""},
		{".", ""},
	} {
		got, err := relPackage(mod, tt.in)
		if got != tt.want || (err != nil) != (tt.want == "") {
			t.Errorf("relPackage(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// TestBin builds a command once per test process and runs it.
func TestBin(t *testing.T) {
	RequireTier(t, TierE2E)
	p := Bin(t, "internal/testutil/testdata/echoargs")
	if p2 := Bin(t, "github.com/pofr/pofr/internal/testutil/testdata/echoargs"); p2 != p {
		t.Errorf("second Bin of the same package = %s, want the first build %s", p2, p)
	}
	out, err := exec.CommandContext(Deadline(t, 10*time.Second), p, "a b", "c").Output()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), "a b\nc\n"; got != want {
		t.Errorf("built command printed %q, want %q", got, want)
	}
}

func TestFreePort(t *testing.T) {
	p := FreePort(t)
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		t.Fatalf("listen on the free port %d: %v", p, err)
	}
	l.Close()
}
