package ui

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pofr/pofr/query"
)

// get fetches url and returns the status and body.
func get(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// hostPath is the host page of host with the moment t0+atD, a filter and,
// unless both are zero, the window t0+from .. t0+to.
func hostPath(host string, atD time.Duration, filter string, from, to time.Duration) string {
	v := url.Values{}
	v.Set("at", inputTime(t0.Add(atD)))
	if filter != "" {
		v.Set("q", filter)
	}
	if from != 0 || to != 0 {
		v.Set("from", inputTime(t0.Add(from)))
		v.Set("to", inputTime(t0.Add(to)))
	}
	return hostURL(host, v)
}

// TestPagesEscape opens every page over HTTP and checks that no recorded
// byte reaches the HTML unescaped.
func TestPagesEscape(t *testing.T) {
	f := newFixture(t)
	base := startUI(t, f, Config{})
	c := &http.Client{Timeout: 30 * time.Second}
	pages := []string{
		"/",
		"/host/host-a",
		hostPath("host-a", 6*time.Second, "", -10*time.Second, 40*time.Second),
		hostPath("host-a", 6*time.Second, "script", 0, 0),
		"/host/host-a/proc/300",
		"/search?q=ran&since=1d&go=1",
		"/search?q=touched&path=/tmp/&since=1d&go=1",
		"/search?q=conns&since=1d&go=1",
		"/search?q=peers&since=1d&go=1",
	}
	for _, p := range pages {
		resp, body := get(t, c, base+p)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s\n%s", p, resp.Status, body)
			continue
		}
		if got := resp.Header.Get("Content-Security-Policy"); got != CSP {
			t.Errorf("GET %s: CSP %q, want %q", p, got, CSP)
		}
		for _, bad := range []string{"<script>alert", "<img src=x", "<svg onload", "\u202e", "\xff", "<script>document"} {
			if strings.Contains(body, bad) {
				t.Errorf("GET %s: body holds %q unescaped", p, bad)
			}
		}
		if strings.Contains(body, "<script>") {
			t.Errorf("GET %s: an inline <script> element", p)
		}
		if !strings.Contains(body, "SQL this page ran") {
			t.Errorf("GET %s: no SQL section", p)
		}
	}
	_, body := get(t, c, base+"/host/host-a/proc/300")
	for _, want := range []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;img src=x onerror=alert(2)&gt;", `line1\nline2`, `\u202eevil.txt`, `\xff\xfe bytes`} {
		if !strings.Contains(body, want) {
			t.Errorf("process page lacks %q", want)
		}
	}
	_, body = get(t, c, base+"/host/host-a/proc/200")
	if !strings.Contains(body, `id="sockets"`) || !strings.Contains(body, "10.0.0.2") || !strings.Contains(body, "/usr/bin/curl") {
		t.Errorf("process 200 (curl) lacks its socket to 10.0.0.2 from conns.sql")
	}
	// The socket row of the timeline carries the (hostile) name curl
	// resolved its address from, escaped; alice's login is a row too (the
	// timeline is query timeline's).
	_, body = get(t, c, base+hostPath("host-a", 2*time.Second, "", -2*time.Second, 3*time.Second))
	for _, want := range []string{"10.0.0.2:8080 ESTABLISHED name &lt;script&gt;alert(3)&lt;/script&gt;.example.", "pts/0 from 192.0.2.7"} {
		if !strings.Contains(body, want) {
			t.Errorf("host page timeline lacks %q", want)
		}
	}
	resp, _ := get(t, c, base+"/host/nope")
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown host: %s, want 404", resp.Status)
	}
	r2, err := c.Post(base+"/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %s, want 405", r2.Status)
	}
}

// TestTreeBudget: past the tree budget the host page still answers, with
// the timeline and a link that computes the tree in full.
func TestTreeBudget(t *testing.T) {
	f := newFixture(t)
	db, err := OpenReader(f.readerDSN, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// A budget no statement meets: MariaDB interrupts it at once.
	quick, err := OpenReader(f.readerDSN, time.Microsecond)
	if err != nil {
		t.Fatal(err)
	}
	defer quick.Close()
	lim := DefaultLimits
	lim.SmallTree = 0 // every tree is a big one
	s, err := New(Options{Querier: &query.Querier{DB: db}, Quick: &query.Querier{DB: quick}, TreeBudget: time.Microsecond, Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	c := srv.Client()
	// MariaDB's statement timer runs on a thread of its own: on a loaded
	// machine the fixture's small tree can end before the timer fires.
	// One page of a few over budget is what is checked.
	var resp *http.Response
	var body string
	for range 5 {
		resp, body = get(t, c, srv.URL+hostPath("host-a", 6*time.Second, "", 0, 0))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("host page over budget: %s\n%s", resp.Status, body)
		}
		if strings.Contains(body, `id="tree-deferred"`) {
			break
		}
	}
	if !strings.Contains(body, `id="tree-deferred"`) || !strings.Contains(body, "tree=full") || strings.Contains(body, `data-s="300 `) {
		t.Fatalf("host page over budget does not offer the tree:\n%s", body)
	}
	if !strings.Contains(body, `class="gapband"`) {
		t.Error("host page over budget lost its timeline")
	}
	resp, body = get(t, c, srv.URL+hostPath("host-a", 6*time.Second, "", 0, 0)+"&tree=full")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `data-s="300 `) || strings.Contains(body, `id="tree-deferred"`) {
		t.Fatalf("tree=full: %s, tree not shown:\n%s", resp.Status, body)
	}
}
