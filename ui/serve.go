package ui

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/pofr/pofr/query"
)

// Config is what pofr-server ui is started with.
type Config struct {
	// Listen is the TCP address (default 127.0.0.1:8080).
	Listen string
	// DSN is the reader account's go-sql-driver/mysql DSN.
	DSN string
	// AuthFile holds user:bcrypt-hash lines; "" for no password.
	AuthFile string
	// TLSCert and TLSKey serve HTTPS; ClientCA (needs them) requires
	// client certificates signed by it.
	TLSCert, TLSKey, ClientCA string
	// Enrich adds reverse DNS and geolocation to the conns search.
	Enrich      *query.Enricher
	SilentAfter time.Duration
	Limits      Limits
	// TreeBudget bounds the process tree of the host page (default
	// DefaultTreeBudget); past it the page offers the tree on request.
	TreeBudget time.Duration
	// Shard, when not nil and DSN reaches a Spider head, names the shard
	// (and its reader DSN) of a host: the host's pages run there (Shards).
	Shard func(ctx context.Context, head *sql.DB, host string) (name, dsn string, err error)
}

// DefaultTreeBudget is how long the host page waits for its process tree.
const DefaultTreeBudget = 600 * time.Millisecond

// ErrUsage reports a configuration that cannot work (a usage error).
var ErrUsage = errors.New("ui: bad configuration")

// OpenReader opens dsn for the web interface: every connection is made
// read-only (tx_read_only) and its statements are cut off after limit
// (max_statement_time), whatever the account may do.
func OpenReader(dsn string, limit time.Duration) (*sql.DB, error) {
	cfg, err := mysql.ParseDSN(strings.TrimSpace(dsn))
	if err != nil {
		return nil, fmt.Errorf("parse DSN: %w", err)
	}
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["tx_read_only"] = "1"
	if limit > 0 {
		cfg.Params["max_statement_time"] = strconv.FormatFloat(limit.Seconds(), 'f', -1, 64)
	}
	db, err := query.OpenDB(cfg.FormatDSN())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(16)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return db, nil
}

var writeGrant = regexp.MustCompile(`(?i)\b(ALL PRIVILEGES|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|FILE|SUPER)\b`)

// canWrite reports grants of the connected account that allow more than
// reading.
func canWrite(ctx context.Context, db *sql.DB) (string, error) {
	rows, err := db.QueryContext(ctx, "SHOW GRANTS")
	if err != nil {
		return "", err
	}
	defer rows.Close()
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			return "", err
		}
		if m := writeGrant.FindString(g); m != "" {
			return m, nil
		}
	}
	return "", rows.Err()
}

// isLoopback reports whether a listening address is on loopback only.
func isLoopback(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// Run serves the web interface until ctx ends. It prints the URL it serves
// on stdout once it listens.
func Run(ctx context.Context, cfg Config, log *slog.Logger, stdout io.Writer) error {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:8080"
	}
	if cfg.Limits == (Limits{}) {
		cfg.Limits = DefaultLimits
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return fmt.Errorf("%w: --tls-cert and --tls-key go together", ErrUsage)
	}
	if cfg.ClientCA != "" && cfg.TLSCert == "" {
		return fmt.Errorf("%w: --client-ca needs --tls-cert and --tls-key", ErrUsage)
	}
	var auth *Auth
	if cfg.AuthFile != "" {
		var err error
		if auth, err = LoadAuth(cfg.AuthFile); err != nil {
			return err
		}
	}
	var tlsConf *tls.Config
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("load TLS certificate: %w", err)
		}
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		if cfg.ClientCA != "" {
			pem, err := os.ReadFile(cfg.ClientCA)
			if err != nil {
				return fmt.Errorf("read client CA: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return fmt.Errorf("client CA %s: no PEM certificate", cfg.ClientCA)
			}
			tlsConf.ClientCAs = pool
			tlsConf.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}

	db, err := OpenReader(cfg.DSN, cfg.Limits.Statement)
	if err != nil {
		return err
	}
	defer db.Close()
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		return fmt.Errorf("connect to the database: %w", err)
	}
	if g, err := canWrite(pctx, db); err != nil {
		log.Warn("cannot read the account's grants", "err", err)
	} else if g != "" {
		log.Warn("the database account can write (grant "+g+"); the UI never writes and its sessions are read-only, "+
			"but give it the reader account (pofr-server schema users --reader-password-file)", "grant", g)
	}

	if cfg.TreeBudget <= 0 {
		cfg.TreeBudget = DefaultTreeBudget
	}
	quick, err := OpenReader(cfg.DSN, cfg.TreeBudget)
	if err != nil {
		return err
	}
	defer quick.Close()
	var shards *Shards
	if cfg.Shard != nil {
		head, err := query.IsHead(pctx, db)
		if err != nil {
			return err
		}
		if head {
			shards = &Shards{Of: cfg.Shard, head: db, log: log, enrich: cfg.Enrich, limit: cfg.Limits.Statement,
				budget: cfg.TreeBudget, open: map[string][2]*query.Querier{}}
			defer shards.Close()
		} else {
			log.Info("the database is not a Spider head: every page reads it, the shard map is not used")
		}
	}
	srv, err := New(Options{Querier: &query.Querier{DB: db, Log: log, Enrich: cfg.Enrich}, Log: log, Auth: auth,
		Quick: &query.Querier{DB: quick, Log: log}, TreeBudget: cfg.TreeBudget, Shard: shards,
		ClientCerts: cfg.ClientCA != "", SilentAfter: cfg.SilentAfter, Limits: cfg.Limits})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	hs := &http.Server{Handler: srv.Handler(), TLSConfig: tlsConf, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	scheme := "http"
	if tlsConf != nil {
		scheme = "https"
	}
	if !isLoopback(ln.Addr()) {
		switch {
		case auth == nil && cfg.ClientCA == "":
			log.Warn("listening beyond loopback WITHOUT authentication: anyone who can reach " + ln.Addr().String() +
				" reads every host's record; use --auth-file or --tls-cert/--tls-key/--client-ca")
		case tlsConf == nil:
			log.Warn("listening beyond loopback without TLS: passwords and pages cross the network in clear; use --tls-cert/--tls-key")
		}
	}
	fmt.Fprintf(stdout, "pofr-server ui listening on %s://%s/\n", scheme, ln.Addr())
	log.Info("ui listening", "addr", ln.Addr().String(), "tls", tlsConf != nil, "password", auth != nil, "client_certs", cfg.ClientCA != "")

	errc := make(chan error, 1)
	go func() {
		if tlsConf != nil {
			errc <- hs.ServeTLS(ln, "", "")
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	return nil
}
