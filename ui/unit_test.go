package ui

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/pofr/pofr/query"
)

func TestAuth(t *testing.T) {
	h, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	a, err := ParseAuth([]byte("# analysts\n\nana:" + string(h) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		user, pass string
		ok         bool
	}{{"ana", "s3cret", true}, {"ana", "s3cret", true}, {"ana", "wrong", false}, {"bob", "s3cret", false}, {"", "", false}} {
		if got := a.Check(c.user, c.pass); got != c.ok {
			t.Errorf("Check(%q, %q) = %v, want %v", c.user, c.pass, got, c.ok)
		}
	}
	for _, bad := range []string{"", "# only a comment\n", "ana\n", "ana:plaintext\n", "ana:" + string(h) + "\nana:" + string(h) + "\n"} {
		if _, err := ParseAuth([]byte(bad)); err == nil {
			t.Errorf("ParseAuth(%q) accepted", bad)
		}
	}
}

func TestLocalHost(t *testing.T) {
	for _, c := range []struct {
		host string
		ok   bool
	}{{"127.0.0.1:8080", true}, {"localhost:8080", true}, {"LOCALHOST", true}, {"[::1]:8080", true}, {"10.1.2.3", true},
		{"evil.example:8080", false}, {"localhost.evil.example", false}, {"", false}} {
		if got := localHost(c.host); got != c.ok {
			t.Errorf("localHost(%q) = %v, want %v", c.host, got, c.ok)
		}
	}
}

// TestGuard checks the headers, methods, the Host check and authentication
// without a database (the wrapped handler stands for every page).
func TestGuard(t *testing.T) {
	h, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	auth, err := ParseAuth([]byte("ana:" + string(h)))
	if err != nil {
		t.Fatal(err)
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	open := (&Server{opt: Options{}}).guard(ok)
	locked := (&Server{opt: Options{Auth: auth}}).guard(ok)
	for _, c := range []struct {
		name   string
		h      http.Handler
		method string
		host   string
		user   string
		want   int
	}{
		{"get", open, "GET", "127.0.0.1:8080", "", http.StatusTeapot},
		{"head", open, "HEAD", "localhost", "", http.StatusTeapot},
		{"post", open, "POST", "127.0.0.1", "", http.StatusMethodNotAllowed},
		{"delete", open, "DELETE", "127.0.0.1", "", http.StatusMethodNotAllowed},
		{"rebinding", open, "GET", "attacker.example", "", http.StatusMisdirectedRequest},
		{"no password", locked, "GET", "ui.example", "", http.StatusUnauthorized},
		{"bad password", locked, "GET", "ui.example", "ana:nope", http.StatusUnauthorized},
		{"password", locked, "GET", "ui.example", "ana:pw", http.StatusTeapot},
		{"post with password", locked, "POST", "ui.example", "ana:pw", http.StatusMethodNotAllowed},
	} {
		r := httptest.NewRequest(c.method, "http://x/", nil)
		r.Host = c.host
		if u, p, ok := strings.Cut(c.user, ":"); ok {
			r.SetBasicAuth(u, p)
		}
		w := httptest.NewRecorder()
		c.h.ServeHTTP(w, r)
		if w.Code != c.want {
			t.Errorf("%s: got %d, want %d", c.name, w.Code, c.want)
		}
		if got := w.Header().Get("Content-Security-Policy"); got != CSP {
			t.Errorf("%s: CSP %q", c.name, got)
		}
		if strings.Contains(CSP, "unsafe") {
			t.Errorf("CSP allows unsafe sources: %s", CSP)
		}
	}
}

// TestTreeFilter builds a tree from rows in query.Tree's order and filters it.
func TestTreeFilter(t *testing.T) {
	tb := &query.Table{Columns: []query.Column{{Name: "depth", Kind: query.Int}, {Name: "pid", Kind: query.Int},
		{Name: "proc_start", Kind: query.Int}, {Name: "user"}, {Name: "exe"}, {Name: "argv", Kind: query.Argv}}}
	add := func(depth, pid int64, exe, argv string) {
		tb.Rows = append(tb.Rows, []any{depth, pid, pid * 10, []byte("root"), []byte(exe), []byte(argv)})
	}
	add(0, 1, "/sbin/init", "init\x00")
	add(1, 10, "/bin/bash", "bash\x00")
	add(2, 11, "/usr/bin/nmap", "nmap\x00-P0\x00")
	add(2, 12, "/bin/ls", "ls\x00")
	add(1, 20, "/usr/sbin/sshd", "sshd\x00")
	tr := buildTree("h", tb)
	if tr.Count != 5 || len(tr.Roots) != 1 || len(tr.Roots[0].Children) != 2 || len(tr.Roots[0].Children[0].Children) != 2 {
		t.Fatalf("tree shape wrong: %+v", tr)
	}
	tr.filter("NMAP")
	var got []int64
	var walk func(ns []*node)
	walk = func(ns []*node) {
		for _, n := range ns {
			got = append(got, n.PID)
			walk(n.Children)
		}
	}
	walk(tr.Roots)
	if len(got) != 3 || got[0] != 1 || got[1] != 10 || got[2] != 11 || tr.Shown != 3 {
		t.Errorf("filter nmap kept %v (shown %d), want [1 10 11]", got, tr.Shown)
	}
	if !tr.Roots[0].Children[0].Children[0].Match || tr.Roots[0].Match {
		t.Error("matches marked wrong")
	}
}

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{time.Hour: "1h", 90 * time.Minute: "1h30m", 3*time.Hour + 10*time.Minute + 5*time.Second: "3h10m",
		50 * time.Hour: "2d2h", 40 * time.Second: "40s", 250 * time.Millisecond: "250ms"} {
		if got := duration(d); got != want {
			t.Errorf("duration(%v) = %q, want %q", d, got, want)
		}
	}
}
