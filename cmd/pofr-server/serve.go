package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pofr/pofr/internal/cli"
	"github.com/pofr/pofr/internal/metrics"
	"github.com/pofr/pofr/internal/statedir"
	"github.com/pofr/pofr/receiver"
)

// serveCommand is "pofr-server serve".
func serveCommand() *cli.Command {
	var (
		listen, passwordFile        string
		shardsFile                  string
		stateDir                    statedir.Dir
		maxSegment                  int64
		maxConns, maxStartups       int
		maxStartupsAddr, maxPerHost int
		idle, handshake             time.Duration
		metricsListen               string
	)
	return &cli.Command{
		Name:    "serve",
		Summary: "run the SSH receiver: write-only inboxes and registration",
		Usage:   "[--listen :2222] [--state-dir D] [--registration-password-file F]",
		Help: `Runs pofr's embedded SSH server. Registered hosts log in with their
ed25519 key (user = host id) and may only create segment files in their own
inbox (state-dir/inbox/HOST); they can read, list, delete or run nothing.
Hosts register as user "register" with a one-time token (pofr-server token
create) or the registration password (then an admin approves).

The host key is generated on first start in state-dir/ssh_host_ed25519_key
and kept; its fingerprint is printed at start, for hosts to confirm.

On a dedicated collection server run it on port 22 (move the admin's sshd
elsewhere); next to an existing sshd use another port, e.g. 2222. See
docs/transport.md.

With a shard map whose "registry" entry names a MariaDB database, hosts,
keys, requests and tokens are kept there, so that several serve processes
(behind DNS or a TCP load balancer) accept every registered host; each
keeps its inboxes and its host key in its own state directory (copy one
host key to all of them, docs/operations.md).

With --metrics-listen it serves Prometheus metrics (connections, refusals,
segments received) on GET /metrics; see docs/operations.md.

Exit codes: 0 stopped by a signal, 1 error.`,
		Flags: func(fs *flag.FlagSet) {
			shardsFlag(fs, &shardsFile)
			fs.StringVar(&listen, "listen", receiver.DefaultListen, "`address` to listen on")
			stateDirFlag(fs, &stateDir, "server state `dir`ectory")
			fs.StringVar(&passwordFile, "registration-password-file", "", "`file` holding the registration password (without it only tokens register)")
			fs.Int64Var(&maxSegment, "max-segment-bytes", receiver.DefaultMaxSegmentBytes, "largest accepted upload in `bytes`")
			fs.IntVar(&maxConns, "max-conns", receiver.DefaultMaxConns, "most concurrent connections")
			fs.IntVar(&maxStartups, "max-startups", receiver.DefaultMaxStartups, "most concurrent connections not yet authenticated")
			fs.IntVar(&maxStartupsAddr, "max-startups-per-addr", receiver.DefaultMaxStartupsPerAddr, "most connections not yet authenticated from one source address")
			fs.IntVar(&maxPerHost, "max-conns-per-host", receiver.DefaultMaxConnsPerHost, "most concurrent connections of one registered host")
			fs.DurationVar(&handshake, "handshake-timeout", receiver.DefaultHandshakeTimeout, "close connections not authenticated within this time")
			metricsFlag(fs, &metricsListen)
			fs.DurationVar(&idle, "idle-timeout", receiver.DefaultIdleTimeout, "close connections that move no data this long (keep-alives do not count)")
		},
		NoArgs: true,
		Run: func(ctx context.Context, env *cli.Env, args []string) error {
			var pw []byte
			if passwordFile != "" {
				b, err := os.ReadFile(passwordFile)
				if err != nil {
					return fmt.Errorf("read registration password: %w", err)
				}
				pw = []byte(strings.TrimRight(string(b), "\r\n"))
				if len(pw) < 12 {
					return fmt.Errorf("registration password in %s is shorter than 12 characters", passwordFile)
				}
			}
			reg, shards, closeReg, err := openRegistryMap(ctx, stateDir, shardsFile)
			if err != nil {
				return err
			}
			defer closeReg()
			srv, err := receiver.NewServer(receiver.Options{
				Shards:               shards,
				Registry:             reg,
				StateDir:             stateDir,
				RegistrationPassword: pw,
				MaxSegmentBytes:      maxSegment,
				MaxConns:             maxConns,
				MaxStartups:          maxStartups,
				MaxStartupsPerAddr:   maxStartupsAddr,
				MaxConnsPerHost:      maxPerHost,
				HandshakeTimeout:     handshake,
				IdleTimeout:          idle,
				Log:                  env.Log,
			})
			if err != nil {
				return err
			}
			stop, err := metrics.Go(ctx, metricsListen, env.Log, metrics.NewReceiver(srv))
			if err != nil {
				return err
			}
			defer stop()
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listen: %w", err)
			}
			serverPrintKey(env.Stdout, ln.Addr(), srv.HostKey())
			return srv.Serve(ctx, ln)
		},
	}
}

// serverPrintKey prints the listening address and the host key fingerprint
// that registering hosts must confirm.
func serverPrintKey(w io.Writer, addr net.Addr, k ssh.PublicKey) {
	fmt.Fprintf(w, "pofr-server listening on %s\nhost key %s\n", addr, ssh.FingerprintSHA256(k))
}

// metricsFlag declares --metrics-listen of the long-running commands.
func metricsFlag(fs *flag.FlagSet, addr *string) {
	fs.StringVar(addr, "metrics-listen", "", "serve Prometheus metrics on this TCP `address` (GET /metrics; default: off)")
}
