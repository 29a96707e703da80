package main

import (
	"context"
	"errors"
	"flag"
	"time"

	"github.com/pofr/pofr/internal/cli"
	"github.com/pofr/pofr/internal/metrics"
	"github.com/pofr/pofr/query"
	"github.com/pofr/pofr/ui"
)

// uiCommand is "pofr-server ui": the read-only web interface (package ui).
func uiCommand() *cli.Command {
	var (
		cfg            ui.Config
		dsnFile, geoip string
		resolve        bool
		metricsListen  string
		rdnsTimeout    time.Duration
		shardsFile     string
	)
	return &cli.Command{
		Name:    "ui",
		Summary: "serve the read-only web interface (fleet, hosts, process trees, timelines, search)",
		Usage:   "--dsn-file F [--shards FILE] [--listen ADDR] [--auth-file F] [--tls-cert F --tls-key F [--client-ca F]]",
		Help: `Serves pages for analysts: the fleet's custody, a host's process tree at a
moment and its timeline with every gap drawn, one process life with its argv
shown exactly, and the query questions as forms with permalinks. Every page
shows the SQL it ran. Give it the reader account (pofr-server schema users):
it never writes, and its sessions are read-only anyway.

It listens on loopback by default. For a shared deployment require
passwords (--auth-file: user:bcrypt-hash lines, as 'htpasswd -B' writes
them) and/or TLS client certificates (--client-ca with --tls-cert and
--tls-key); listening beyond loopback without either logs a warning.

--metrics-listen serves Prometheus metrics read from the ledger (see
docs/operations.md) on a separate address, without the ui's authentication:
keep it on loopback or a management network.

Given a Spider head's DSN and a shard map (--shards), a host's pages (host
page with its tree and timeline, process page) read the host's shard
directly, as fast as one server (its reader_dsn_file; one connection pool
per shard, opened on first use); the fleet page and the search read the
head. A shard the map names no reader DSN file for is read through the head.

Exit codes: 0 stopped by a signal, 1 error, 2 usage.

Example: pofr-server ui --dsn-file /etc/pofr-server/reader.dsn --listen 127.0.0.1:8080`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", "TCP `address` to serve on")
			dsnFileFlag(fs, &dsnFile, "reader", "`file` holding the reader account's MariaDB DSN")
			fs.StringVar(&cfg.AuthFile, "auth-file", "", "`file` of user:bcrypt-hash lines; requires HTTP basic authentication")
			fs.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate `file` (serve HTTPS)")
			fs.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key `file` of --tls-cert")
			fs.StringVar(&cfg.ClientCA, "client-ca", "", "PEM CA `file`: require client certificates it signed")
			fs.DurationVar(&cfg.SilentAfter, "silent-after", time.Hour, "mark hosts without data for this `long` as silent")
			fs.BoolVar(&resolve, "resolve", false, "add reverse DNS names of remote addresses to the conns search")
			fs.DurationVar(&rdnsTimeout, "rdns-timeout", 500*time.Millisecond, "timeout of one reverse DNS lookup")
			metricsFlag(fs, &metricsListen)
			shardsFlag(fs, &shardsFile)
			fs.StringVar(&geoip, "geoip", "", "MaxMind DB (.mmdb) or IP2Location (.BIN) `file` for country and city columns of the conns search")
		},
		NoArgs: true,
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			dsn, err := readDSNFile(dsnFile)
			if err != nil {
				return err
			}
			cfg.DSN = dsn
			if cfg.Shard, err = uiShards(env.Log, shardsFile); err != nil {
				return err
			}
			if metricsListen != "" {
				mdb, err := query.OpenDB(dsn)
				if err != nil {
					return err
				}
				defer mdb.Close()
				mdb.SetMaxOpenConns(1)
				stop, err := metrics.Go(ctx, metricsListen, env.Log, metrics.NewLedger(mdb, "", env.Log))
				if err != nil {
					return err
				}
				defer stop()
			}
			if resolve || geoip != "" {
				cfg.Enrich = &query.Enricher{Resolve: resolve, Timeout: rdnsTimeout}
				if geoip != "" {
					g, err := query.OpenGeoDB(geoip)
					if err != nil {
						return err
					}
					defer g.Close()
					cfg.Enrich.Geo = g
				}
			}
			err = ui.Run(ctx, cfg, env.Log, env.Stdout)
			if errors.Is(err, ui.ErrUsage) {
				return cli.Usagef("%v", err)
			}
			return err
		},
	}
}
