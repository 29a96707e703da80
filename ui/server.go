package ui

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pofr/pofr/query"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

//go:embed sql/*.sql
var sqlFS embed.FS

// CSP is the Content-Security-Policy of every response: scripts, styles and
// images only from this server's /static/, no inline script or style, no
// plugin, no framing, forms only to this server.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Limits bound what one page asks of the database.
type Limits struct {
	// Rows is the most rows of one table a page shows (paged beyond).
	Rows int
	// TreeNodes is the most processes of one tree.
	TreeNodes int
	// Window is the longest timeline range a page accepts.
	Window time.Duration
	// Statement is the longest one statement may run (MariaDB
	// max_statement_time).
	Statement time.Duration
	// SmallTree is the most process rows (of the boot, up to the moment)
	// for which the host page waits for the tree without the tree budget.
	SmallTree int
}

// DefaultLimits are the limits of pofr-server ui.
var DefaultLimits = Limits{Rows: 500, TreeNodes: 20000, Window: 7 * 24 * time.Hour, Statement: 30 * time.Second,
	SmallTree: 100_000}

// Options configure a Server.
type Options struct {
	// Querier answers the questions; its DB should use the reader account.
	Querier *query.Querier
	// Quick is Querier with a short statement limit (TreeBudget) for the
	// process tree, which reads a whole boot's process rows: past the
	// budget the host page offers the tree instead of waiting for it.
	// Nil: Querier.
	Quick *query.Querier
	// TreeBudget is Quick's statement limit, for the page's text.
	TreeBudget time.Duration
	Log        *slog.Logger
	// Auth, when not nil, requires HTTP basic authentication.
	Auth *Auth
	// ClientCerts says that TLS client certificates authenticate every
	// request (verified by the TLS layer).
	ClientCerts bool
	// SilentAfter marks hosts whose newest data is older than this as silent
	// on the fleet page (default 1 h).
	SilentAfter time.Duration
	Limits      Limits
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Shard, when not nil, routes a host's pages (host, process) to the
	// shard holding its rows: it opens Queriers on a shard's DSN (see
	// Shards). Fleet-wide pages stay on Querier.
	Shard *Shards
}

// Server serves the web interface.
type Server struct {
	opt   Options
	log   *slog.Logger
	pages map[string]*template.Template
	sql   map[string]string
}

// New builds a Server: it parses the embedded templates and SQL files.
func New(opt Options) (*Server, error) {
	if opt.Querier == nil || opt.Querier.DB == nil {
		return nil, errors.New("ui: no database")
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.SilentAfter <= 0 {
		opt.SilentAfter = time.Hour
	}
	if opt.Limits == (Limits{}) {
		opt.Limits = DefaultLimits
	}
	if opt.Quick == nil {
		opt.Quick = opt.Querier
	}
	s := &Server{opt: opt, log: opt.Log, pages: map[string]*template.Template{}, sql: map[string]string{}}
	for _, p := range []string{"fleet", "host", "proc", "search", "error"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+p+".html")
		if err != nil {
			return nil, fmt.Errorf("ui: parse template %s: %w", p, err)
		}
		s.pages[p] = t
	}
	ents, err := fs.ReadDir(sqlFS, "sql")
	if err != nil {
		return nil, fmt.Errorf("ui: read sql: %w", err)
	}
	for _, e := range ents {
		b, err := fs.ReadFile(sqlFS, "sql/"+e.Name())
		if err != nil {
			return nil, fmt.Errorf("ui: read sql: %w", err)
		}
		s.sql[strings.TrimSuffix(e.Name(), ".sql")] = string(b)
	}
	return s, nil
}

// Handler returns the HTTP handler of every page and asset.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", cacheStatic(http.FileServerFS(static))))
	mux.HandleFunc("GET /{$}", s.page(s.fleet))
	mux.HandleFunc("GET /host/{host}", s.page(s.host))
	mux.HandleFunc("GET /host/{host}/proc/{pid}", s.page(s.proc))
	mux.HandleFunc("GET /search", s.page(s.search))
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, http.StatusNotFound, errors.New("no such page"), nil)
	})
	return s.guard(mux)
}

// guard wraps every request: security headers, only GET and HEAD, the Host
// check without authentication, and authentication.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "read-only: only GET and HEAD", http.StatusMethodNotAllowed)
			return
		}
		if s.opt.Auth == nil && !s.opt.ClientCerts && !localHost(r.Host) {
			// Without authentication a name other than an address could be
			// an attacker's DNS name rebound to this address.
			http.Error(w, "without --auth-file or client certificates, open the UI by IP address or localhost", http.StatusMisdirectedRequest)
			return
		}
		if s.opt.Auth != nil {
			user, pass, ok := r.BasicAuth()
			if !ok || !s.opt.Auth.Check(user, pass) {
				h.Set("WWW-Authenticate", `Basic realm="pofr", charset="UTF-8"`)
				http.Error(w, "authentication required", http.StatusUnauthorized)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// localHost reports whether a Host header names the server by an IP address
// or as localhost.
func localHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	return net.ParseIP(host) != nil
}

func cacheStatic(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		h.ServeHTTP(w, r)
	})
}

// view is what every page template gets besides its own data.
type view struct {
	Title string
	Nav   string
	// SQL lists the statements the page ran.
	SQL  []query.Statement
	Data any
}

// req is one request's context: its own Querier that records the
// statements run.
type req struct {
	ctx context.Context
	r   *http.Request
	q   *query.Querier
	// quick is Options.Quick, or its like on the host's shard.
	quick *query.Querier
	mu    sync.Mutex
	stmt  []query.Statement
}

func (s *Server) newReq(r *http.Request) *req {
	rq := &req{ctx: r.Context(), r: r, quick: s.opt.Quick}
	q := s.opt.Querier
	if host := r.PathValue("host"); host != "" && s.opt.Shard != nil {
		if sq, squick := s.opt.Shard.route(rq.ctx, s.log, host); sq != nil {
			q, rq.quick = sq, squick
		}
	}
	rq.q = withTrace(q, rq)
	return rq
}

// withTrace returns a copy of q, unpaged, that records its statements in rq.
func withTrace(q *query.Querier, rq *req) *query.Querier {
	c := *q
	c.Page = query.Page{}
	c.Trace = func(st query.Statement) {
		rq.mu.Lock()
		rq.stmt = append(rq.stmt, st)
		rq.mu.Unlock()
	}
	return &c
}

// paged returns rq's Querier limited to a page of rows.
func (rq *req) paged(limit, offset int) *query.Querier {
	q := *rq.q
	q.Page = query.Page{Limit: limit, Offset: offset}
	return &q
}

// errNotFound makes a page answer 404.
var errNotFound = errors.New("not found")

// badRequest is an error in what the request asked (400).
type badRequest struct{ error }

// page adapts a page function: it renders the page it returns, or the
// error page with the statements run so far.
func (s *Server) page(fn func(rq *req) (string, *view, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rq := s.newReq(r)
		name, v, err := fn(rq)
		if err != nil {
			code := http.StatusInternalServerError
			var br badRequest
			switch {
			case errors.As(err, &br), errors.Is(err, query.ErrBadTime):
				code = http.StatusBadRequest
			case errors.Is(err, errNotFound), errors.Is(err, query.ErrUnknownHost), errors.Is(err, query.ErrNoProcess):
				code = http.StatusNotFound
			}
			s.fail(w, r, code, err, rq.stmt)
			return
		}
		v.SQL = rq.stmt
		s.render(w, http.StatusOK, name, v)
	}
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, code int, err error, stmts []query.Statement) {
	if code == http.StatusInternalServerError {
		s.log.Error("page failed", "path", r.URL.Path, "err", err)
	}
	s.render(w, code, "error", &view{Title: http.StatusText(code), SQL: stmts, Data: err.Error()})
}

func (s *Server) render(w http.ResponseWriter, code int, name string, v *view) {
	var b strings.Builder
	if err := s.pages[name].Execute(&b, v); err != nil {
		s.log.Error("render page", "page", name, "err", err)
		http.Error(w, "render page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(b.String()))
}

// runSQL runs one of this package's SQL files.
func (s *Server) runSQL(rq *req, q *query.Querier, name string, params ...query.Param) (*query.Table, error) {
	text, ok := s.sql[name]
	if !ok {
		return nil, fmt.Errorf("ui: no query %s", name)
	}
	return q.RunSQL(rq.ctx, name, text, params...)
}
