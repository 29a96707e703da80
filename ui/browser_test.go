package ui

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/pofr/pofr/internal/testutil"
	"github.com/pofr/pofr/query"
)

var updateScreenshots = flag.Bool("update", false, "write the browser test's screenshots into docs/ (the README shows them)")

// browser is a headless Chromium tab that records what must never happen on
// a page of ours: a dialog (alert), an uncaught exception, a console error
// or warning (CSP violations are reported there).
type browser struct {
	t   *testing.T
	ctx context.Context

	mu       sync.Mutex
	problems []string
}

// chromium returns the path of Debian's chromium, skipping (failing under
// POFR_TEST_REQUIRE) when it is missing.
func chromium(t *testing.T) string {
	t.Helper()
	testutil.RequireTier(t, testutil.TierService)
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testutil.Skip(t, testutil.TierService, "needs Chromium for the browser test (apt-get install chromium; .ci/run installs it)")
	return ""
}

func newBrowser(t *testing.T) *browser {
	path := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.Headless, chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-gpu", true), chromedp.Flag("hide-scrollbars", true))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	b := &browser{t: t, ctx: ctx}
	// Start the tab, then subscribe before the first page loads.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			b.problem("a dialog opened: %s %q", ev.Type, ev.Message)
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	console := chromedp.Console(ctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			switch m.Type {
			case chromedp.ConsoleException, chromedp.ConsoleError, chromedp.ConsoleWarning:
				b.problem("console %s (%s) at %s: %s", m.Type, m.Source, m.URL, m.Text)
			}
		}
	}()
	return b
}

func (b *browser) problem(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, fmt.Sprintf(format, args...))
}

// open loads url and waits for its main element.
func (b *browser) open(url string) {
	b.t.Helper()
	resp, err := chromedp.Run(b.ctx, chromedp.NavigateResponse(url))
	if err != nil {
		b.t.Fatalf("open %s: %v", url, err)
	}
	if resp.Status != 200 {
		b.t.Fatalf("open %s: HTTP %d", url, resp.Status)
	}
	if err := chromedp.Do(b.ctx, chromedp.WaitReady(chromedp.CSS("main"))); err != nil {
		b.t.Fatalf("open %s: %v", url, err)
	}
}

// eval evaluates a JavaScript expression in the page (through the DevTools
// protocol, which the page's CSP does not restrict).
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// texts returns the textContent of every element sel matches.
func texts(b *browser, sel string) []string {
	return eval[[]string](b, fmt.Sprintf(`Array.from(document.querySelectorAll(%q)).map(e => e.textContent)`, sel))
}

// shot saves a screenshot of the viewport as docs/ui-NAME.png (with -update)
// or in the test's temporary directory.
func (b *browser) shot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	b.save(name, png)
}

func (b *browser) save(name string, png []byte) {
	b.t.Helper()
	if len(png) < 1000 || string(png[1:4]) != "PNG" {
		b.t.Fatalf("screenshot %s: %d bytes, not a PNG", name, len(png))
	}
	dir := b.t.TempDir()
	if *updateScreenshots {
		dir = filepath.Join("..", "docs")
	}
	if err := os.WriteFile(filepath.Join(dir, "ui-"+name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// shotOf saves a screenshot of the element sel, like shot.
func (b *browser) shotOf(name, sel string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.Screenshot(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	b.save(name, png)
}

// clean fails the test if anything that must not happen happened, and
// checks that no recorded string changed the document.
func (b *browser) clean(where string) {
	b.t.Helper()
	// Console events arrive asynchronously: give them a moment.
	time.Sleep(200 * time.Millisecond)
	if title := eval[string](b, `document.title`); strings.Contains(title, "pwned") {
		b.t.Errorf("%s: a recorded string ran script: title %q", where, title)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		b.t.Errorf("%s: %s", where, p)
	}
	b.problems = nil
}

// TestBrowser drives headless Chromium over every page of the UI, on a
// host whose processes have hostile argv, exe and paths.
func TestBrowser(t *testing.T) {
	b := newBrowser(t)
	f := newFixture(t)
	base := startUI(t, f, Config{})

	t.Run("fleet", func(t *testing.T) {
		b.t = t
		b.open(base + "/")
		rows := texts(b, "#fleet tbody tr")
		if len(rows) != 2 || !strings.Contains(rows[0], "host-a") || !strings.Contains(rows[1], "host-b") {
			t.Fatalf("fleet rows: %q", rows)
		}
		if !strings.Contains(rows[0], "chain ok") || strings.Contains(rows[0], "silent") {
			t.Errorf("alpha: want chain ok and not silent: %q", rows[0])
		}
		if !strings.Contains(rows[1], "silent") {
			t.Errorf("beta (3 h without data): want silent: %q", rows[1])
		}
		if n := eval[int](b, `document.querySelectorAll("#fleet tr.silent").length`); n != 1 {
			t.Errorf("%d rows marked silent, want 1", n)
		}
		if sql := eval[string](b, `document.querySelector("#sql").textContent`); !strings.Contains(sql, "hosts.sql") ||
			!strings.Contains(sql, "FROM hosts h") {
			t.Errorf("SQL section lacks hosts.sql: %q", sql)
		}
		b.shot("fleet")
		b.clean("fleet")
	})

	t.Run("host", func(t *testing.T) {
		b.t = t
		b.open(base + hostPath("host-a", 6*time.Second, "", -5*time.Second, 45*time.Second))
		// The tree at t0+6s: init, bash under it, the hostile process under
		// bash, httpd.
		pids := texts(b, "#tree a.pid")
		want := []string{"1", "100", "300", "500"}
		if strings.Join(pids, " ") != strings.Join(want, " ") {
			t.Errorf("tree pids %q, want %q", pids, want)
		}
		nested := eval[bool](b, `!!document.querySelector('#tree li[data-s^="100 "] li[data-s^="300 "]')`)
		if !nested {
			t.Error("process 300 is not drawn under its parent 100")
		}
		argv := eval[string](b, `document.querySelector('#tree li[data-s^="300 "] code.argv').textContent`)
		if want := query.FormatArgv([]byte(hostileArgv())); argv != want {
			t.Errorf("tree argv of 300 shows %q, want %q", argv, want)
		}
		for _, s := range []string{"<script>alert(1)</script>", "<img src=x onerror=alert(2)>", `$'line1\nline2'`, `\u202eevil.txt`, `\xff\xfe`} {
			if !strings.Contains(argv, s) {
				t.Errorf("tree argv lacks %q: %q", s, argv)
			}
		}
		// The gap of t0+20s .. t0+25s is drawn on the chart and listed.
		gaps := texts(b, "#chart .gapband title")
		if len(gaps) != 1 || !strings.Contains(gaps[0], "netlink receive buffer overflow") {
			t.Errorf("chart gap bands: %q", gaps)
		}
		x := eval[[]float64](b, `(() => { const r = document.querySelector("#chart .gapband rect").getBBox(); return [r.x, r.width]; })()`)
		// The window is 50 s wide over the plot.
		wantX := chartLeft + (chartW-chartLeft-4)*25/50
		wantW := (chartW - chartLeft - 4) * 5 / 50
		if x[0] < wantX-2 || x[0] > wantX+2 || x[1] < wantW-2 || x[1] > wantW+2 {
			t.Errorf("gap band at x=%.1f width %.1f, want x≈%.1f width≈%.1f", x[0], x[1], wantX, wantW)
		}
		if rows := texts(b, "#events tr.gaprow"); len(rows) != 1 || !strings.Contains(rows[0], "3 lost") {
			t.Errorf("timeline gap rows: %q", rows)
		}
		if n := eval[int](b, `document.querySelectorAll("#chart .bar").length`); n < 3 {
			t.Errorf("%d density bars, want some in each lane", n)
		}
		b.shot("host")
		b.shotOf("tree", "#tree-section")
		// The filter narrows the tree as one types (the page's only script).
		if err := chromedp.Do(b.ctx, chromedp.SendKeys(chromedp.ID("treefilter"), "httpd")); err != nil {
			t.Fatal(err)
		}
		if _, err := chromedp.Run(b.ctx, chromedp.Poll[bool](
			`Array.from(document.querySelectorAll("#tree li")).filter(li => li.offsetParent !== null).length === 2`,
			chromedp.WithPollingTimeout(5*time.Second))); err != nil {
			t.Errorf("filter 'httpd' did not leave init and httpd: %v; visible %q", err,
				eval[[]string](b, `Array.from(document.querySelectorAll("#tree li")).filter(li => li.offsetParent !== null).map(li => li.dataset.s)`))
		}
		if err := chromedp.Do(b.ctx, chromedp.Click(chromedp.ID("collapse"))); err != nil {
			t.Fatal(err)
		}
		if n := eval[int](b, `document.querySelectorAll("#tree details[open]").length`); n != 0 {
			t.Errorf("collapse all left %d subtrees open", n)
		}
		b.clean("host")
	})

	t.Run("process", func(t *testing.T) {
		b.t = t
		b.open(base + procURL("host-a", hostilePID, 0))
		got := texts(b, "#argv ol.args li code")
		var want []string
		for _, a := range hostileArgs {
			want = append(want, query.Safe([]byte(a)))
		}
		if strings.Join(got, "\x00") != strings.Join(want, "\x00") {
			t.Errorf("argv shown as\n%q\nwant\n%q", got, want)
		}
		literal := []string{"<script>alert(1)</script>", "<img src=x onerror=alert(2)>", `"double" 'single' ` + "`back`",
			`line1\nline2`, `\u202eevil.txt`, `\xff\xfe bytes`}
		if strings.Join(got, "\x00") != strings.Join(literal, "\x00") {
			t.Errorf("argv shown as\n%q\nwant\n%q", got, literal)
		}
		if exe := eval[string](b, `document.querySelector("#facts dd.path").textContent`); exe != hostileExe {
			t.Errorf("exe shown as %q, want %q", exe, hostileExe)
		}
		if files := texts(b, "#files td.path"); len(files) != 1 || files[0] != query.Safe([]byte(hostilePath)) {
			t.Errorf("files %q, want %q", files, query.Safe([]byte(hostilePath)))
		}
		if p := texts(b, "#parents ol.chain a"); strings.Join(p, " ") != "1 100" {
			t.Errorf("parents %q, want 1 100", p)
		}
		if exit := eval[string](b, `document.querySelector("#facts").textContent`); !strings.Contains(exit, "signal 9") {
			t.Errorf("exit not shown: %q", exit)
		}
		if n := eval[int](b, `document.querySelectorAll("img, svg[onload], script:not([src])").length`); n != 0 {
			t.Errorf("%d elements made from recorded bytes", n)
		}
		b.shot("process")
		b.clean("process")
	})

	t.Run("search", func(t *testing.T) {
		b.t = t
		b.open(base + "/search?q=ran")
		// Fill the form as a person would and submit it.
		if err := chromedp.Do(b.ctx, chromedp.SendKeys(chromedp.CSS(`#searchform input[name="argv"]`), "%<script>%")); err != nil {
			t.Fatal(err)
		}
		if _, err := chromedp.Run(b.ctx, chromedp.WaitEvent(page.LoadEventFired, nil,
			chromedp.Click(chromedp.CSS(`#searchform button`)))); err != nil {
			t.Fatal(err)
		}
		loc := eval[string](b, `location.search`)
		if !strings.Contains(loc, "argv=%25%3Cscript%3E%25") || !strings.Contains(loc, "go=1") {
			t.Errorf("the answer's URL is not a permalink of the question: %q", loc)
		}
		rows := texts(b, "#result tbody tr")
		if len(rows) != 1 || !strings.Contains(rows[0], "<script>alert(1)</script>") {
			t.Errorf("ran argv like %%<script>%%: %q", rows)
		}
		if sql := eval[string](b, `document.querySelector("#sql").textContent`); !strings.Contains(sql, "@argv_like = '%<script>%'") {
			t.Errorf("SQL section does not bind @argv_like: %q", sql)
		}
		b.shot("search")
		b.clean("search ran")
		for _, q := range []string{"touched&path=%2Ftmp%2F", "conns", "peers"} {
			b.open(base + "/search?since=1d&go=1&q=" + q)
			if n := eval[int](b, `document.querySelectorAll("#result").length`); n != 1 {
				t.Errorf("search %s: no result table", q)
			}
			b.clean("search " + q)
		}
		if got := texts(b, "#result tbody td"); len(got) == 0 {
			t.Error("peers: empty table without its 'No rows.' cell")
		}
	})

	t.Run("csp", func(t *testing.T) {
		b.t = t
		// The policy holds in the browser: an inline script added to the
		// page does not run, and the browser reports the violation.
		b.open(base + "/")
		ran := eval[bool](b, `(() => {
			window.__inline = false;
			const s = document.createElement("script");
			s.textContent = "window.__inline = true";
			document.body.appendChild(s);
			return window.__inline;
		})()`)
		if ran {
			t.Error("an inline script ran: the Content-Security-Policy does not hold")
		}
		time.Sleep(300 * time.Millisecond)
		b.mu.Lock()
		reported := len(b.problems) > 0 && strings.Contains(strings.Join(b.problems, "\n"), "Content Security Policy")
		b.problems = nil
		b.mu.Unlock()
		if !reported {
			t.Error("the browser reported no CSP violation for the inline script: the test's console watch is broken")
		}
	})
}
