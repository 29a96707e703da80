package sockowner

import (
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pofr/pofr/collector/tracepoint"
	"github.com/pofr/pofr/internal/testutil"
)

// update re-captures testdata/ from the running kernel (root, Linux):
//
//	go test ./collector/sockowner/ -run TestPrivCapture -update
var update = flag.Bool("update", false, "capture testdata/ formats and samples from this kernel")

// Events whose formats are kept in testdata/format/ (sys_name).
var formatFiles = map[string]string{
	eventState:  "sock_inet_sock_set_state",
	eventRoute4: "fib_fib_table_lookup",
	eventRoute6: "fib6_fib6_table_lookup",
}

func loadFormat(t testing.TB, event string) *tracepoint.Format {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "format", formatFiles[event]))
	if err != nil {
		t.Fatal(err)
	}
	f, err := tracepoint.ParseFormat(b)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// golden is the decoded form of a captured sample, kept beside it as JSON.
type golden struct {
	Event              string
	OldState, NewState int32  `json:",omitempty"`
	Family, Protocol   uint16 `json:",omitempty"`
	Proto              uint8  `json:",omitempty"`
	SPort, DPort       uint16
	SAddr, DAddr       string
	SkaddrSet          bool `json:",omitempty"`
}

func addr(a [16]byte) string { return netip.AddrFrom16(a).String() }

// decodeSample decodes one captured sample of event with the formats of
// testdata into its golden form.
func decodeSample(t testing.TB, event string, raw []byte) (golden, error) {
	return decodeSampleWith(t, event, raw, loadFormat(t, event))
}

// decodeSampleWith decodes one captured sample of event with format f into
// its golden form.
func decodeSampleWith(t testing.TB, event string, raw []byte, f *tracepoint.Format) (golden, error) {
	g := golden{Event: event}
	if event == eventState {
		l, err := NewStateLayout(f)
		if err != nil {
			t.Fatal(err)
		}
		var c StateChange
		if err := l.Decode(raw, &c); err != nil {
			return g, err
		}
		g.OldState, g.NewState, g.Family, g.Protocol = c.OldState, c.NewState, c.Family, c.Protocol
		g.SPort, g.DPort, g.SAddr, g.DAddr, g.SkaddrSet = c.SPort, c.DPort, addr(c.SAddr), addr(c.DAddr), c.Skaddr != 0
		return g, nil
	}
	l, err := NewRouteLayout(f, event == eventRoute6)
	if err != nil {
		t.Fatal(err)
	}
	var r Route
	if err := l.Decode(raw, &r); err != nil {
		return g, err
	}
	g.Proto, g.SPort, g.DPort, g.SAddr, g.DAddr = r.Proto, r.SPort, r.DPort, addr(r.SAddr), addr(r.DAddr)
	return g, nil
}

// TestDecodeSamples decodes the samples captured from the kernel and
// compares them with what the capture saw (the JSON beside each).
func TestDecodeSamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "sample", "*.bin"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples in testdata/sample (%v)", err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		jb, err := os.ReadFile(strings.TrimSuffix(f, ".bin") + ".json")
		if err != nil {
			t.Fatal(err)
		}
		var want golden
		if err := json.Unmarshal(jb, &want); err != nil {
			t.Fatal(err)
		}
		got, err := decodeSample(t, want.Event, raw)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", f, diff)
		}
		// Every truncation is refused, never read past.
		for n := range len(raw) {
			if _, err := decodeSample(t, want.Event, raw[:n]); err == nil && n < minLen(t, want.Event) {
				t.Errorf("%s: %d of %d bytes decoded", f, n, len(raw))
			}
		}
	}
}

func minLen(t testing.TB, event string) int {
	if event == eventState {
		l, _ := NewStateLayout(loadFormat(t, event))
		return l.min
	}
	l, _ := NewRouteLayout(loadFormat(t, event), event == eventRoute6)
	return l.min
}

// TestLayoutRefusesOtherFormats: a format whose fields are missing or have
// unexpected sizes gives an error at start, not garbage later.
func TestLayoutRefusesOtherFormats(t *testing.T) {
	state := loadFormat(t, eventState)
	route := loadFormat(t, eventRoute4)
	if _, err := NewStateLayout(route); err == nil {
		t.Error("inet_sock_set_state layout accepted the fib format")
	}
	if _, err := NewRouteLayout(state, false); err == nil {
		t.Error("fib layout accepted the inet_sock_set_state format")
	}
	if _, err := NewRouteLayout(route, true); err == nil {
		t.Error("fib6 layout accepted the 4-byte addresses of fib")
	}
	bad := *state
	bad.Fields = append([]tracepoint.Field(nil), state.Fields...)
	for i := range bad.Fields {
		if bad.Fields[i].Name == "sport" {
			bad.Fields[i].Size = 4
		}
	}
	if _, err := NewStateLayout(&bad); err == nil {
		t.Error("accepted a 4-byte sport")
	}
}

// FuzzDecode feeds arbitrary bytes to the three decoders: they must never
// panic, and must refuse exactly the samples shorter than their layout.
func FuzzDecode(f *testing.F) {
	testutil.AddSeeds(f, filepath.Join("testdata", "sample", "*.bin"))
	f.Add([]byte{})
	st, err := NewStateLayout(loadFormat(f, eventState))
	if err != nil {
		f.Fatal(err)
	}
	r4, err := NewRouteLayout(loadFormat(f, eventRoute4), false)
	if err != nil {
		f.Fatal(err)
	}
	r6, err := NewRouteLayout(loadFormat(f, eventRoute6), true)
	if err != nil {
		f.Fatal(err)
	}
	tr := NewTracker(Limits{MaxPending: 16, MaxOwners: 16})
	f.Fuzz(func(t *testing.T, raw []byte) {
		var c StateChange
		if err := st.Decode(raw, &c); (err != nil) != (len(raw) < st.min) {
			t.Fatalf("state: %d bytes, err %v", len(raw), err)
		} else if err == nil {
			tr.StateChange(1, 1, 1, 1, &c)
		}
		var r Route
		for _, l := range []*RouteLayout{r4, r6} {
			if err := l.Decode(raw, &r); (err != nil) != (len(raw) < l.min) {
				t.Fatalf("route: %d bytes, err %v", len(raw), err)
			} else if err == nil {
				tr.Route(1, 1, 1, &r)
			}
		}
		if s := tr.Stats(); s.Pending > 32 || s.Owners > 16 {
			t.Fatalf("tracker grew past its limits: %+v", s)
		}
	})
}
